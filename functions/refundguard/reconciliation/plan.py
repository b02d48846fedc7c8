"""The reconciler's decisions, pure (no I/O; clocks passed in): the window a source asks for
(``window``: from its cursor less an overlap, never beyond what the store keeps), a voided-purchase
row as the ledger event the notification path would have made (``void_event``: the same event id),
the quota window that keeps a package inside 30 queries per 30 seconds (``QuotaWindow``), and the
state a run ends in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model import LedgerEvent, Source, Status, StoreName
from ..playstore.rtdn import void_event_id

if TYPE_CHECKING:
    from ..playstore.resources import VoidedPurchase

DAY_MS = 86_400_000
#: voidedpurchases.list looks back 30 days; ask a minute less so the clocks may differ a little.
GOOGLE_LOOKBACK_MS = 30 * DAY_MS - 60_000
#: Get Notification History: 180 days in Production, 30 in Sandbox; a first run asks 30 days.
APPLE_LOOKBACK_MS = 30 * DAY_MS - 60_000
#: Google: 30 queries per 30 seconds per package; keep a margin.
QUOTA_QUERIES, QUOTA_WINDOW_MS = 25, 30_000


@dataclass(frozen=True)
class Cursor:
    """``reconcile_cursors/{source}``: everything the store recorded before ``complete_ms`` was
    processed; ``resume`` (window start, end, page token) names the first page not yet processed
    of a window a run left unfinished."""

    source: str  # e.g. google:com.example.app, apple:com.example.app:Production
    complete_ms: int | None = None
    resume_start_ms: int | None = None
    resume_end_ms: int | None = None
    resume_token: str | None = None
    updated_ms: int = 0
    #: The fanned-out run whose chain of work messages last moved this cursor, how many of its
    #: pages are done, and the last continuation page published (``reconciliation.chain``).
    run_id: str | None = None
    pages: int = 0
    published: int = 0
    #: What the pages of ``run_id`` done so far counted (``SourceTally``'s fields).
    tally: Mapping[str, Any] = field(default_factory=dict)


def after_page(
    source: str, cursor: Cursor | None, win: Window, next_token: str | None, now_ms: int
) -> Cursor:
    """Where a source stands once a page is processed: at the next page of ``win`` when there is
    one (the completed part unchanged), else past ``win`` entirely."""
    if next_token:
        return Cursor(
            source,
            complete_ms=cursor.complete_ms if cursor else None,
            resume_start_ms=win.start_ms,
            resume_end_ms=win.end_ms,
            resume_token=next_token,
            updated_ms=now_ms,
            run_id=cursor.run_id if cursor else None,
            pages=cursor.pages if cursor else 0,
            published=cursor.published if cursor else 0,
        )
    return Cursor(
        source,
        win.end_ms,
        updated_ms=now_ms,
        run_id=cursor.run_id if cursor else None,
        pages=cursor.pages if cursor else 0,
        published=cursor.published if cursor else 0,
    )


@dataclass(frozen=True)
class Window:
    start_ms: int
    end_ms: int
    page_token: str | None = None
    gap: bool = False  # the cursor is older than the store keeps: what lies between is lost


def window(cursor: Cursor | None, *, now_ms: int, overlap_ms: int, lookback_ms: int) -> Window:
    """The window a run asks for: a resumed one as it was left, else from the cursor less the
    overlap (a first run: as far back as the store keeps), up to now."""
    oldest = now_ms - lookback_ms
    if cursor is not None and cursor.resume_token and cursor.resume_start_ms is not None:
        end = cursor.resume_end_ms or now_ms
        return Window(max(cursor.resume_start_ms, oldest), end, cursor.resume_token)
    if cursor is None or cursor.complete_ms is None:
        return Window(oldest, now_ms)
    start = cursor.complete_ms - overlap_ms
    return Window(max(start, oldest), now_ms, gap=start < oldest)


def void_event(package: str, row: VoidedPurchase, *, subscription: bool | None) -> LedgerEvent:
    """A voided-purchase row as the voided-purchase notification's event: a full refund revokes,
    a quantity-based partial refund is recorded (access kept). ``subscription``: the row's product
    type when known (the API's rows do not say; ``google.judge`` finds out)."""
    partial = row.voided_quantity is not None
    order = row.order_id
    event_id = (
        void_event_id(order, partial=partial, time_ms=row.voided_time_ms)
        if order
        else f"void-token:{row.voided_time_ms}"
    )
    details: dict[str, Any] = {
        "packageName": package,
        "orderId": order,
        "refundType": "quantity_based_partial" if partial else "full",
        "voidedSource": row.voided_source,
        "voidedReason": row.voided_reason,
        "voidedQuantity": row.voided_quantity,
        "voidedTimeMillis": row.voided_time_ms,
        "via": "reconciler (voidedpurchases.list)",
    }
    if subscription is not None:
        details["productType"] = "subscription" if subscription else "one_time"
    return LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id=row.purchase_token,
        event_id=event_id,
        source=Source.GOOGLE,
        type="VOIDED_PURCHASE_PARTIAL_REFUND" if partial else "VOIDED_PURCHASE",
        event_time_ms=row.voided_time_ms,
        effect=None if partial else Status.REVOKED,
        order_id=order,
        purchase_time_ms=row.purchase_time_ms if row.purchase_time_ms else None,
        details={k: v for k, v in details.items() if v is not None},
    )


