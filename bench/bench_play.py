"""Play notifications through the Play function against the Firestore emulator.

Prints notifications/s and Firestore round trips per notification for: new notifications, exact
redeliveries (duplicates), and events on one hot token; and, measured in the same run, the same
work done with the client library's ``@firestore.transactional`` helper (BeginTransaction + read +
commit) as the baseline. Targets: one read and one commit per notification; a duplicate costs one
read and no write. (bench_store.py compares the store with its floors and its previous version.)

    .venv/bin/python bench/bench_play.py [N]
"""

from __future__ import annotations

import collections
import os
import sys
import time
from pathlib import Path
from typing import Any

import functions_framework
from google.cloud import firestore
from refundguard import logs
from refundguard.ledger import decide
from refundguard.model import Entitlement
from refundguard.playstore import envelope, rtdn
from refundguard.serializer import load, to_firestore
from refundguard.store import ENTITLEMENTS, HISTORY, EntitlementStore
from refundguard_dev.emulator import bench_emulator as emulator
from refundguard_dev.play_messages import PACKAGE, play_request
from refundguard_dev.rpc_counter import RpcCounter
from refundguard_dev.tcp_proxy import TcpProxy

MAIN_PY = Path(__file__).resolve().parent.parent / "functions" / "main.py"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
LATENCY_S = 0.005
RPCS = ("batch_get_documents", "begin_transaction", "commit", "rollback")


def per_message(counts: collections.Counter[str], n: int) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{name} {counts[name] / n:.2f}" for name in RPCS if counts[name])
    return f"{total / n:.2f} round trips/notification ({parts})"


def run_function(client: Any, bodies: list[tuple[bytes, dict[str, str]]]) -> float:
    start = time.perf_counter()
    for body, headers in bodies:
        response = client.post("/", data=body, headers=headers)
        assert response.status_code == 200, response.get_data()
    return time.perf_counter() - start


def run_store(store: EntitlementStore, bodies: list[tuple[bytes, dict[str, str]]]) -> float:
    """refundguard's store layer alone (same parsing as the baseline, no HTTP, no logging)."""
    start = time.perf_counter()
    for body, headers in bodies:
        store.apply(rtdn.parse(envelope.parse(headers, body), [PACKAGE]).event)
    return time.perf_counter() - start


def run_baseline(db: firestore.Client, bodies: list[tuple[bytes, dict[str, str]]]) -> float:
    """The same decision with the library's @transactional helper (what most code would do)."""

    @firestore.transactional
    def apply(transaction: Any, ent_ref: Any, hist_ref: Any, event: Any) -> None:
        snapshots = {s.reference.path: s for s in transaction.get_all([ent_ref, hist_ref])}
        current = snapshots[ent_ref.path]
        decision = decide(
            load(Entitlement, current.to_dict()) if current.exists else None,
            event,
            already_seen=snapshots[hist_ref.path].exists,
            now_ms=time.time_ns() // 1_000_000,
        )
        if decision.writes:
            transaction.set(ent_ref, to_firestore(decision.entitlement))
            transaction.create(hist_ref, to_firestore(decision.history))

    start = time.perf_counter()
    for body, headers in bodies:
        event = rtdn.parse(envelope.parse(headers, body), [PACKAGE]).event
        ent_ref = db.collection(ENTITLEMENTS + "-baseline").document(event.document_id)
        apply(
            db.transaction(), ent_ref, ent_ref.collection(HISTORY).document(event.history_id), event
        )
    return time.perf_counter() - start


