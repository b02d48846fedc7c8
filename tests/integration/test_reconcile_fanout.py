"""A fanned-out reconciliation through the real Pub/Sub emulator, which pushes each work message
to the ``reconcile_worker`` entry point served over HTTP (a thread, or a functions-framework
process that a test kills), with the Firestore emulator and the Play API stand-in: the schedule
publishes one message per tenant x source; every void is applied once; a worker killed mid-page
loses nothing and applies nothing twice once the message comes again; a message that keeps
failing is dead-lettered (and replays cleanly); a tenant's backlog does not hold another's work
back."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore
from refundguard.model import Status, StoreName
from refundguard.reconcile_worker import function as worker_function
from refundguard.reconciliation import pages as reconcile_pages
from refundguard.reconciliation.state import ReconcileState, run_json
from refundguard.store import EntitlementStore
from refundguard.tenant_registry import TenantRegistry
from refundguard.tenants import Tenant, TenantStatus
from refundguard_dev import play_api_data as data
from refundguard_dev.emulator import PubSubEmulator, free_port
from refundguard_dev.fake_play_api import FakePlayApi, Fault
from refundguard_dev.processes import start_function, stop
from refundguard_dev.pubsub import EmulatorPubSub
from support import STORE_API_POLICY, served

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

NOW_MS = int(time.time() * 1000)
HOUR = 3_600_000


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Stack:
    """The work topic (with its dead-letter topic and a pull subscription of it), the settings
    of both functions, tenants registered, voids seeded at the Play stand-in."""

    def __init__(
        self, env: dict[str, str], pubsub: EmulatorPubSub, play: FakePlayApi, name: str
    ) -> None:
        self.env, self.pubsub, self.play, self.name = env, pubsub, play, name
        self.client = firestore.Client(project=env["GOOGLE_CLOUD_PROJECT"])
        self.store = EntitlementStore.from_env(env)
        self.registry = TenantRegistry(self.client, timeout_s=10)

    def push_to(self, url: str, *, attempts: int = 5) -> None:
        """The push subscription of the work topic, to ``url``, dead-lettering after
        ``attempts``."""
        self.pubsub.subscription(
            f"{self.name}-push",
            self.name,
            push_endpoint=url,
            ordering=False,
            ack_deadline_s=60,
            dead_letter=(f"{self.name}-dead", attempts),
        )

    def tenant(self, tenant_id: str, *packages: str, **kw: Any) -> Tenant:
        tenant = Tenant(
            id=tenant_id, display_name=tenant_id, play_packages=packages, play_api=True, **kw
        )
        return self.registry.create(tenant, now_ms=NOW_MS)

    def voids(self, package: str, count: int, *, ago_ms: int = HOUR) -> list[str]:
        """``count`` voided one-time purchases of ``package``; their tokens."""
        tokens = []
        for n in range(count):
            token, order = f"tok-{package}-{n}", f"GPA.{abs(hash(package)) % 9000 + 1000}-{n:04d}"
            self.play.add_order(package, data.order(order, token))
            self.play.add_voided(package, data.voided(token, order, voided_ms=NOW_MS - ago_ms))
            tokens.append(token)
        return tokens

    def revoked(self, tokens: list[str]) -> int:
        """How many of ``tokens``' entitlements are revoked (one read of them all)."""
        refs = [self.client.collection("entitlements").document(f"google:{t}") for t in tokens]
        return sum(
            1
            for snap in self.client.get_all(refs)
            if snap.exists and (snap.to_dict() or {}).get("status") == Status.REVOKED.value
        )

    def histories(self, tokens: list[str]) -> list[int]:
        return [len(self.store.history(StoreName.GOOGLE, t)) for t in tokens]

    def cursor(self, package: str) -> dict[str, Any]:
        snap = self.client.collection("reconcile_cursors").document(f"google:{package}").get()
        return snap.to_dict() or {}

    def record(self, run_id: str, tenant: str) -> dict[str, Any]:
        """The tenant's run record as admins read it (``run_json``), or {}."""
        found = ReconcileState(self.client, timeout_s=10).get_run(f"{run_id}:{tenant}")
        return run_json(found) | {"awaiting": list(found.awaiting)} if found else {}

    def list_calls(self, package: str) -> int:
        path = f"/applications/{package}/purchases/voidedpurchases"
        return sum(1 for r in self.play.requests if path in r.path)

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.pubsub.pull_raw(f"{self.name}-dead-pull")


