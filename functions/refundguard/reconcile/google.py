"""Google's side of a run: page through ``voidedpurchases.list`` (``type=1``, partial refunds
included) for one package from its cursor, skip what the ledger already holds (one ``get_all`` per
page), judge the rest as the notification path does (``play.verify``) and apply them. A page is
retried with backoff and never skipped: the cursor moves only past fully processed pages, and a
run that stops (a failure, the time budget) leaves where to resume."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import replace

from .. import logs
from ..errors import Kind, RefundGuardError
from ..model import Effect, LedgerEvent
from ..play import verify
from ..play.api import PlayApiClient
from ..play.function import REVOCATION_API_DEADLINE_S, consult
from ..play.resources import VoidedPage, VoidedPurchase
from ..store import EntitlementStore
from ..storeapi import StoreApiError, StoreAuthError, StoreRequestError
from . import plan
from .state import ReconcileState

PAGE_SIZE = 1000
PAGE_ATTEMPTS = 3  # each a Transport call with its own retries of 429 / 5xx
PAGE_BACKOFF_S = 2.0
_NOT_A_SUBSCRIPTION = (Kind.NOT_FOUND, Kind.REJECTED)


class GoogleVoids:
    """Reconciles one package's voided purchases per ``run``."""

    def __init__(
        self,
        api: PlayApiClient,
        store: EntitlementStore,
        state: ReconcileState,
        *,
        overlap_ms: int,
        ends_at: float,  # time.monotonic() after which no new page is started
        clock_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
        quota: Callable[[], plan.QuotaWindow] = plan.QuotaWindow,
    ) -> None:
        self.api, self.store, self.state = api, store, state
        self.overlap_ms, self.ends_at = overlap_ms, ends_at
        self.clock_ms, self.sleep, self.quota = clock_ms, sleep, quota

    def run(self, package: str) -> plan.SourceTally:
        tally = plan.SourceTally("google", package, "Production")
        source = f"google:{package}"
        cursor = self.state.cursor(source)
        now = self.clock_ms()
        win = plan.window(
            cursor, now_ms=now, overlap_ms=self.overlap_ms, lookback_ms=plan.GOOGLE_LOOKBACK_MS
        )
        tally.window_start_ms, tally.window_end_ms, tally.gap = win.start_ms, win.end_ms, win.gap
        tally.cursor_ms = cursor.complete_ms if cursor else None
        if win.gap:
            tally.error("the cursor is older than the 30 days Google keeps: voids between are lost")
        quota, token = self.quota(), win.page_token
        while True:
            if time.monotonic() >= self.ends_at:
                tally.more = True  # the time budget: the cursor says where the next run resumes
                break
            try:
                page = self._page(package, win, token, quota)
            except StoreRequestError as err:
                if token is not None and token == win.page_token:  # an expired resume token
                    logs.warning("resume token refused; the window restarts", source=source)
                    win, token = plan.Window(win.start_ms, win.end_ms), None
                    continue
                tally.error(f"{err.code}: {err.message}")
                tally.more = True
                break
            except StoreApiError as err:
                tally.error(f"{err.code}: {err.message}")
                tally.more = True
                break
            try:
                self._apply(package, page, tally)
            except RefundGuardError as err:  # Firestore: this page stays to be processed again
                tally.error(f"{err.code}: {err.message}")
                tally.more = True
                break
            tally.pages += 1
            next_token = page.next_token if page.next_token else None
            self.state.save_cursor(
                plan.after_page(source, cursor, win, next_token, self.clock_ms())
            )
            if next_token:
                token = next_token
                continue
            tally.cursor_ms = win.end_ms
            break
        return tally

    def _page(
        self, package: str, win: plan.Window, token: str | None, quota: plan.QuotaWindow
    ) -> VoidedPage:
        """One page, retried with backoff (past the client's own retries); never skipped."""
        for attempt in range(PAGE_ATTEMPTS):
            quota.wait()
            try:
                return self.api.list_voided_purchases(
                    package,
                    start_time_ms=win.start_ms,
                    end_time_ms=win.end_ms,
                    max_results=PAGE_SIZE,
                    page_token=token,
                    include_subscriptions=True,
                    include_partial_refunds=True,
                )
            except StoreAuthError:
                raise
            except StoreApiError as err:
                last = attempt + 1 >= PAGE_ATTEMPTS
                if not err.retryable or last or time.monotonic() >= self.ends_at:
                    raise
                wait = max(PAGE_BACKOFF_S * 2**attempt, err.retry_after_s or 0)
                logs.warning(
                    "voided purchases page failed; retrying",
                    package=package,
                    attempt=attempt + 1,
                    error=err.code,
                    wait_s=wait,
                )
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _apply(self, package: str, page: VoidedPage, tally: plan.SourceTally) -> None:
        tally.seen += len(page.rows)
        events: list[LedgerEvent] = []
        for row in page.rows:
            try:
                renewal = plan.is_renewal(row.order_id)
                events.append(plan.void_event(package, row, subscription=True if renewal else None))
            except RefundGuardError as err:
                self._reject(package, row, err, tally)
        known = self.store.seen(events)
        for event in events:
            if f"{event.document_id}/{event.history_id}" in known:
                tally.already_known += 1
                continue
            try:
                result = self.store.apply(self.judge(package, event))
            except RefundGuardError as err:
                if err.kind is not Kind.REJECTED:
                    raise
                tally.rejected += 1
                continue
            if result.effect is Effect.DUPLICATE:
                tally.already_known += 1  # the notification landed since the read
            else:
                tally.applied += 1

    def judge(self, package: str, event: LedgerEvent) -> LedgerEvent:
        """The same judgement as a voided-purchase notification (``play.verify``). A row does not
        say whether it voided a subscription: a renewal order does, else subscriptionsv2 is asked
        (a token it does not know is a one-time purchase's)."""
        if event.effect is None:
            return event  # a partial refund: recorded, nothing to judge
        if "productType" in event.details:
            kind = "voidedPurchaseNotification"
            return consult(self.api, package, kind, event).event
        try:
            sub = self.api.get_subscription(
                package, event.purchase_id, deadline_s=REVOCATION_API_DEADLINE_S
            )
        except StoreApiError as err:
            if err.kind in _NOT_A_SUBSCRIPTION:
                one_time = _typed(event, "one_time")
                return consult(self.api, package, "voidedPurchaseNotification", one_time).event
            return verify.unjudged_void(event, err)
        return verify.subscription_void(_typed(event, "subscription"), sub)

    def _reject(
        self, package: str, row: VoidedPurchase, err: RefundGuardError, tally: plan.SourceTally
    ) -> None:
        """A row no ledger event can hold (e.g. a token of unexpected characters): kept whole in
        quarantine for a person, never a reason to stop (the cursor must move on)."""
        tally.rejected += 1
        body = json.dumps(dataclasses.asdict(row), default=str).encode()
        self.store.quarantine(
            source="reconcile",
            code=err.code,
            reason=err.message,
            body=body,
            key=f"reconcile:{package}:{row.order_id or logs.token_hash(row.purchase_token)}",
        )


def _typed(event: LedgerEvent, product_type: str) -> LedgerEvent:
    return replace(event, details={**event.details, "productType": product_type})
