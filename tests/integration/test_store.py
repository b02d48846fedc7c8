"""EntitlementStore against the real Firestore emulator: round trips, duplicates, races, the
deadline, values Firestore cannot store, and (statically) that runtime code uses the client's public
API only.

RPCs are counted by wrapping the client's generated API object: a private attribute, touched here,
in a test, and never by the code under test.
"""

from __future__ import annotations

import ast
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from refundguard.errors import Kind, RefundGuardError
from refundguard.ledger import decide
from refundguard.model import (
    Effect,
    Entitlement,
    HistoryEntry,
    LedgerEvent,
    Source,
    Status,
    StoreName,
)
from refundguard.store import ENTITLEMENTS, HISTORY, EntitlementStore, now_ms
from refundguard_dev.emulator import FirestoreEmulator
from refundguard_dev.rpc_counter import RpcCounter
from refundguard_dev.tcp_proxy import TcpProxy

pytestmark = pytest.mark.emulator

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
TOKEN = "tok.store-1"


def event(
    event_id: str,
    time_ms: int,
    effect: Status | None,
    *,
    token: str = TOKEN,
    source: Source = Source.GOOGLE,
    **kw: Any,
) -> LedgerEvent:
    return LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id=token,
        event_id=event_id,
        source=source,
        type="ADMIN_REGRANT" if source is Source.ADMIN else "VOIDED_PURCHASE",
        event_time_ms=time_ms,
        effect=effect,
        product_id="course.premium",
        **kw,
    )


def ledger_fold(events: list[LedgerEvent]) -> Entitlement | None:
    """What the ledger says, applying the events one by one in the given order."""
    current: Entitlement | None = None
    for ev in events:  # received now: no event of these tests is dated in the future
        current = decide(current, ev, already_seen=False, now_ms=now_ms()).entitlement
    return current


def comparable(ent: Entitlement | None) -> Entitlement | None:
    """An entitlement without the store's clock readings."""
    return dataclasses.replace(ent, created_ms=0, updated_ms=0) if ent else None


def history_ids(store: EntitlementStore, token: str = TOKEN) -> list[str]:
    return sorted(h.event_id for h in store.history(StoreName.GOOGLE, token))


@pytest.fixture
def counter(store: EntitlementStore) -> RpcCounter:
    return RpcCounter(store._client)


def run_threads(targets: list[Callable[[], None]], timeout_s: float = 60) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    assert not any(thread.is_alive() for thread in threads)


# ------------------------------------------------------------------------------ round trips


def test_a_new_event_is_one_read_and_one_commit(
    store: EntitlementStore, counter: RpcCounter
) -> None:
    result = store.apply(event("m-1", 1_000, Status.ACTIVE))
    assert counter.take() == {"batch_get_documents": 1, "commit": 1}
    assert result.effect is Effect.APPLIED and result.attempts == 1
    assert result.entitlement is not None and result.entitlement.status is Status.ACTIVE
    assert result.history is not None and result.history.event_id == "m-1"

    # An existing entitlement: the same two round trips (update on its update time).
    result = store.apply(event("m-2", 2_000, Status.REVOKED))
    assert counter.take() == {"batch_get_documents": 1, "commit": 1}
    assert result.effect is Effect.APPLIED and result.history is not None
    assert result.history.status_before is Status.ACTIVE
    stored = store.get(StoreName.GOOGLE, TOKEN)
    assert stored == result.entitlement and stored.history_count == 2


def test_a_duplicate_is_one_read_no_write_and_returns_the_stored_entry(
    store: EntitlementStore, counter: RpcCounter
) -> None:
    first = store.apply(event("m-1", 1_000, Status.REVOKED, details={"orderId": "GPA.1"}))
    counter.take()
    again = store.apply(event("m-1", 1_000, Status.REVOKED, details={"orderId": "GPA.1"}))
    assert counter.take() == {"batch_get_documents": 1}  # no commit, no rollback
    assert again.effect is Effect.DUPLICATE and again.attempts == 1
    assert again.history == first.history  # as stored, read in the same round trip
    assert again.entitlement == first.entitlement
    assert history_ids(store) == ["m-1"]


def test_stored_documents_carry_readable_timestamps(store: EntitlementStore) -> None:
    result = store.apply(event("m-1", 1_000, Status.ACTIVE))
    assert result.history is not None
    ref = store._client.collection(ENTITLEMENTS).document(f"google:{TOKEN}")
    ent = ref.get().to_dict()
    assert ent["status"] == "active" and ent["last_event_time_ms"] == 1_000
    assert ent["last_event_time_at"].timestamp() == 1.0
    assert ent["updated_at"].timestamp() * 1000 == pytest.approx(ent["updated_ms"])
    entry = ref.collection(HISTORY).document("google:m-1").get().to_dict()
    assert entry["effect"] == "applied" and entry["event_time_at"].timestamp() == 1.0
    assert entry["received_ms"] == result.history.received_ms