def is_renewal(order_id: str | None) -> bool:
    """Google's renewal orders are the first order's id plus ``..N``: a subscription's."""
    return order_id is not None and ".." in order_id


def quota_slot(
    sent_ms: list[int], now_ms: int, *, limit: int = QUOTA_QUERIES, window_ms: int = QUOTA_WINDOW_MS
) -> tuple[list[int], int]:
    """The Play quota's decision for one more query, given the times of the queries sent: the
    times to keep (this one added when it may go now) and how long to wait first (0: go now).
    At most ``limit`` queries in any ``window_ms``; a time in the future (a skewed clock) counts
    as now."""
    recent = sorted(min(t, now_ms) for t in sent_ms if now_ms - t < window_ms)
    if len(recent) < limit:
        return [*recent, now_ms], 0
    return recent, recent[len(recent) - limit] + window_ms - now_ms


@dataclass
class SourceTally:
    """What one source did in a run (a row of the run record)."""

    source: str  # google | apple
    app: str
    environment: str
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    pages: int = 0
    seen: int = 0
    applied: int = 0
    already_known: int = 0
    rejected: int = 0  # rows or notifications that can never be applied (quarantined)
    errors: list[str] | None = None
    cursor_ms: int | None = None  # complete up to here after the run
    more: bool = False  # stopped early (time budget or a failure): the next run resumes
    gap: bool = False

    def error(self, message: str) -> None:
        self.errors = [*(self.errors or []), message[:300]]


@dataclass(frozen=True)
class RunRecord:
    """One run (``reconcile_runs/{run id}``), stored through the serializer."""

    run_id: str
    trigger: str
    started_ms: int
    actor: str | None = None
    #: The tenant whose sources this record counts (a fanned-out run has one record per tenant,
    #: ``reconcile_runs/{run id}:{tenant}``); None: a record made before tenants.
    tenant: str | None = None
    #: Sources of a fanned-out run still at work (``google:<package>``, ``apple:<bundle>:<env>``,
    #: ``answers``): the record is ``running`` until the last one finishes.
    awaiting: tuple[str, ...] = ()
    #: A fanned-out run's finished sources, by key (each written once, by the worker that
    #: finished it; read back as ``sources``).
    tallies: Mapping[str, Any] = field(default_factory=dict)
    #: The admin function's nonce for a run it asked for (how it finds the run when it waits).
    request_id: str | None = None
    finished_ms: int | None = None
    state: str = "running"
    sources: tuple[SourceTally, ...] = ()
    refund_requests: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


def run_state(tallies: list[SourceTally], *, failure: str | None) -> str:
    """``succeeded`` when every source finished its window, ``partial`` when one failed or ran out
    of time (the next run resumes), ``failed`` when the run itself could not go on."""
    if failure:
        return "failed"
    if any(t.errors or t.more for t in tallies):
        return "partial"
    return "succeeded"
