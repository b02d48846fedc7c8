"""The entitlement store against the Firestore emulator: now, before, and the floors, in one run.

For the store as it is now and as it was at ``_baseline.BASELINE`` (RPC-level transactions through
the client's private API; taken with ``git archive`` into a temporary directory and run in its own
process with ``PYTHONPATH`` there, no copy in the tree), prints events/s, CPU per event (client +
emulator) and Firestore round trips per event for new events, duplicates and sequential events on
one hot purchase, and what a dozen concurrent admin-style events on one purchase cost (attempts,
time, failures). Beside them, floors measured in the same run: a plain client's ``get`` + ``set`` of
one document (new events) and ``get`` (duplicates), the same client on the store's two documents
(``get_all`` of both, one batch of both writes), and over HTTP, beside the Play function (real
functions-framework processes): a bare function doing only the raw get + set of the entitlement's
document (the floor of the Play target) and one that also decodes the push first.

Every phase runs in ``ROUNDS`` chunks of ``N`` events; the workers (long-lived processes) take
turns in a rotating order, so that load from elsewhere on the machine falls on all of them alike;
each rate is the median of its chunks, each CPU figure the mean.

    .venv/bin/python bench/bench_store.py [N [ROUNDS]]
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _baseline import BASELINE, baseline_functions, env_with
from refundguard_dev.rpc_counter import RpcCounter

ROOT = Path(__file__).resolve().parent.parent
N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 50  # events per chunk
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 20
HOT_WRITERS = 12
HOT_CLIENTS = 4
HOT_BURSTS = 5
RPCS = ("batch_get_documents", "begin_transaction", "commit", "rollback")
TARGETS = (("new", 0.9), ("dup", 0.9), ("http", 0.8))

FLOOR_FUNCTIONS = '''"""The floors over HTTP, with the plain client: ``bare`` does one get and
one set of a new document (the entitlement's fields); ``minimal`` also decodes the push first."""
import base64
import datetime
import json

from google.cloud import firestore

_db = firestore.Client()
_DOC = %(document)s


def bare(request):
    request.get_data()
    ref = _db.collection("floor-bare").document()
    ref.get()
    ref.set(_DOC)
    return {"status": "applied"}


def minimal(request):
    message = request.get_json()["message"]
    note = json.loads(base64.b64decode(message["data"]))
    token = note["voidedPurchaseNotification"]["purchaseToken"]
    ref = _db.collection("floor-http").document(token)
    ref.get()
    ref.set({**_DOC, "purchase_id": token, "last_event_id": message["messageId"],
             "last_event_time_ms": int(note["eventTimeMillis"])})
    return {"status": "applied"}
'''


# ------------------------------------------------------------------------------------ workers


def timed(counter: RpcCounter, items: list[Any], work: Callable[[Any], Any]) -> dict[str, Any]:
    counter.take()
    cpu = time.process_time()
    start = time.perf_counter()
    for item in items:
        work(item)
    elapsed = time.perf_counter() - start
    return {
        "rate": len(items) / elapsed,
        "cpu": time.process_time() - cpu,
        "rpcs": counter.take(),
        "n": len(items),
    }


def _model() -> Any:
    """Where the model lives in the tree a worker runs: ``refundguard.model`` now, ``ledger`` in
    the BASELINE tree (the split came later)."""
    try:
        from refundguard import model
    except ImportError:
        from refundguard import ledger as model
    return model


def _event(prefix: str, token: str, event_id: str, time_ms: int, **kw: Any) -> Any:
    m = _model()
    LedgerEvent, Source, Status, StoreName = m.LedgerEvent, m.Source, m.Status, m.StoreName

    fields: dict[str, Any] = {
        "store": StoreName.GOOGLE,
        "purchase_id": f"{prefix}-{token}",
        "event_id": event_id,
        "source": Source.GOOGLE,
        "type": "VOIDED_PURCHASE",
        "event_time_ms": time_ms,
        "effect": Status.REVOKED,
        "product_id": "course.premium",
        "details": {"orderId": "GPA.1234-5678-9012-34567", "refundType": "full"},
    }
    fields.update(kw)
    return LedgerEvent(**fields)


class StoreWorker:
    """The same workload for whichever ``refundguard`` is first on the path."""

    def __init__(self, prefix: str) -> None:
        import refundguard.store
        from google.cloud import firestore
        from refundguard.store import EntitlementStore

        self.prefix = prefix
        self.module = refundguard.store.__file__
        self.store = EntitlementStore(firestore.Client())
        self.counter = RpcCounter(self.store._client)
        self.stores = [self.store] + [
            EntitlementStore(firestore.Client()) for _ in range(HOT_CLIENTS - 1)
        ]
        self.fresh: dict[int, list[Any]] = {}
        self.hot_time = 1_000

    def run(self, phase: str, round_: int, n: int) -> dict[str, Any]:
        Status = _model().Status

        if phase == "new":
            self.fresh[round_] = [
                _event(self.prefix, f"r{round_}-tok-{i}", f"m-{i}", 1_000) for i in range(n)
            ]
            return timed(self.counter, self.fresh[round_], self.store.apply)
        if phase == "dup":
            result = timed(self.counter, self.fresh[round_], self.store.apply)
            assert self.store.apply(self.fresh[round_][0]).effect.value == "duplicate"
            return result
        if phase == "hot":
            events = []
            for _ in range(n):
                self.hot_time += 1
                events.append(
                    _event(
                        self.prefix,
                        "hot",
                        f"h-{self.hot_time}",
                        self.hot_time,
                        type="SUBSCRIPTION_RENEWED",
                        effect=Status.ACTIVE,
                    )
                )
            return timed(self.counter, events, self.store.apply)
        if phase == "burst":
            return self.burst(round_)
        raise ValueError(phase)

    def burst(self, round_: int) -> dict[str, Any]:
        """A dozen admin-style events at once on one purchase, from a few instances (clients)."""
        from refundguard.errors import RefundGuardError

        Source, Status = _model().Source, _model().Status

        barrier = threading.Barrier(HOT_WRITERS)
        outcomes: list[tuple[str, int, float]] = []
        now = time.time_ns() // 1_000_000

        def admin(i: int) -> None:
            ev = _event(
                self.prefix,
                f"burst-{round_}",
                f"admin-{i}",
                now + i,
                source=Source.ADMIN,
                type="ADMIN_REVOKE" if i % 2 else "ADMIN_REGRANT",
                effect=Status.REVOKED if i % 2 else Status.ACTIVE,
                actor="admin@example.com",
                reason="hot purchase",
            )
            barrier.wait()
            start = time.perf_counter()
            try:
                result = self.stores[i % HOT_CLIENTS].apply(ev)
                outcomes.append(("ok", result.attempts, time.perf_counter() - start))
            except RefundGuardError as err:
                outcomes.append((err.code, 0, time.perf_counter() - start))

        threads = [threading.Thread(target=admin, args=(i,)) for i in range(HOT_WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.counter.take()
        return {"outcomes": outcomes}


class FloorWorker:
    """The floors: a plain client, no ledger; one document per event, or the store's two."""

    def __init__(self, prefix: str) -> None:
        from google.cloud import firestore
        from refundguard.ledger import decide
        from refundguard.serializer import to_firestore

        self.db = firestore.Client()
        self.counter = RpcCounter(self.db)
        self.prefix = prefix
        decision = decide(None, _event(prefix, "t", "m", 1_000), already_seen=False, now_ms=1)
        self.entitlement = to_firestore(decision.entitlement)  # what the store writes
        self.history = to_firestore(decision.history)
        self.refs: dict[tuple[str, int], list[Any]] = {}

    def run(self, phase: str, round_: int, n: int) -> dict[str, Any]:
        collection = self.db.collection(f"floor-{phase}")
        if phase in ("new", "new2"):
            refs = self.refs[(phase, round_)] = [
                collection.document(f"{self.prefix}-r{round_}-{i}") for i in range(n)
            ]
            return timed(self.counter, refs, self.get_set if phase == "new" else self.two_docs)
        if phase == "dup":
            return timed(self.counter, self.refs[("new", round_)], lambda ref: ref.get())
        if phase == "dup2":
            return timed(self.counter, self.refs[("new2", round_)], self.read_two)
        raise ValueError(phase)

    def get_set(self, ref: Any) -> None:
        ref.get()
        ref.set(self.entitlement)

    def two_docs(self, ref: Any) -> None:
        history = ref.collection("history").document("m")
        list(self.db.get_all([ref, history]))
        batch = self.db.batch()
        batch.create(history, self.history)
        batch.create(ref, self.entitlement)
        batch.commit()

    def read_two(self, ref: Any) -> None:
        for snapshot in self.db.get_all([ref, ref.collection("history").document("m")]):
            snapshot.to_dict()


def floor_document() -> str:
    """The entitlement a new void makes, as Python source for the bare floor function."""
    from refundguard.ledger import decide
    from refundguard.serializer import to_firestore

    decision = decide(None, _event("bare", "t", "m", 1_000), already_seen=False, now_ms=1)
    return repr(to_firestore(decision.entitlement))


def worker_main(kind: str, prefix: str) -> None:
    """Commands on stdin (``phase round n``), one JSON answer per line on stdout."""
    worker: Any = StoreWorker(prefix) if kind == "store" else FloorWorker(prefix)
    print(json.dumps({"module": getattr(worker, "module", None)}), flush=True)
    for line in sys.stdin:
        phase, round_, n = line.split()
        print(json.dumps(worker.run(phase, int(round_), int(n))), flush=True)


# ------------------------------------------------------------------------------------ driver


def cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in a process group (the emulator, a server)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Worker:
    """A worker process; each chunk's answer gets the emulator's CPU for that chunk beside it."""

    def __init__(self, kind: str, label: str, env: dict[str, str], emulator_pgid: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, label],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.emulator_pgid = emulator_pgid
        self.module = self.read()["module"]

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"a bench worker died (exit {self.process.wait()})")
        return json.loads(line)

    def run(self, phase: str, round_: int, n: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        emulator_cpu = cpu_seconds(self.emulator_pgid)
        self.process.stdin.write(f"{phase} {round_} {n}\n")
        self.process.stdin.flush()
        answer = self.read()
        answer["emulator_cpu"] = cpu_seconds(self.emulator_pgid) - emulator_cpu
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def http_chunk(url: str, prefix: str, n: int, pgids: tuple[int, int]) -> dict[str, float]:
    """``n`` new Play notifications, one after another: rate, and server + emulator CPU."""
    import requests
    from refundguard_dev.play_messages import play_request

    bodies = [play_request("voided", f"{prefix}-{i}", message_id=f"{prefix}-{i}") for i in range(n)]
    server, emulator = pgids
    with requests.Session() as session:
        cpu = (cpu_seconds(server), cpu_seconds(emulator))
        start = time.perf_counter()
        for body, headers in bodies:
            response = session.post(url, data=body, headers=headers, timeout=30)
            assert response.status_code == 200, response.text
        elapsed = time.perf_counter() - start
    return {
        "rate": n / elapsed,
        "cpu": cpu_seconds(server) - cpu[0],
        "emulator_cpu": cpu_seconds(emulator) - cpu[1],
        "n": n,
    }


def rotated(items: list[Any], round_: int) -> list[Any]:
    """A different order each round, so that no one always runs right after another."""
    k = round_ % len(items)
    return items[k:] + items[:k]


def summary(results: list[dict[str, Any]]) -> tuple[float, str, str]:
    """The median rate over chunks; CPU per event and RPCs per event over all of them."""
    n = sum(result["n"] for result in results)
    rate = statistics.median(result["rate"] for result in results)
    client = 1000 * sum(result["cpu"] for result in results) / n
    emulator = 1000 * sum(result.get("emulator_cpu", 0.0) for result in results) / n
    cpu = f"cpu {client:.2f} + {emulator:.2f} ms"
    counts: collections.Counter[str] = collections.Counter()
    for result in results:
        counts.update(result.get("rpcs", {}))
    parts = ", ".join(f"{name} {counts[name] / n:.2f}" for name in RPCS if counts[name])
    return rate, cpu, f"{sum(counts.values()) / n:.2f} round trips/event ({parts})"


def main() -> None:
    from refundguard_dev.emulator import bench_emulator, free_port, stop_process
    from refundguard_dev.play_messages import PACKAGE
    from refundguard_dev.processes import start_function, stop

    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    baseline = contextlib.ExitStack()
    before = baseline.enter_context(baseline_functions())
    emu = bench_emulator()
    emulator_pgid = emu.process.pid  # started in a session of its own
    workers: dict[str, Worker] = {}
    processes: list[Any] = []
    try:
        env = {**os.environ, **emu.env()}
        env.pop("PYTHONPATH", None)
        workers["floor"] = Worker("floor", "floor", env, emulator_pgid)
        workers["now"] = Worker("store", "now", env, emulator_pgid)
        if before:
            before_env = {**env, **env_with(before)}
            workers["before"] = Worker("store", "before", before_env, emulator_pgid)
            assert workers["before"].module.startswith(str(before)), workers["before"].module
        assert workers["now"].module.startswith(str(ROOT / "functions")), workers["now"].module
        stores = [label for label in workers if label != "floor"]

        # Store layer: the workers take turns, chunk by chunk, ROUNDS times (duplicates re-apply
        # the round's new events, so every "new" chunk of a round comes before its "dup" chunks).
        steps = [
            [(label, "new") for label in stores] + [("floor", "new"), ("floor", "new2")],
            [(label, "dup") for label in stores] + [("floor", "dup"), ("floor", "dup2")],
            [(label, "hot") for label in stores],
        ]
        runs: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
        for round_ in range(-1, ROUNDS):  # round -1 warms up the emulator, channels, code paths
            for step in steps:
                for label, phase in rotated(step, round_):
                    result = workers[label].run(phase, round_, N)
                    if round_ >= 0:
                        runs[(label, phase)].append(result)
        bursts: dict[str, list[tuple[str, int, float]]] = collections.defaultdict(list)
        for burst in range(HOT_BURSTS):
            for label in rotated(stores, burst):
                bursts[label] += workers[label].run("burst", burst, HOT_WRITERS)["outcomes"]

        # Over HTTP: real functions-framework processes, one keep-alive client, the same bodies.
        floor_dir = tmp / "floor"
        floor_dir.mkdir()
        (floor_dir / "main.py").write_text(FLOOR_FUNCTIONS % {"document": floor_document()})
        play_env = {**env, "PLAY_PACKAGE_NAMES": PACKAGE}
        servers = {
            "bare": (floor_dir / "main.py", "bare", env),
            "minimal": (floor_dir / "main.py", "minimal", env),
            "now": (ROOT / "functions" / "main.py", "play_notifications", play_env),
        }
        if before:
            servers["before"] = (
                before / "main.py",
                "play_notifications",
                {**play_env, **env_with(before)},
            )
        urls: dict[str, tuple[str, tuple[int, int]]] = {}
        for name, (source, target, server_env) in servers.items():
            port = free_port()
            log = tmp / f"{name}.log"
            process = start_function(target, port, server_env, log, source=source)
            processes.append(process)
            urls[name] = (f"http://127.0.0.1:{port}/", (process.pid, emulator_pgid))
            http_chunk(urls[name][0], f"warm-{name}", N, urls[name][1])
        http: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for round_ in range(ROUNDS):
            for name in rotated(list(urls), round_):
                url, pgids = urls[name]
                http[name].append(http_chunk(url, f"{name}-{round_}", N, pgids))

        report(runs, bursts, http, stores)
    finally:
        for worker in workers.values():
            worker.close()
        stop(processes)
        stop_process(emu.process)
        shutil.rmtree(tmp, ignore_errors=True)
        baseline.close()


def report(
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    bursts: dict[str, list[tuple[str, int, float]]],
    http: dict[str, list[dict[str, Any]]],
    stores: list[str],
) -> None:
    names = {"now": "store (now)", "before": f"store ({BASELINE})"}
    print(
        f"Entitlement store against the Firestore emulator: {ROUNDS} chunks of {N} events per "
        "phase, workers taking turns; rate: median of the chunks; cpu: client + emulator per event"
    )
    if "before" not in stores:
        print(f"  (git history unavailable: the store as it was at {BASELINE} is not measured)")
    rates: dict[tuple[str, str], float] = {}
    floors = {
        "new": (("new", "floor: get + set, 1 doc"), ("new2", "floor: store's 2 docs")),
        "dup": (("dup", "floor: get, 1 doc"), ("dup2", "floor: get_all, 2 docs")),
        "hot": (),
    }
    for phase, title in (
        ("new", "new events"),
        ("dup", "duplicates"),
        ("hot", "one hot purchase, sequential"),
    ):
        print(f"{title}:")
        rows = [((label, phase), names[label]) for label in stores]
        rows += [(("floor", floor), name) for floor, name in floors[phase]]
        for key, name in rows:
            rate, cpu, rpcs = summary(runs[key])
            rates[key] = rate
            print(f"  {name:<26} {rate:7.1f} events/s   {cpu}   {rpcs}")
        for floor, name in floors[phase]:
            ratios = ", ".join(
                f"{names[label]} {rates[(label, phase)] / rates[('floor', floor)]:.2f}x"
                for label in stores
            )
            print(f"  ratio to {name.removeprefix('floor: ')}: {ratios}")
    print(
        f"{HOT_WRITERS} concurrent admin-style events on one purchase ({HOT_CLIENTS} clients), "
        f"{HOT_BURSTS} bursts:"
    )
    for label in stores:
        outcomes = bursts[label]
        ok = [o for o in outcomes if o[0] == "ok"]
        failed = collections.Counter(o[0] for o in outcomes if o[0] != "ok")
        attempts = [o[1] for o in ok] or [0]
        seconds = [o[2] for o in outcomes]
        print(
            f"  {names[label]:<26} {len(ok)}/{len(outcomes)} succeeded"
            + (f" (failed: {dict(failed)})" if failed else "")
            + f"; attempts mean {statistics.mean(attempts):.1f} max {max(attempts)}; "
            f"time per event median {1000 * statistics.median(seconds):.0f} ms, "
            f"max {1000 * max(seconds):.0f} ms"
        )
    print(
        "Over HTTP (functions-framework processes, one keep-alive client), new Play "
        "notifications; cpu: server + emulator per request:"
    )
    http_rates = {}
    for name, title in (
        ("bare", "bare function: get + set"),
        ("minimal", "decode + get + set"),
        ("now", "Play function (now)"),
        ("before", f"Play function ({BASELINE})"),
    ):
        if name in http:
            rate, cpu, _ = summary(http[name])
            http_rates[name] = rate
            ratio_text = (
                "" if name == "bare" else f"   ratio to bare: {rate / http_rates['bare']:.2f}x"
            )
            if name in ("now", "before"):
                ratio_text += f", to decode + get + set: {rate / http_rates['minimal']:.2f}x"
            print(f"  {title:<26} {rate:7.1f} requests/s   {cpu}{ratio_text}")
    print("Targets (now):")
    achieved = {
        "new": ("store new events / get + set", rates[("now", "new")] / rates[("floor", "new")]),
        "dup": ("store duplicates / get", rates[("now", "dup")] / rates[("floor", "dup")]),
        "http": ("Play function / bare function", http_rates["now"] / http_rates["bare"]),
    }
    for key, target in TARGETS:
        name, ratio = achieved[key]
        verdict = "met" if ratio >= target else "NOT met"
        print(f"  {name:<34} {ratio:.2f}x (target >= {target}x: {verdict})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3])
    else:
        main()