# ------------------------------------------------------------------------------ races


def test_concurrent_events_on_one_purchase_all_apply_and_end_as_the_ledger_says(
    store: EntitlementStore,
) -> None:
    statuses = [Status.ACTIVE, Status.REVOKED, Status.ON_HOLD, Status.ACTIVE, Status.EXPIRED]
    events = [event(f"m-{i}", 1_000 + i * 10, statuses[i % 5]) for i in range(10)]
    events.append(event("info-1", 1_005, None))  # informational: recorded
    results: dict[str, Any] = {}
    barrier = threading.Barrier(len(events))

    def apply(ev: LedgerEvent) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            results[ev.event_id] = store.apply(ev)

        return run

    run_threads([apply(ev) for ev in events])
    assert len(results) == len(events)
    assert all(r.effect is not Effect.DUPLICATE for r in results.values())
    assert history_ids(store) == sorted(ev.event_id for ev in events)
    final = store.get(StoreName.GOOGLE, TOKEN)
    assert comparable(final) == comparable(ledger_fold(events))
    assert final is not None and final.history_count == len(events)


def test_concurrent_appliers_of_the_same_event_write_it_once(
    store: EntitlementStore, emulator_env: dict[str, str]
) -> None:
    stores = [store] + [EntitlementStore.from_env(emulator_env) for _ in range(3)]
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def apply(s: EntitlementStore) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            results.append(s.apply(event("m-same", 1_000, Status.REVOKED)))

        return run

    run_threads([apply(stores[i % 4]) for i in range(8)])
    assert sorted(r.effect.value for r in results) == ["applied"] + ["duplicate"] * 7
    written = next(r.history for r in results if r.effect is Effect.APPLIED)
    assert all(r.history == written for r in results)  # duplicates answer the stored entry
    assert history_ids(store) == ["m-same"]
    assert store.get(StoreName.GOOGLE, TOKEN).history_count == 1


def _after_first_read(store: EntitlementStore, action: Callable[[], None]) -> list[int]:
    """Run ``action`` between ``store``'s first read and its commit; returns a call counter."""
    client = store._client
    original = client.get_all
    calls = [0]

    def get_all(*args: Any, **kw: Any) -> Iterator[Any]:
        snapshots = list(original(*args, **kw))
        calls[0] += 1
        if calls[0] == 1:
            action()
        return iter(snapshots)

    client.get_all = get_all  # type: ignore[method-assign]
    return calls


def test_another_writer_between_read_and_commit_is_read_again(
    store: EntitlementStore, emulator_env: dict[str, str]
) -> None:
    other = EntitlementStore.from_env(emulator_env)
    store.apply(event("m-0", 1_000, Status.ACTIVE))
    refund = event("m-refund", 3_000, Status.REVOKED)
    calls = _after_first_read(store, lambda: other.apply(refund))

    late_purchase = event("m-late", 2_000, Status.ACTIVE)
    result = store.apply(late_purchase)
    assert calls[0] == 2 and result.attempts == 2  # the update-time condition failed once
    assert result.effect is Effect.STALE  # decided again on what the other writer left
    final = store.get(StoreName.GOOGLE, TOKEN)
    assert final is not None and final.status is Status.REVOKED and final.history_count == 3
    assert history_ids(store) == ["m-0", "m-late", "m-refund"]


def test_the_same_event_landing_between_read_and_commit_is_a_duplicate(
    store: EntitlementStore, emulator_env: dict[str, str]
) -> None:
    other = EntitlementStore.from_env(emulator_env)
    refund = event("m-refund", 3_000, Status.REVOKED)
    _after_first_read(store, lambda: other.apply(refund))  # creates the entitlement, too
    result = store.apply(refund)
    assert result.effect is Effect.DUPLICATE and result.attempts == 2
    assert result.history is not None and result.history.effect is Effect.APPLIED
    assert history_ids(store) == ["m-refund"]


def test_a_commit_whose_answer_was_lost_comes_back_as_a_duplicate(
    store: EntitlementStore,
) -> None:
    client = store._client
    make_batch = client.batch
    lost = [0]

    def batch() -> Any:
        real = make_batch()
        commit = real.commit

        def commit_then_lose_the_answer(*args: Any, **kw: Any) -> Any:
            results = commit(*args, **kw)
            if not lost[0]:
                lost[0] += 1
                raise gexc.ServiceUnavailable("connection reset after the commit")
            return results

        real.commit = commit_then_lose_the_answer  # type: ignore[method-assign]
        return real

    client.batch = batch  # type: ignore[method-assign]
    result = store.apply(event("m-1", 1_000, Status.REVOKED))
    assert lost[0] == 1 and result.attempts == 2
    assert result.effect is Effect.DUPLICATE  # the first attempt's commit, found by the second
    assert result.history is not None and result.history.effect is Effect.APPLIED
    assert history_ids(store) == ["m-1"]