def main() -> None:
    emu = emulator()
    try:
        os.environ.update(emu.env())
        os.environ["PLAY_PACKAGE_NAMES"] = PACKAGE
        logs._stream = open(os.devnull, "w")  # noqa: SIM115 - one JSON line per message is noise here
        app = functions_framework.create_app("play_notifications", str(MAIN_PY))
        main_module = sys.modules["main"]
        store = EntitlementStore.from_env(os.environ)
        counter = RpcCounter(store._client)
        from refundguard.play.function import create_handler

        main_module._handlers["play_notifications"] = create_handler(os.environ, entitlements=store)
        client = app.test_client()

        fresh = [play_request("voided", f"tok-{i}", message_id=f"new-{i}") for i in range(N)]
        hot = [
            play_request(
                "subscription",
                "tok-hot",
                time_ms=1_000 + i,
                notification_type=2,
                message_id=f"hot-{i}",
            )
            for i in range(N)
        ]
        run_function(
            client, [play_request("voided", f"warm-{i}", message_id=f"warm-{i}") for i in range(50)]
        )  # warm up the emulator JVM, channels and code paths
        counter.take()

        rows = []
        for label, bodies in (
            ("new notifications", fresh[10:]),
            ("duplicates", fresh[10:]),
            ("one hot token", hot),
        ):
            elapsed = run_function(client, bodies)
            rows.append((label, len(bodies) / elapsed, per_message(counter.take(), len(bodies))))

        store_bodies = [play_request("voided", f"s-{i}", message_id=f"s-{i}") for i in range(N)]
        run_store(store, store_bodies[:10])
        counter.take()
        store_rate = (N - 10) / run_store(store, store_bodies[10:])
        store_rpcs = per_message(counter.take(), N - 10)

        baseline_db = firestore.Client(project=emu.project)
        baseline_counter = RpcCounter(baseline_db)
        baseline_bodies = [play_request("voided", f"b-{i}", message_id=f"b-{i}") for i in range(N)]
        run_baseline(baseline_db, baseline_bodies[:10])
        baseline_counter.take()
        base_rate = (N - 10) / run_baseline(baseline_db, baseline_bodies[10:])
        base_rpcs = per_message(baseline_counter.take(), N - 10)

        # The same two store layers with a network in between: every response from Firestore
        # held LATENCY_S by a proxy, as a round trip to a real Firestore costs milliseconds.
        proxy = TcpProxy(emu.host, response_delay_s=LATENCY_S)
        os.environ["FIRESTORE_EMULATOR_HOST"] = proxy.address
        far_store = EntitlementStore.from_env(os.environ)
        far_baseline = firestore.Client(project=emu.project)
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        n_far = max(20, N // 4)
        far = [play_request("voided", f"f-{i}", message_id=f"f-{i}") for i in range(n_far + 5)]
        far_b = [play_request("voided", f"fb-{i}", message_id=f"fb-{i}") for i in range(n_far + 5)]
        run_store(far_store, far[:5])
        run_baseline(far_baseline, far_b[:5])
        far_ms = 1000 * run_store(far_store, far[5:]) / n_far
        far_base_ms = 1000 * run_baseline(far_baseline, far_b[5:]) / n_far
        proxy.close()

        print(f"Play function against the Firestore emulator, N={N} per scenario")
        print("Through the function (functions-framework app: HTTP parsing, envelope, JSON log):")
        for label, rate, rpcs in rows:
            print(f"  {label:<18} {rate:8.1f} notifications/s   {rpcs}")
        print("Store layer only (same parsing, no HTTP), new notifications:")
        print(f"  {'refundguard':<18} {store_rate:8.1f} notifications/s   {store_rpcs}")
        print(f"  {'@transactional':<18} {base_rate:8.1f} notifications/s   {base_rpcs}")
        print(
            f"  ratio refundguard / @transactional: {store_rate / base_rate:.2f}x throughput on "
            "the emulator (loopback, ~0.3 ms a round trip); against real Firestore each round "
            "trip costs milliseconds, so 2 instead of 3 round trips is the figure that matters"
        )
        print(
            f"Store layer with {LATENCY_S * 1000:.0f} ms added to every Firestore response "
            f"(a network; N={n_far}), new notifications:"
        )
        print(f"  {'refundguard':<18} {far_ms:8.1f} ms/notification")
        print(f"  {'@transactional':<18} {far_base_ms:8.1f} ms/notification")
        print(f"  ratio @transactional / refundguard latency: {far_base_ms / far_ms:.2f}x")
    finally:
        from refundguard_dev.emulator import stop_process

        stop_process(emu.process)


if __name__ == "__main__":
    main()
