"""Refund insight, in one run (ratios and sizes; no timed assertion anywhere):

1. The hot path with the BigQuery subscription on vs off. The subscription is Pub/Sub's, not a
   write of ours: the only difference our code can see is one more subscription on the events
   topic. So the Play function (functions-framework app, events on) publishes to two topics of the
   Pub/Sub emulator, one with the platform's subscription only, one with it and a second (the
   BigQuery subscription's stand-in); notifications/s of access changes, alternating, the median
   of each.
2. The figures for a tenant with 1,000,000 events on the local stand-in (DuckDB, the deployed
   SQL transpiled): rows made by refundguard's own builders, replicated with new ids, subjects and
   dates; the time of GET /insight's query for a year of days, of weeks and of months.
3. What that query costs in BigQuery: the bytes it reads, from the columns the views reference
   and their sizes in BigQuery's storage (STRING 2 + UTF-8 bytes, INT64/TIMESTAMP 8, BOOL 1),
   measured on those rows; with clustering by tenant (the tenant's blocks) and without (the whole
   table: computed for a table where the tenant has 1 event in OTHERS_FACTOR).

    .venv/bin/python bench/bench_insight.py [EVENTS [N [ROUNDS]]]
"""

from __future__ import annotations

import collections
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import functions_framework
from refundguard import logs
from refundguard.config import EventsSettings
from refundguard.insight import FigureQuery, Insight, LocalEngine
from refundguard.play.function import create_handler
from refundguard.store import EntitlementStore
from refundguard_dev.emulator import (
    bench_emulator,
    find_pubsub_jar,
    start_pubsub_emulator,
    stop_process,
)
from refundguard_dev.insight_demo import demo_rows
from refundguard_dev.insight_local import LocalWarehouse
from refundguard_dev.play_messages import PACKAGE, play_request
from refundguard_dev.pubsub import EmulatorPubSub

MAIN_PY = Path(__file__).resolve().parent.parent / "functions" / "main.py"
EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
N = int(sys.argv[2]) if len(sys.argv) > 2 else 40
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
TIB = 2**40
OTHERS_FACTOR = 10  # the unclustered case: the tenant's events are a tenth of the table
PRICE_PER_TIB = 6.25  # BigQuery on-demand list price (USD), to scale by your own
#: The columns the figures' views read (events_unique's window, facts, figures), by path.
READ = (
    "id",
    "tenant",
    "type",
    "time",
    "subject",
    "publish_time",
    "message_id",
    "data.product_id",
    "data.status",
    "data.entitlement_id",
    "data.state",
    "data.previous_state",
    "data.received_at",
    "data.cause.source",
    "data.cause.type",
    "data.cause.event_time",
)
FIXED = {"TIMESTAMP": 8, "INT64": 8, "BOOL": 1}


def hot_path() -> None:
    jar = find_pubsub_jar()
    if jar is None:
        print("1. hot path: SKIPPED (Pub/Sub emulator not found)")
        return
    firestore_emu = bench_emulator()
    pubsub_emu = start_pubsub_emulator(jar, Path(tempfile.mkdtemp()) / "pubsub.log")
    try:
        os.environ.update(firestore_emu.env())
        os.environ["PLAY_PACKAGE_NAMES"] = PACKAGE
        logs._stream = open(os.devnull, "w")  # noqa: SIM115 - one JSON line per message is noise
        pubsub = EmulatorPubSub(pubsub_emu.host, firestore_emu.project)
        topics = {"off": pubsub.topic("insight-off"), "on": pubsub.topic("insight-on")}
        pubsub.subscription("insight-off-platform", "insight-off")
        pubsub.subscription("insight-on-platform", "insight-on")
        pubsub.subscription("insight-on-bigquery", "insight-on", ordering=False)
        app = functions_framework.create_app("play_notifications", str(MAIN_PY))
        handlers = sys.modules["main"]._handlers
        client = app.test_client()
        built = {
            mode: create_handler(
                os.environ,
                entitlements=EntitlementStore.connect(
                    _firestore(), EventsSettings(topic, pubsub_emu.host)
                ),
            )
            for mode, topic in topics.items()
        }
        rates: dict[str, list[float]] = collections.defaultdict(list)
        for mode in ("off", "on"):  # warm both
            handlers["play_notifications"] = built[mode]
            _run(client, [play_request("voided", f"w-{mode}-{i}") for i in range(10)])
        for r in range(ROUNDS):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                handlers["play_notifications"] = built[mode]
                bodies = [
                    play_request("voided", f"{mode}-{r}-{i}", message_id=f"m-{mode}-{r}-{i}")
                    for i in range(N)
                ]
                rates[mode].append(N / _run(client, bodies))
        got = len(pubsub.drain("insight-on-bigquery", settle_s=1.0, timeout_s=60))
        off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
        verdict = "met" if on / off >= 0.95 else "NOT met"
        print(
            f"1. hot path, Play function, events on, {ROUNDS} rounds of {N} access changes:\n"
            f"   BigQuery subscription off {off:6.1f} notifications/s, on {on:6.1f}: "
            f"ratio on/off {on / off:.2f} (goal >= 0.95: {verdict})\n"
            f"   the second subscription received {got} events; our code publishes the same one "
            "request per change either way (the fan-out is Pub/Sub's), so a gap is noise of the "
            "emulator's JVM sharing this machine's CPU"
        )
    finally:
        stop_process(pubsub_emu.process)