def test_a_dozen_concurrent_admin_events_on_one_purchase_all_succeed(
    store: EntitlementStore, emulator_env: dict[str, str]
) -> None:
    stores = [store] + [EntitlementStore.from_env(emulator_env) for _ in range(3)]
    base = now_ms()
    events = [
        event(
            f"admin-{i}",
            base + i,
            Status.ACTIVE if i % 2 else Status.REVOKED,
            source=Source.ADMIN,
            actor="admin@example.com",
            reason="hot purchase",
        )
        for i in range(12)
    ]
    results: dict[str, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(events))

    def apply(s: EntitlementStore, ev: LedgerEvent) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            try:
                results[ev.event_id] = s.apply(ev)
            except BaseException as exc:  # a 503 would land here
                errors.append(exc)

        return run

    run_threads([apply(stores[i % 4], ev) for i, ev in enumerate(events)])
    assert errors == []
    assert {r.effect for r in results.values()} <= {Effect.APPLIED, Effect.STALE}
    assert history_ids(store) == sorted(ev.event_id for ev in events)
    final = store.get(StoreName.GOOGLE, TOKEN)
    assert comparable(final) == comparable(ledger_fold(events))


# ------------------------------------------------------------------------------ failures


@pytest.fixture
def proxy(emulator_env: dict[str, str]) -> Iterator[TcpProxy]:
    p = TcpProxy(emulator_env["FIRESTORE_EMULATOR_HOST"])
    yield p
    p.close()


def test_firestore_cut_is_transient_within_the_deadline_and_the_retry_lands_once(
    store: EntitlementStore,
    proxy: TcpProxy,
    firestore_emulator: FirestoreEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proxy.address)
    far = EntitlementStore(firestore.Client(project=firestore_emulator.project), deadline_s=1.0)
    far.apply(event("m-0", 1_000, Status.ACTIVE))  # the channel is up
    refund = event("m-refund", 2_000, Status.REVOKED)

    proxy.down()
    started = time.monotonic()
    with pytest.raises(RefundGuardError) as info:
        far.apply(refund)
    # Bounded by the deadline, not the client library's 60-300 s retry loops (a loose bound).
    assert time.monotonic() - started < 10
    assert info.value.kind is Kind.TRANSIENT and info.value.code == "firestore_unavailable"
    assert isinstance(info.value.__cause__, gexc.GoogleAPICallError)
    assert history_ids(store) == ["m-0"]  # `store` talks to the emulator directly
    assert store.get(StoreName.GOOGLE, TOKEN).status is Status.ACTIVE

    proxy.up()
    for _ in range(60):  # what the sender does: retry until it lands (gRPC reconnects with backoff)
        try:
            result = far.apply(refund)
            break
        except RefundGuardError as err:
            assert err.kind is Kind.TRANSIENT
            time.sleep(0.5)
    else:
        raise AssertionError("never applied")
    assert result.effect is Effect.APPLIED
    assert far.apply(refund).effect is Effect.DUPLICATE
    assert history_ids(store) == ["m-0", "m-refund"]
    assert store.get(StoreName.GOOGLE, TOKEN).status is Status.REVOKED


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "details",
    [
        {"productType": 2**70},  # refused by the client library (no 64-bit integer for it)
        {"orderId": "x" * 1_100_000},  # refused by Firestore: INVALID_ARGUMENT (too large)
        {"productType": _nested(30)},  # refused by Firestore: INVALID_ARGUMENT (too deep)
    ],
    ids=["int-out-of-range", "too-large", "too-deep"],
)
def test_a_value_firestore_cannot_store_is_rejected_not_transient(
    store: EntitlementStore, details: dict[str, Any]
) -> None:
    started = time.monotonic()
    unchecked = event("m-1", 1_000, Status.REVOKED)
    object.__setattr__(unchecked, "details", details)  # past the ledger's own check of values
    with pytest.raises(RefundGuardError) as info:
        store.apply(unchecked)
    assert info.value.kind is Kind.REJECTED and info.value.code == "unstorable"
    assert time.monotonic() - started < 5  # not retried until the deadline (a loose bound)
    assert store.get(StoreName.GOOGLE, TOKEN) is None and history_ids(store) == []


def test_a_detail_name_outside_the_allow_list_never_reaches_firestore(
    store: EntitlementStore,
) -> None:
    """A name Firestore reserves (``__x__``) or any other unlisted one is left out of history
    (``history_details``): the event is applied with what is listed."""
    unchecked = event("m-1", 1_000, Status.REVOKED)
    object.__setattr__(unchecked, "details", {"__reserved__": 1, "orderId": "GPA.1", "x": 2})
    result = store.apply(unchecked)
    assert result.effect is Effect.APPLIED
    assert store.history(StoreName.GOOGLE, TOKEN)[0].details == {"orderId": "GPA.1"}


