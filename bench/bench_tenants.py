"""Tenants at scale, against the Firestore emulator, measured side by side in one run.

1. Cost per Play notification with 1,000 tenants registered vs 1 (the tenant of each package
   resolved through the in-process cache): notifications/s and Firestore round trips each, the
   two deployments' rounds interleaved so that the machine's noise hits both alike.
   Goal: >= 0.95x.
2. Look-ups with ENTITLEMENTS entitlements over 1,000 tenants vs 100 entitlements: by purchase
   id (one document read) and by order id (one query on ``order_ids``), latency and round trips.
   Goal: one round trip each, latency within 1.1x.

    .venv/bin/python bench/bench_tenants.py [NOTIFICATIONS] [ENTITLEMENTS]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from google.cloud import firestore
from refundguard import logs
from refundguard.model import Entitlement, Status, StoreName
from refundguard.serializer import to_firestore
from refundguard.store import ENTITLEMENTS, EntitlementStore
from refundguard.tenant_registry import TenantRegistry
from refundguard.tenants import Tenant
from refundguard_dev.emulator import bench_emulator as emulator
from refundguard_dev.emulator import stop_process
from refundguard_dev.play_messages import play_request
from refundguard_dev.rpc_counter import RpcCounter

MAIN_PY = Path(__file__).resolve().parent.parent / "functions" / "main.py"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
MANY = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
TENANTS = 1000
ROUNDS = 5


def package(i: int) -> str:
    return f"com.creator{i}.app"


def register(db: firestore.Client, count: int) -> None:
    registry = TenantRegistry(db, timeout_s=30)
    for i in range(count):
        registry.create(
            Tenant(f"creator-{i}", f"Creator {i}", play_packages=(package(i),)), now_ms=1
        )


def play_client(project: str) -> tuple[Any, RpcCounter]:
    """The Play function (functions/main.py's handler) over ``project``'s data."""
    os.environ["GOOGLE_CLOUD_PROJECT"] = project
    from refundguard.play.function import create_handler

    store = EntitlementStore.from_env(os.environ)
    handler = create_handler(os.environ, entitlements=store)
    import flask

    app = flask.Flask(project)
    app.add_url_rule("/", view_func=lambda: handler(flask.request), methods=["POST"])
    return app.test_client(), RpcCounter(store.client)


def send(client: Any, bodies: list[tuple[bytes, dict[str, str]]]) -> float:
    start = time.perf_counter()
    for body, headers in bodies:
        reply = client.post("/", data=body, headers=headers)
        assert reply.status_code == 200 and reply.get_json()["effect"] == "applied", reply.data
    return time.perf_counter() - start


def notifications(emu: Any) -> None:
    os.environ["PLAY_PACKAGE_NAMES"] = ""
    os.environ["TENANT_CACHE_SECONDS"] = "60"
    started = time.perf_counter()
    register(firestore.Client(project="demo-one-tenant"), 1)
    register(firestore.Client(project="demo-many-tenants"), TENANTS)
    print(f"registered 1 and {TENANTS} tenants in {time.perf_counter() - started:.1f} s")
    one, one_rpcs = play_client("demo-one-tenant")
    many, many_rpcs = play_client("demo-many-tenants")

    # Notifications for the first tenant's package in both (the many's: spread over 100 of them,
    # every package resolved once, then cached as in a warm instance).
    def bodies(tag: str, packages: int) -> list[tuple[bytes, dict[str, str]]]:
        return [
            play_request(
                "voided", f"{tag}-{i}", message_id=f"{tag}-{i}", package=package(i % packages)
            )
            for i in range(N)
        ]

    send(one, bodies("warm-one", 1)[:50])
    send(many, bodies("warm-many", 100)[:150])
    one_rpcs.take(), many_rpcs.take()
    rates: dict[str, list[float]] = {"one": [], "many": []}
    trips: dict[str, float] = {}
    for r in range(ROUNDS):
        for name, client, counter, packages in (
            ("one", one, one_rpcs, 1),
            ("many", many, many_rpcs, 100),
        ):
            elapsed = send(client, bodies(f"{name}-{r}", packages))
            rates[name].append(N / elapsed)
            trips[name] = sum(counter.take().values()) / N
    one_rate, many_rate = statistics.median(rates["one"]), statistics.median(rates["many"])
    ratios = sorted(m / o for m, o in zip(rates["many"], rates["one"], strict=True))
    print(f"Play notifications, N={N} x {ROUNDS} interleaved rounds, new voids:")
    print(f"  1 tenant     {one_rate:7.1f} notifications/s   {trips['one']:.2f} round trips each")
    print(
        f"  {TENANTS} tenants {many_rate:7.1f} notifications/s   "
        f"{trips['many']:.2f} round trips each"
    )
    print(
        f"  ratio {TENANTS} / 1: {many_rate / one_rate:.2f}x (per round: min {ratios[0]:.2f}, "
        f"max {ratios[-1]:.2f}); goal >= 0.95x"
    )


def entitlement(i: int, tenant: str) -> Entitlement:
    return Entitlement(
        store=StoreName.GOOGLE,
        purchase_id=f"tok-{i}",
        environment="Production",
        status=Status.ACTIVE,
        tenant=tenant,
        order_id=f"GPA.{i:04d}-0000",
        order_ids=(f"GPA.{i:04d}-0000",),
        created_ms=1,
        updated_ms=1 + i,
    )


def fill(db: firestore.Client, count: int) -> None:
    for start in range(0, count, 500):
        batch = db.batch()
        for i in range(start, min(count, start + 500)):
            ent = entitlement(i, f"creator-{i % TENANTS}")
            batch.set(db.collection(ENTITLEMENTS).document(ent.document_id), to_firestore(ent))
        batch.commit()


def lookups(emu: Any) -> None:
    small, large = "demo-lookup-small", "demo-lookup-large"
    started = time.perf_counter()
    fill(firestore.Client(project=small), 100)
    fill(firestore.Client(project=large), MANY)
    print(f"wrote 100 and {MANY} entitlements in {time.perf_counter() - started:.1f} s")
    stores = {}
    for name in (small, large):
        os.environ["GOOGLE_CLOUD_PROJECT"] = name
        store = EntitlementStore.from_env(os.environ)
        stores[name] = (store, RpcCounter(store.client))
    picks = list(range(0, 100, 7))
    timings: dict[tuple[str, str], list[float]] = {}
    trips: dict[tuple[str, str], float] = {}
    # The Firestore emulator answers a query by scanning the collection (it keeps no indexes), so
    # by order its latency grows with the collection here; Firestore serves the same query from
    # the automatic index on order_ids, at a cost that follows the results, not the collection.
    for _ in range(ROUNDS * 4):
        for name, (store, counter) in stores.items():
            for kind in ("token", "order"):
                start = time.perf_counter()
                for i in picks:
                    if kind == "token":
                        found = [store.get(StoreName.GOOGLE, f"tok-{i}")]
                    else:
                        found = store.find_by_order(f"GPA.{i:04d}-0000")
                    assert len(found) == 1 and found[0] is not None
                timings.setdefault((name, kind), []).append(
                    (time.perf_counter() - start) / len(picks) * 1000
                )
                trips[(name, kind)] = sum(counter.take().values()) / len(picks)
    print(f"Look-ups, {len(picks)} per round x {ROUNDS * 4} rounds (median ms per look-up):")
    for kind in ("token", "order"):
        s = statistics.median(timings[(small, kind)])
        big = statistics.median(timings[(large, kind)])
        print(
            f"  by {kind:<5}: 100 entitlements {s:.2f} ms, {MANY} over {TENANTS} tenants "
            f"{big:.2f} ms ({trips[(large, kind)]:.0f} round trip each): {big / s:.2f}x; "
            "goal <= 1.1x"
        )


def main() -> None:
    emu = emulator()
    try:
        os.environ.update(emu.env())
        logs._stream = open(os.devnull, "w")  # noqa: SIM115 - one JSON line per message is noise here
        notifications(emu)
        lookups(emu)
    finally:
        stop_process(emu.process)


if __name__ == "__main__":
    main()