def _firestore():
    from refundguard import config

    settings = config.Settings(os.environ)
    return config.FirestoreSettings.read(settings)


def _run(client, bodies) -> float:
    start = time.perf_counter()
    for body, headers in bodies:
        response = client.post("/", data=body, headers=headers)
        assert response.status_code == 200, response.get_data()
    return time.perf_counter() - start


def fill(warehouse: LocalWarehouse, tenant: str, events: int, template: str) -> None:
    """``events`` rows for ``tenant``: copies of the template tenant's rows, each copy with its
    own ids and subjects, spread over three 120-day windows."""
    ds = warehouse.dataset
    (per_copy,) = warehouse._db.execute(
        f"SELECT COUNT(*) FROM \"{ds}\".events WHERE tenant = '{template}'"
    ).fetchone()
    copies = -(-events // per_copy)
    warehouse.execute(
        f"""
        INSERT INTO "{ds}".events
        SELECT e.* REPLACE (
            id || '-' || k AS id,
            message_id || '-' || k AS message_id,
            subject || '-' || k AS subject,
            '{tenant}' AS tenant,
            time - to_days(CAST(k % 3 AS INTEGER) * 120) AS time,
            struct_update(
                data,
                tenant := '{tenant}',
                entitlement_id := data.entitlement_id || '-' || k,
                cause := struct_update(
                    data.cause,
                    event_time := data.cause.event_time - to_days(CAST(k % 3 AS INTEGER) * 120)
                )
            ) AS data
        )
        FROM "{ds}".events AS e, range({copies}) AS r(k)
        WHERE tenant = '{template}'
        LIMIT {events}
        """
    )


def figures_and_cost() -> None:
    warehouse = LocalWarehouse()
    start = time.perf_counter()
    warehouse.insert(demo_rows(tenants=("template",), days=120, per_day=40))
    fill(warehouse, "big", EVENTS, "template")
    made = time.perf_counter() - start
    total = warehouse.count()
    insight = Insight(LocalEngine(warehouse), cache_s=0)
    print(
        f"2. figures on the local stand-in: tenant 'big' with {EVENTS:,} events among {total:,} "
        f"(made in {made:.0f} s)"
    )
    end = date(2026, 12, 31)
    for granularity, start_day in (
        ("day", date(2026, 1, 1)),
        ("week", date(2025, 12, 29)),
        ("month", date(2026, 1, 1)),
    ):
        query = FigureQuery("big", granularity, start_day, end)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            rows = insight.figures(query)
            times.append(time.perf_counter() - t0)
        best = min(times)
        verdict = "met" if best < 2 else "NOT met"
        print(
            f"   a year of {granularity + 's':<7} {len(rows):5d} rows in {best:5.2f} s "
            f"(median {statistics.median(times):.2f} s; goal < 2 s: {verdict})"
        )
    cost(warehouse)


def _size_sql(path: str, kind: str) -> str:
    if kind in FIXED:
        return f"COUNT({path}) * {FIXED[kind]}"
    return f"SUM(2 + octet_length(CAST({path} AS BLOB)))"


def cost(warehouse: LocalWarehouse) -> None:
    from refundguard_dev.insight_local import schema

    kinds: dict[str, str] = {}

    def walk(fields: list[dict], prefix: str) -> None:
        for f in fields:
            name = prefix + f["name"]
            if f["type"] == "RECORD":
                walk(f["fields"], name + ".")
            else:
                kinds[name] = f["type"]

    walk(schema(), "")
    ds = warehouse.dataset
    parts = ", ".join(f'{_size_sql(p, kinds[p])} AS "{p}"' for p in READ)
    found = warehouse._db.execute(
        f"SELECT COUNT(*), {parts} FROM \"{ds}\".events WHERE tenant = 'big'"
    ).fetchone()
    rows_big, sizes = found[0], dict(zip(READ, found[1:], strict=True))
    every = " + ".join(f"COALESCE(({_size_sql(p, k)}), 0)" for p, k in kinds.items())
    (whole,) = warehouse._db.execute(
        f"SELECT {every} FROM \"{ds}\".events WHERE tenant = 'big'"
    ).fetchone()
    read_big = sum(v or 0 for v in sizes.values())
    read_all = read_big * OTHERS_FACTOR
    dollars = read_big / TIB * PRICE_PER_TIB
    print(
        f"3. BigQuery cost of one such query (the bytes of the columns the views read; "
        f"${PRICE_PER_TIB}/TiB on demand, 10 MB minimum):\n"
        f"   the tenant's {rows_big:,} events: {read_big / rows_big:.0f} bytes/event of the "
        f"{len(READ)} columns read = {read_big / 2**20:.0f} MiB -> ${dollars:.4f} a query, "
        "clustered by tenant (the tenant's blocks only)\n"
        f"   unclustered, in a table {OTHERS_FACTOR}x as large: {read_all / 2**20:.0f} MiB -> "
        f"${read_all / TIB * PRICE_PER_TIB:.4f}\n"
        f"   every column: {whole / rows_big:.0f} bytes/event (the views read "
        f"{100 * read_big / whole:.0f}% of it); the figures read every day of the tenant (a "
        "refund's purchase may be months older), so no partition is pruned"
    )
    biggest = sorted(sizes.items(), key=lambda kv: -(kv[1] or 0))[:4]
    print("   largest columns read: " + ", ".join(f"{p} {v / rows_big:.0f} B" for p, v in biggest))


def main() -> None:
    hot_path()
    figures_and_cost()


if __name__ == "__main__":
    main()
