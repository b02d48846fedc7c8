"""Google's side of a run: page through ``voidedpurchases.list`` (``type=1``, partial refunds
included) for one package from its cursor, and hand each page's voids to the ingestion path,
judged as a voided-purchase notification is, at about one Play call a void
(``playstore.judge.VoidJudge``). A page is retried
with backoff and never skipped: the cursor moves only past fully processed pages, and a run that
stops (a failure, the time budget) leaves where to resume."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from .. import logs
from ..errors import RefundGuardError
from ..playstore.judge import VoidJudge
from . import plan
from .pages import PagedSource

if TYPE_CHECKING:
    from ..ingest import Ingestion
    from ..model import LedgerEvent
    from ..playstore.api import PlayApiClient
    from ..playstore.resources import VoidedPage, VoidedPurchase
    from .quota import PlayQuota
    from .state import ReconcileState

PAGE_SIZE = 1000


class GoogleVoids(PagedSource):
    """Reconciles one package's voided purchases per ``run``."""

    def __init__(
        self,
        api: PlayApiClient,
        ingestion: Ingestion,
        state: ReconcileState,
        *,
        quota: PlayQuota,
        **walk: Any,  # PagedSource's
    ) -> None:
        super().__init__(ingestion, state, **walk)
        self.api, self.quota = api, quota

    def run(self, package: str) -> plan.SourceTally:
        tally = plan.SourceTally("google", package, "Production")
        source = f"google:{package}"
        cursor, win = self.open(source, tally, plan.GOOGLE_LOOKBACK_MS)
        if win.gap:
            tally.error("the cursor is older than the 30 days Google keeps: voids between are lost")
        fetch, process = self._steps(package, tally)
        return self.walk(source, tally, cursor, win, fetch=fetch, process=process)

    def page(
        self, package: str, cursor: plan.Cursor | None
    ) -> tuple[plan.SourceTally, plan.Cursor | None]:
        """One page from ``cursor`` (``PagedSource.one``): its tally, and the cursor past it."""
        tally = plan.SourceTally("google", package, "Production")
        win = self.window_of(cursor, tally, plan.GOOGLE_LOOKBACK_MS)
        if win.gap:
            tally.error("the cursor is older than the 30 days Google keeps: voids between are lost")
        fetch, process = self._steps(package, tally)
        return tally, self.one(
            f"google:{package}", tally, cursor, win, fetch=fetch, process=process
        )

    def _steps(self, package: str, tally: plan.SourceTally) -> tuple[Any, Any]:
        """Fetching a page of ``package``'s voids (its quota taken first), and processing one."""

        def fetch(win: plan.Window, token: str | None) -> VoidedPage:
            self.quota.wait(package)
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

        return fetch, process

    def _apply(self, package: str, page: VoidedPage, tally: plan.SourceTally) -> None:
        tally.seen += len(page.rows)
        events: list[LedgerEvent] = []
        for row in page.rows:
            try:
                renewal = plan.is_renewal(row.order_id)
                events.append(plan.void_event(package, row, subscription=True if renewal else None))
            except RefundGuardError as err:
                self._reject(package, row, err, tally)
        judge = VoidJudge(self.api, package)
        self.apply_new(events, tally, app=package, judge=judge, prepare=judge.prepare)

    def _reject(
        self, package: str, row: VoidedPurchase, err: RefundGuardError, tally: plan.SourceTally
    ) -> None:
        """A row no ledger event can hold (e.g. a token of unexpected characters): kept whole in
        quarantine for a person, never a reason to stop (the cursor must move on)."""
        tally.rejected += 1
        body = json.dumps(dataclasses.asdict(row), default=str).encode()
        self.ingestion.quarantine.keep(
            source="reconcile",
            code=err.code,
            reason=err.message,
            body=body,
            key=f"reconcile:{package}:{row.order_id or logs.token_hash(row.purchase_token)}",
        )