@pytest.fixture
def stack(
    emulator_env: dict[str, str],
    pubsub_emulator: PubSubEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    monkeypatch.setattr(worker_function, "API_POLICY", STORE_API_POLICY)
    monkeypatch.setattr(reconcile_pages, "PAGE_BACKOFF_S", 0.01)
    monkeypatch.delenv(
        "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED", raising=False
    )
    pubsub = EmulatorPubSub(pubsub_emulator.host, emulator_env["GOOGLE_CLOUD_PROJECT"])
    name = f"work-{os.getpid()}-{free_port()}"
    with FakePlayApi() as play:
        topic = pubsub.topic(name)
        pubsub.topic(f"{name}-dead")
        pubsub.subscription(f"{name}-dead-pull", f"{name}-dead", ordering=False)
        key = play.write_service_account_key(tmp_path / "sa.json")
        env = {
            **emulator_env,
            "PLAY_DEVELOPER_API": "on",
            "PLAY_API_BASE_URL": play.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(key),
            "RECONCILE_WORK_TOPIC": topic,
            "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
            "RECONCILE_BUDGET_SECONDS": "30",
        }
        yield Stack(env, pubsub, play, name)


def schedule(make_client: Any, stack: Stack) -> dict[str, Any]:
    """One call of the ``reconcile`` entry point, as Cloud Scheduler makes it."""
    reconciler = make_client("reconcile", **stack.env)
    answer = reconciler.post("/")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return dict(answer.get_json())


def test_the_schedule_fans_out_one_message_per_tenant_source_and_each_void_is_applied_once(
    stack: Stack, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = {f"creator-{n}": f"com.creator{n}.app" for n in range(6)}
    tokens: dict[str, list[str]] = {}
    for n, (tenant_id, package) in enumerate(tenants.items()):
        status = TenantStatus.SUSPENDED if n == 0 else TenantStatus.ACTIVE  # refunds still revoke
        stack.tenant(tenant_id, package, status=status)
        tokens[tenant_id] = stack.voids(package, n + 1)
    with served("reconcile_worker", stack.env, monkeypatch) as url:
        stack.push_to(url)
        run = schedule(make_client, stack)
        assert run["state"] == "dispatched"
        assert run["tenants"] == len(tenants)
        assert run["work"] == {"google": len(tenants), "answers": len(tenants)}
        every = [t for group in tokens.values() for t in group]
        wait_for(lambda: stack.revoked(every) == len(every), 60, "every void revoked")
        wait_for(
            lambda: all(
                stack.record(run["run_id"], t).get("state") == "succeeded" for t in tenants
            ),
            30,
            "every tenant's run record finished",
        )
    assert stack.histories(every) == [1] * len(every)
    for tenant_id, package in tenants.items():
        record = stack.record(run["run_id"], tenant_id)
        assert record["tenant"] == tenant_id and record["awaiting"] == []
        (source,) = record["sources"]
        assert (source["app"], source["seen"], source["applied"]) == (
            package,
            len(tokens[tenant_id]),
            len(tokens[tenant_id]),
        )
        assert stack.list_calls(package) == 1
        cursor = stack.cursor(package)
        assert cursor["run_id"] == run["run_id"] and cursor["pages"] == 1
        assert cursor["resume_token"] is None and cursor["complete_ms"] >= NOW_MS
    assert stack.dead_letters() == []
    # Each tenant's records alone, as the admin API asks for them.
    state = ReconcileState(stack.client, timeout_s=10)
    (mine,) = state.recent_runs(10, tenant="creator-2")
    assert (mine.run_id, mine.tenant, mine.state) == (run["run_id"], "creator-2", "succeeded")


def test_a_worker_killed_mid_page_loses_nothing_and_applies_nothing_twice(
    stack: Stack, make_client: Any, tmp_path: Path
) -> None:
    package, per_page, pages = "com.killed.app", 120, 3
    stack.play.page_size = per_page
    stack.tenant("killed", package)
    tokens = stack.voids(package, per_page * pages)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "worker.log"
    worker = start_function("reconcile_worker", port, stack.env, log_path=log)
    processes = [worker]
    try:
        stack.push_to(url, attempts=20)
        run = schedule(make_client, stack)
        # Killed while the second page is being applied: some of its voids are, some are not.
        wait_for(lambda: stack.revoked(tokens) > per_page + 10, 120, "the second page under way")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        at_kill = stack.revoked(tokens)
        assert per_page < at_kill < len(tokens), "the worker was not killed mid-page"
        assert stack.cursor(package)["pages"] == 1  # the page in flight was not done
        time.sleep(1)
        worker = start_function("reconcile_worker", port, stack.env, log_path=log)
        processes.append(worker)
        wait_for(lambda: stack.revoked(tokens) == len(tokens), 180, "every void revoked")
        wait_for(
            lambda: stack.record(run["run_id"], "killed").get("state") == "succeeded",
            60,
            "the run record finished",
        )
    finally:
        stop(processes)
    assert stack.histories(tokens) == [1] * len(tokens)  # nothing applied twice
    cursor = stack.cursor(package)
    assert (cursor["run_id"], cursor["pages"], cursor["resume_token"]) == (run["run_id"], 3, None)
    (source,) = stack.record(run["run_id"], "killed")["sources"]
    assert source["seen"] == len(tokens) and source["more"] is False and not source["errors"]
    assert cursor["tally"]["pages"] == pages
    assert source["applied"] + source["already_known"] == len(tokens)
    assert source["applied"] == len(tokens) - (at_kill - per_page)  # the rest found known
    # Each page was listed once, and the killed one once more: nothing skipped, no page twice
    # beyond the redelivery.
    assert stack.list_calls(package) == pages + 1


def test_a_message_that_keeps_failing_is_dead_lettered_and_replays_cleanly(
    stack: Stack, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.tenant("flaky", "com.flaky.app")
    stack.tenant("steady", "com.steady.app")
    flaky, steady = stack.voids("com.flaky.app", 3), stack.voids("com.steady.app", 2)
    # Google answers 503 to every list of the flaky package (each delivery: 3 page attempts of
    # 4 requests): the worker answers 503 and Pub/Sub tries again, 5 times.
    stack.play.fail_next(*[Fault(status=503, path="com.flaky.app/purchases") for _ in range(60)])
    with served("reconcile_worker", stack.env, monkeypatch) as url:
        stack.push_to(url, attempts=5)
        run = schedule(make_client, stack)
        dead: list[dict[str, Any]] = []
        wait_for(lambda: bool(dead.extend(stack.dead_letters()) or dead), 90, "a dead letter")
        assert stack.revoked(steady) == len(steady)  # the other tenant's work went on
        assert stack.revoked(flaky) == 0
        (letter,) = dead
        work = json.loads(base64.b64decode(letter["data"]))
        assert (work["tenant"], work["source"], work["app"]) == ("flaky", "google", "com.flaky.app")
        assert letter["attributes"]["tenant"] == "flaky"
        assert stack.cursor("com.flaky.app") == {}  # never moved
        assert stack.record(run["run_id"], "flaky")["state"] == "running"
        # The cause fixed (Google answers again), the dead letter is replayed as it is.
        with stack.play.lock:
            stack.play.faults.clear()
        stack.pubsub.publish(
            stack.name, [base64.b64decode(letter["data"])], {"tenant": "flaky", "source": "google"}
        )
        wait_for(lambda: stack.revoked(flaky) == len(flaky), 60, "the replayed work done")
        wait_for(
            lambda: stack.record(run["run_id"], "flaky").get("state") == "succeeded",
            30,
            "the flaky tenant's record finished",
        )
    assert stack.histories(flaky + steady) == [1] * 5


def test_one_tenants_backlog_does_not_delay_another(
    stack: Stack, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    per_page, pages = 60, 6
    stack.play.page_size = per_page
    stack.tenant("aaa-backlog", "com.backlog.app")  # listed (and published) first
    stack.tenant("zzz-small", "com.small.app")
    backlog = stack.voids("com.backlog.app", per_page * pages)
    small = stack.voids("com.small.app", 1)
    with served("reconcile_worker", stack.env, monkeypatch) as url:
        stack.push_to(url)
        run = schedule(make_client, stack)
        wait_for(
            lambda: stack.record(run["run_id"], "zzz-small").get("state") == "succeeded",
            60,
            "the small tenant's run finished",
        )
        backlog_pages_then = stack.cursor("com.backlog.app").get("pages", 0)
        assert stack.revoked(small) == 1
        wait_for(lambda: stack.revoked(backlog) == len(backlog), 180, "the backlog")
    # The small tenant was done while the backlog still had most of its pages to go.
    assert backlog_pages_then < pages - 1, backlog_pages_then
    assert stack.histories(backlog + small) == [1] * (len(backlog) + 1)
