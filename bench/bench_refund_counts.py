"""The refund counter's cost on the hot path, in one process against the Firestore emulator: store
refunds applied with their ``refund_days`` increment in the commit (as the code does) and with it
left out (``refund_counts.add`` replaced by a no-op, here only), in alternating chunks so that load
from elsewhere falls on both alike; the median rate of each and their ratio. A purchase (which
never counts) is shown beside them.

    .venv/bin/python bench/bench_refund_counts.py [N [ROUNDS]]
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 40  # events per chunk
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 10


def main() -> None:
    from refundguard_dev.emulator import bench_emulator, stop_process

    emu = bench_emulator()
    try:
        os.environ.update(emu.env())
        run()
    finally:
        stop_process(emu.process)


def run() -> None:
    from google.cloud import firestore
    from refundguard import refund_counts
    from refundguard.model import LedgerEvent, Source, Status, StoreName
    from refundguard.store import EntitlementStore

    store = EntitlementStore(firestore.Client())
    ids = itertools.count()
    now = time.time_ns() // 1_000_000

    def event(refund: bool) -> LedgerEvent:
        n = next(ids)
        return LedgerEvent(
            store=StoreName.GOOGLE,
            purchase_id=f"bench-{n}",
            event_id=f"void:GPA.{n}" if refund else f"m-{n}",
            source=Source.GOOGLE,
            type="VOIDED_PURCHASE" if refund else "ONE_TIME_PRODUCT_PURCHASED",
            event_time_ms=now,
            effect=Status.REVOKED if refund else Status.ACTIVE,
            product_id="course.premium",
            tenant="creator-a",
        )

    counting = refund_counts.add

    def skip(*_: Any) -> None:
        return None

    variants: dict[str, tuple[Callable[..., None], bool]] = {
        "refund, counted (the code)": (counting, True),
        "refund, not counted": (skip, True),
        "purchase (never counted)": (counting, False),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, (add, refund) in variants.items():
            refund_counts.add = add
            events = [event(refund) for _ in range(N)]
            start = time.perf_counter()
            for e in events:
                store.apply(e)
            rates[name].append(N / (time.perf_counter() - start))
    refund_counts.add = counting
    base = statistics.median(rates["refund, not counted"])
    print(f"{ROUNDS} rounds of {N} events each, medians:")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  {name:30s} {rate:7.1f} events/s   ratio to not counted {rate / base:.2f}x")


if __name__ == "__main__":
    main()
