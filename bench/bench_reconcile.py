"""The reconciler over 10,000 voided purchases of which 99% are already revoked, against the
Firestore emulator and the Play Developer API's stand-in, in one run: seconds, and Firestore round
trips per item (RPCs counted by wrapping the store client's generated API methods, as
bench_store.py does), for a first run (100 new voids to judge and apply) and a second run over the
same window (nothing new). Events off (the outbox's cost is bench_events.py's).

The 9,900 known voids are seeded directly (one batch per 250 entitlements: each entitlement and
its history entry, as the ledger would have written them); the stand-in knows each new void's order
(refunded) and purchase, as Play does, so that judging them costs what it costs against Play.

    .venv/bin/python bench/bench_reconcile.py [TOTAL [NEW]]
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from pathlib import Path

from refundguard import logs
from refundguard.ledger import decide
from refundguard.playstore.resources import parse_voided_page
from refundguard.reconcile.function import create_handler
from refundguard.reconciliation import plan
from refundguard.serializer import to_firestore
from refundguard.store import ENTITLEMENTS, HISTORY, EntitlementStore
from refundguard_dev import play_api_data as data
from refundguard_dev.emulator import bench_emulator, stop_process
from refundguard_dev.fake_play_api import FakePlayApi
from refundguard_dev.rpc_counter import RpcCounter

TOTAL = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
NEW = int(sys.argv[2]) if len(sys.argv) > 2 else TOTAL // 100
PACKAGE = data.PACKAGE


def seed(api: FakePlayApi, store: EntitlementStore, now_ms: int) -> None:
    rows = []
    for i in range(TOTAL):
        token, order = f"bench-tok-{i:05d}", f"GPA.9{i:04d}-0000-0000-00001"
        rows.append(data.voided(token, order, voided_ms=now_ms - 3_600_000 - i))
        if i >= TOTAL - NEW:  # new: the API knows its order and purchase, as Play would
            api.add_order(PACKAGE, data.order(order, token, state="REFUNDED"))
            api.add_product_purchase(PACKAGE, token, data.product_purchase(order_id=order))
    for row in rows:
        api.add_voided(PACKAGE, row)
    known = parse_voided_page({"voidedPurchases": rows[: TOTAL - NEW]}).rows
    client = store.client
    for start in range(0, len(known), 250):
        batch = client.batch()
        for row in known[start : start + 250]:
            event = plan.void_event(PACKAGE, row, subscription=False)
            decision = decide(None, event, already_seen=False, now_ms=now_ms)
            assert decision.entitlement is not None and decision.history is not None
            ref = client.collection(ENTITLEMENTS).document(event.document_id)
            batch.set(ref, to_firestore(decision.entitlement))
            batch.set(
                ref.collection(HISTORY).document(event.history_id),
                to_firestore(decision.history),
            )
        batch.commit()


def per_item(counts: collections.Counter[str], n: int) -> str:
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{sum(counts.values()) / n:.4f} round trips per item ({sum(counts.values())}: {parts})"


def main() -> None:
    emulator = bench_emulator()
    try:
        os.environ.update(emulator.env())
        logs._stream = open(os.devnull, "w")  # noqa: SIM115 - the runs' log lines are noise
        with FakePlayApi(packages=[PACKAGE]) as api:
            key = api.write_service_account_key(Path(tempfile.mkdtemp()) / "sa.json")
            env = {
                **os.environ,
                "PLAY_DEVELOPER_API": "on",
                "PLAY_API_BASE_URL": api.url,
                "PLAY_PACKAGE_NAMES": PACKAGE,
                "GOOGLE_APPLICATION_CREDENTIALS": str(key),
                "RECONCILE_BUDGET_SECONDS": "600",
            }
            os.environ.pop("EVENTS_TOPIC", None)
            store = EntitlementStore.from_env(env)
            now_ms = int(time.time() * 1000)
            started = time.perf_counter()
            seed(api, store, now_ms)
            print(
                f"seeded {TOTAL} voids ({TOTAL - NEW} known) "
                f"in {time.perf_counter() - started:.1f} s"
            )
            counter = RpcCounter(store.client)
            app = create_handler(env, entitlements=store)
            import flask

            flask_app = flask.Flask("bench")
            for label in ("first run", "second run"):
                counter.take()
                api_before = len(api.requests)
                started = time.perf_counter()
                with flask_app.test_request_context("/", method="POST"):
                    response = app(flask.request)
                elapsed = time.perf_counter() - started
                body = response.get_json()
                (source,) = body["sources"]
                print(
                    f"{label}: {TOTAL} voids, applied {source['applied']}, known "
                    f"{source['already_known']}, {elapsed:.2f} s "
                    f"({elapsed / TOTAL * 1000:.3f} ms per item); Firestore "
                    f"{per_item(counter.take(), TOTAL)}; Play API requests "
                    f"{len(api.requests) - api_before}"
                )
    finally:
        stop_process(emulator.process)


if __name__ == "__main__":
    main()
