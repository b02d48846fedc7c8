"""Demo and benchmark data for the insight warehouse, made by refundguard's own pure code: store
events through the ledger (``ledger.decide``) and the event builders (``events.access_event``,
``events.refund_request_event``), so every row has exactly the shape the functions publish.
``demo_rows`` feeds ``make run``'s charts; ``Story`` writes one purchase's life at a time."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from refundguard import events
from refundguard.ledger import decide
from refundguard.model import Entitlement, LedgerEvent, Source, Status, StoreName
from refundguard.refunds import APPLE_WINDOW_MS, GOOGLE_WINDOW_MS, RefundRequest
from refundguard.serializer import ms_to_iso

from .insight_rows import subscription_row

SOURCE = "//refundguard/projects/demo-refundguard"
DAY_MS = 86_400_000
PRODUCTS = ("course.premium", "coins.500", "sub.monthly")


@dataclass
class Story:
    """One Google purchase's events, as published: ``rows`` in the subscription's format."""

    token: str
    tenant: str
    product: str
    store: StoreName = StoreName.GOOGLE
    rows: list[dict[str, Any]] = field(default_factory=list)
    current: Entitlement | None = None
    _n: int = 0

    def _publish(self, entry: events.OutboxEntry | None, at_ms: int) -> None:
        if entry is None:
            return
        self._n += 1
        self.rows.append(
            subscription_row(
                data=entry.data.encode(),
                message_id=f"{self.token}-{self._n}",
                publish_time=ms_to_iso(at_ms + 50),
                attributes=entry.attributes,
            )
        )

    def store_event(
        self, kind: str, status: Status | None, at_ms: int, *, delay_ms: int = 1_000, **kw: Any
    ) -> None:
        """A store event at ``at_ms`` (the store's time), applied ``delay_ms`` later."""
        source = Source.ADMIN if kind.startswith("ADMIN_") else Source(self.store.value)
        event = LedgerEvent(
            store=self.store,
            purchase_id=self.token,
            event_id=f"{kind}:{self.token}:{at_ms}",
            source=source,
            type=kind,
            event_time_ms=at_ms,
            effect=status,
            product_id=self.product,
            order_id=f"GPA.{self.token}" if self.store is StoreName.GOOGLE else None,
            tenant=None if source is Source.ADMIN else self.tenant,
            actor="admin@example.com" if source is Source.ADMIN else None,
            reason="demo" if source is Source.ADMIN else None,
            **kw,
        )
        decision = decide(self.current, event, already_seen=False, now_ms=at_ms + delay_ms)
        assert decision.entitlement is not None and decision.history is not None
        history = replace(decision.history, received_ms=at_ms + delay_ms)
        self.current = decision.entitlement
        self._publish(events.access_event(decision.entitlement, history, source=SOURCE), at_ms)

    def duplicate_last(self) -> None:
        """The last row delivered again (another message id, the same event id)."""
        again = dict(self.rows[-1])
        again["message_id"] += "-again"
        self.rows.append(again)

    def refund_request(self, received_ms: int, outcome: str | None, at_ms: int) -> None:
        """A refund question (Google's review, Apple's consumption request) received at
        ``received_ms``; ``outcome`` (answered,
        unanswerable, expired) at ``at_ms``, or None: still pending."""
        google = self.store is StoreName.GOOGLE
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        request = RefundRequest(
            id=f"google:{digest[:24]}" if google else f"apple:{digest[:32]}",
            kind="google_refund_review" if google else "apple_consumption",
            store=self.store.value,
            environment="Production",
            entitlement_id=f"{self.store.value}:{self.token}",
            purchase_id=self.token,
            app="com.example.app",
            received_ms=received_ms,
            deadline_ms=received_ms + (GOOGLE_WINDOW_MS if google else APPLE_WINDOW_MS),
            order_id=f"GPA.{self.token}" if google else None,
            tenant=self.tenant,
        )
        self._publish(
            events.refund_request_event(request, previous_state=None, source=SOURCE), received_ms
        )
        if outcome is None:
            return
        answer = {"refundPreference": "DECLINE"} if outcome == "answered" else {}
        done = replace(
            request,
            state=outcome,
            updated_ms=at_ms,
            answer=answer,
            attempts=1 if outcome == "answered" else 0,
            answered_ms=at_ms if outcome == "answered" else None,
            rule="thresholds" if outcome == "answered" else None,
        )
        self._publish(
            events.refund_request_event(done, previous_state="pending", source=SOURCE), at_ms
        )


def stories(*, tenant: str, days: int, end_ms: int, per_day: int, seed: int = 7) -> Iterator[Story]:
    """Purchases over ``days`` days before ``end_ms``: about 6% refunded (some days later, a
    few reversed), 2% partially refunded, 1% re-granted by an admin after the refund, 3% asked
    about by Google (answered, expired, unanswerable or pending)."""
    rng = random.Random(f"{seed}:{tenant}")
    start = end_ms - days * DAY_MS
    for day in range(days):
        for n in range(per_day):
            story = Story(f"{tenant}-{day}-{n}", tenant, rng.choice(PRODUCTS))
            bought = start + day * DAY_MS + rng.randrange(DAY_MS)
            story.store_event("ONE_TIME_PRODUCT_PURCHASED", Status.ACTIVE, bought)
            roll = rng.random()
            later = bought + rng.randrange(1, 10) * rng.randrange(DAY_MS // 4, DAY_MS)
            if roll < 0.03 and later < end_ms:
                outcome = rng.choice(("answered", "expired", "unanswerable", None))
                story.refund_request(bought + 3_600_000, outcome, bought + 7_200_000)
                if outcome == "answered" and rng.random() < 0.5:
                    story.store_event("VOIDED_PURCHASE", Status.REVOKED, later)
            elif roll < 0.09 and later < end_ms:
                delay = int(rng.lognormvariate(7.5, 1.0))  # ms: median about 1.8 s
                story.store_event("VOIDED_PURCHASE", Status.REVOKED, later, delay_ms=delay)
                if roll < 0.04 and later + DAY_MS < end_ms:
                    story.store_event("ADMIN_REGRANT", Status.ACTIVE, later + DAY_MS)
            elif roll < 0.11 and later < end_ms:
                story.store_event(
                    "VOIDED_PURCHASE_PARTIAL_REFUND",
                    None,
                    later,
                    details={"refundType": "quantity_based_partial"},
                )
            yield story


def demo_rows(
    *,
    tenants: tuple[str, ...] = ("default",),
    days: int = 120,
    per_day: int = 25,
    end_ms: int | None = None,
) -> list[dict[str, Any]]:
    """``make run``'s demo: every tenant's stories as subscription rows."""
    import time

    end = end_ms if end_ms is not None else int(time.time() * 1000)
    rows: list[dict[str, Any]] = []
    for tenant in tenants:
        for story in stories(tenant=tenant, days=days, end_ms=end, per_day=per_day):
            rows += story.rows
    return rows


def event_of(row: dict[str, Any]) -> dict[str, Any]:
    """A row back to the CloudEvent fields it kept (tests, debugging)."""
    return json.loads(json.dumps({k: v for k, v in row.items() if k != "attributes"}))