def test_an_event_time_beyond_firestore_timestamps_is_clamped_not_lost(
    store: EntitlementStore,
) -> None:
    """Year 33658 has no Firestore timestamp; the ledger orders such an event at its receipt,
    so it is stored, with the time it stated kept in its history."""
    unchecked = event("m-1", 1_000, Status.REVOKED)
    object.__setattr__(unchecked, "event_time_ms", 10**15)  # past the ledger's check of times
    result = store.apply(unchecked)
    assert result.effect is Effect.APPLIED and result.history is not None
    assert result.history.details["stated_event_time_ms"] == 10**15
    assert store.get(StoreName.GOOGLE, TOKEN).status is Status.REVOKED


@pytest.mark.parametrize(
    "error", [gexc.PermissionDenied("denied"), gexc.NotFound("database (default) not found")]
)
def test_errors_that_are_ours_to_fix_stay_transient(
    store: EntitlementStore, error: Exception
) -> None:
    def get_all(*args: Any, **kw: Any) -> Any:
        raise error

    store._client.get_all = get_all  # type: ignore[method-assign]
    with pytest.raises(RefundGuardError) as info:
        store.apply(event("m-1", 1_000, Status.REVOKED))
    assert info.value.kind is Kind.TRANSIENT and info.value.code == "firestore_error"
    assert info.value.__cause__ is error


def test_contention_until_the_deadline_is_transient(store: EntitlementStore) -> None:
    def get_all(*args: Any, **kw: Any) -> Any:
        raise gexc.Aborted("too much contention")

    store._client.get_all = get_all  # type: ignore[method-assign]
    store._deadline_s = 0.3
    with pytest.raises(RefundGuardError) as info:
        store.apply(event("m-1", 1_000, Status.REVOKED))
    assert info.value.kind is Kind.TRANSIENT and info.value.code == "firestore_contention"


# ------------------------------------------------------------------------------ reads


def test_history_newest_first_and_get(store: EntitlementStore) -> None:
    clock = iter(range(10_000, 20_000, 10))
    timed = EntitlementStore(store._client, clock_ms=lambda: next(clock))
    for i in range(3):
        timed.apply(event(f"m-{i}", 1_000 + i, Status.ACTIVE))
    entries = timed.history(StoreName.GOOGLE, TOKEN)
    assert [e.event_id for e in entries] == ["m-2", "m-1", "m-0"]
    assert all(isinstance(e, HistoryEntry) for e in entries)
    assert timed.history(StoreName.GOOGLE, TOKEN, limit=1)[0].event_id == "m-2"
    assert timed.get(StoreName.GOOGLE, "never-seen") is None


# ------------------------------------------------------------------------------ public API only


def _private_uses(source: str) -> list[str]:
    """Imports of a private module of google.*, and attribute names with one leading underscore
    read off anything but ``self``/``cls``."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("google"):
            names = [node.module, *(alias.name for alias in node.names)]
            found += [f"import {n}" for n in names if any(p.startswith("_") for p in n.split("."))]
        elif isinstance(node, ast.Import):
            found += [
                f"import {a.name}"
                for a in node.names
                if a.name.startswith("google") and any(p.startswith("_") for p in a.name.split("."))
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_no_runtime_module_touches_firestore_privates() -> None:
    offenders = {
        str(path.relative_to(FUNCTIONS)): uses
        for path in sorted(FUNCTIONS.rglob("*.py"))
        if (uses := _private_uses(path.read_text()))
    }
    assert offenders == {}


def test_the_private_use_check_sees_what_the_old_store_did() -> None:
    old = (
        "from google.cloud.firestore_v1 import _helpers\n"
        "import google.cloud.firestore_v1._helpers\n"
        "api = client._firestore_api\n"
        "path = ref._document_path\n"
    )
    assert len(_private_uses(old)) == 4


def test_entitlements_are_found_by_any_order_id_they_have_seen(store: EntitlementStore) -> None:
    store.apply(event("m-1", 1_000, Status.ACTIVE, order_id="GPA.1111-2222"))
    store.apply(event("m-2", 2_000, Status.ACTIVE, order_id="GPA.1111-2222..0"))
    other = dataclasses.replace(event("m-3", 1_000, Status.ACTIVE), purchase_id="other-token")
    store.apply(other)
    for order in ("GPA.1111-2222", "GPA.1111-2222..0"):
        [found] = store.find_by_order(order)
        assert found.purchase_id == TOKEN and found.order_id == "GPA.1111-2222..0"
    assert store.find_by_order("GPA.nothing") == []
