"""Google's side of a run: page through ``voidedpurchases.list`` (``type=1``, partial refunds
included) for one package from its cursor, skip what the ledger already holds (one ``get_all`` per
page), judge the rest as the notification path does (``play.verify``) and apply them. A page is
retried with backoff and never skipped: the cursor moves only past fully processed pages, and a
run that stops (a failure, the time budget) leaves where to resume."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .. import logs
from ..errors import Kind, RefundGuardError
from ..model import LedgerEvent
from ..play import verify
from ..play.api import PlayApiClient
from ..play.function import REVOCATION_API_DEADLINE_S, consult
from ..play.resources import VoidedPage, VoidedPurchase
from ..store import EntitlementStore
from ..storeapi import StoreApiError
from . import plan
from .pages import PagedSource
from .state import ReconcileState

PAGE_SIZE = 1000
_NOT_A_SUBSCRIPTION = (Kind.NOT_FOUND, Kind.REJECTED)


class GoogleVoids(PagedSource):
    """Reconciles one package's voided purchases per ``run``."""

    def __init__(
        self,
        api: PlayApiClient,
        store: EntitlementStore,
        state: ReconcileState,
        *,
        quota: Callable[[], plan.QuotaWindow] = plan.QuotaWindow,
        **walk: Any,  # PagedSource's
    ) -> None:
        super().__init__(store, state, **walk)
        self.api, self.quota = api, quota

    def run(self, package: str) -> plan.SourceTally:
        tally = plan.SourceTally("google", package, "Production")
        source = f"google:{package}"
        cursor, win = self.open(source, tally, plan.GOOGLE_LOOKBACK_MS)
        if win.gap:
            tally.error("the cursor is older than the 30 days Google keeps: voids between are lost")
        quota = self.quota()

        def fetch(win: plan.Window, token: str | None) -> VoidedPage:
            quota.wait()
            return self.api.list_voided_purchases(
                package,
                start_time_ms=win.start_ms,
                end_time_ms=win.end_ms,
                max_results=PAGE_SIZE,
                page_token=token,
                include_subscriptions=True,
                include_partial_refunds=True,
            )

        def process(page: VoidedPage) -> str | None:
            self._apply(package, page, tally)
            return page.next_token or None

        return self.walk(source, tally, cursor, win, fetch=fetch, process=process)

    def _apply(self, package: str, page: VoidedPage, tally: plan.SourceTally) -> None:
        tally.seen += len(page.rows)
        events: list[LedgerEvent] = []
        for row in page.rows:
            try:
                renewal = plan.is_renewal(row.order_id)
                events.append(plan.void_event(package, row, subscription=True if renewal else None))
            except RefundGuardError as err:
                self._reject(package, row, err, tally)
        self.apply_new(events, tally, judge=lambda event: self.judge(package, event))

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
