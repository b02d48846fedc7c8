"""A fanned-out run's worker: one work message (``work.Work``) is one page of one tenant's source,
within a time budget. The page's events are applied first (the ledger dedupes), then the cursor
moves and the page is counted in the tenant's run record in one transaction, only if the cursor is
still as it was read (``ReconcileState.commit_page``); then the continuation (the next page) is
published and marked published on the cursor. A message redelivered after a crash anywhere in
between finds either its page not done (done again: what was applied is known) or done (only the
continuation is published, if it was not). A budget that runs out within a page publishes the same
page again (``Work.again``): what was applied stays, the rest is applied by the next message."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import logs
from ..serializer import load, to_firestore
from . import work as w
from .answers import Answerer
from .pages import BudgetSpent
from .plan import SourceTally
from .quota import PlayQuota
from .state import record_id

if TYPE_CHECKING:
    from ..refund_answers import Policy
    from ..tenant_apis import TenantApis
    from ..tenants import Tenant
    from ..wiring import Wiring
    from .plan import Cursor

#: What the worker publishes (a list of work messages; raises on failure: the message is retried).
Publish = Callable[[list[w.Work]], None]


class ChainWorker:
    def __init__(
        self,
        wiring: Wiring,
        apis: TenantApis,
        *,
        publish: Publish,
        overlap_ms: int,
        budget_s: float,
        policy_for: Callable[[Tenant], Policy],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.wiring, self.apis, self.publish = wiring, apis, publish
        self.overlap_ms, self.budget_s = overlap_ms, budget_s
        self.policy_for, self.sleep = policy_for, sleep
        self.state = wiring.runs

    def handle(self, item: w.Work) -> dict[str, Any]:
        """Do ``item``; what was done (the answer's body). TRANSIENT (503: the message comes
        again) when Firestore, Pub/Sub or a store API's retryable failure stops it."""
        logs.bind(run_id=item.run_id, tenant=item.tenant, work=item.key, page=item.page)
        tenant = self.wiring.tenants.tenant(item.tenant)
        if tenant is None or not _owns(tenant, item):
            logs.warning("work for a tenant or app that is no more; dropped", work=item.label)
            gone = _tally(item)
            gone.error("the tenant or the app is no more (removed during the run)")
            self.state.finish_source(
                record_id(item.run_id, item.tenant),
                item.key,
                tally=None if item.source == w.ANSWERS else gone,
                now_ms=self.wiring.clock_ms(),
            )
            return self._answer(item, "dropped")
        if item.source == w.ANSWERS:
            return self._answers(item, tenant)
        cursor = self.state.cursor(item.key)
        step = w.decide(item, cursor)
        if step is w.Step.STALE:
            return self._answer(item, step.value)
        if step is w.Step.DONE:
            assert cursor is not None
            if cursor.resume_token:
                return self._answer(item, step.value, sequel=self._sequel(item, cursor))
            if cursor.pages == item.page + 1:  # this was the last page: its record, again
                self._finish(item, cursor)
            return self._answer(item, step.value)
        return self._page(item, tenant, cursor)

    # ------------------------------------------------------------------ a page

    def _page(self, item: w.Work, tenant: Tenant, cursor: Cursor | None) -> dict[str, Any]:
        ends_at = time.monotonic() + self.budget_s
        walk: dict[str, Any] = {
            "overlap_ms": self.overlap_ms,
            "ends_at": ends_at,
            "clock_ms": self.wiring.clock_ms,
            "sleep": self.sleep,
        }
        ingestion = self.wiring.ingestion
        try:
            if item.source == w.GOOGLE:
                play = self.apis.play(tenant)
                if play is None:
                    return self._ended(item, cursor, "the Play Developer API is off")
                from .google import GoogleVoids

                quota = PlayQuota(
                    self.wiring.client,
                    timeout_s=self.wiring.deadline_s,
                    clock_ms=self.wiring.clock_ms,
                    sleep=self.sleep,
                )
                voids = GoogleVoids(play, ingestion, self.state, quota=quota, **walk)
                tally, moved = voids.page(item.app, cursor)
            else:
                access, apple = self.apis.apple_access(tenant), self.apis.apple(tenant)
                if access is None or apple is None:
                    return self._ended(item, cursor, "no App Store Server API key")
                from .apple import AppleHistory

                history = AppleHistory(apple, access.verifier, ingestion, self.state, **walk)
                tally, moved = history.page(item.app, item.environment, cursor)
        except BudgetSpent:
            logs.warning("the time budget ran out within a page; it comes again", work=item.label)
            self.publish([item.again()])
            return self._answer(item, "again")
        if moved is None:
            if tally.more:  # the budget ran out before the page started (a slow quota)
                self.publish([item.again()])
                return self._answer(item, "again")
            return self._commit(item, cursor, tally, None)  # an error no retry fixes
        return self._commit(item, cursor, tally, moved)

    def _commit(
        self,
        item: w.Work,
        cursor: Cursor | None,
        tally: SourceTally,
        moved: Cursor | None,
    ) -> dict[str, Any]:
        """The page done: the cursor moved (``moved``; None: it stays where it is, the source's
        chain ends with the error in ``tally``) with the run's counts so far, then the
        continuation published, or the source's tally written in the tenant's run record."""
        base = moved or cursor or _empty_cursor(item.key)
        same_run = cursor is not None and cursor.run_id == item.run_id
        counted = add_counts(load(SourceTally, dict(cursor.tally)) if same_run else None, tally)
        more = moved is not None and bool(moved.resume_token)
        counted.more = more or bool(counted.errors)
        new = dataclasses.replace(
            base,
            run_id=item.run_id,
            pages=item.page + 1,
            # Ended (the last page, or an error): no page follows, as if it were published.
            published=item.page if more else item.page + 1,
            updated_ms=self.wiring.clock_ms(),
            tally=to_firestore(counted),
        )
        if not self.state.commit_page(new, expected=cursor):
            logs.warning("another delivery did this page first; nothing written", work=item.label)
            return self._answer(item, "raced")
        counts = {k: getattr(tally, k) for k in ("seen", "applied", "already_known", "rejected")}
        logs.bind(effect="page", more=more, errors=len(tally.errors or []), **counts)
        sequel = self._sequel(item, new) if more else self._finish(item, new)
        return self._answer(item, "page", sequel=sequel, more=more, **counts)

    def _finish(self, item: w.Work, cursor: Cursor) -> None:
        """The source's chain ended: its tally in the tenant's run record (again, harmless, when
        a redelivery finds it ended)."""
        tally = load(SourceTally, dict(cursor.tally)) if cursor.tally else _tally(item)
        self.state.finish_source(
            record_id(item.run_id, item.tenant),
            item.key,
            tally=tally,
            now_ms=self.wiring.clock_ms(),
        )

    def _ended(self, item: w.Work, cursor: Cursor | None, reason: str) -> dict[str, Any]:
        """The source cannot be asked (its API is off or its key gone): the chain ends there."""
        tally = _tally(item)
        tally.error(reason)
        return self._commit(item, cursor, tally, None)

    def _sequel(self, item: w.Work, cursor: Cursor) -> str | None:
        """The page after ``item``'s published (then marked so), unless the cursor says it was,
        or that the source has no more."""
        nxt = item.next_page()
        if not cursor.resume_token or cursor.pages != nxt.page or cursor.published >= nxt.page:
            return None
        self.publish([nxt])
        self.state.mark_published(item.key, item.run_id, nxt.page)
        return nxt.label

    # ------------------------------------------------------------------ refund requests

    def _answers(self, item: w.Work, tenant: Tenant) -> dict[str, Any]:
        rid = record_id(item.run_id, item.tenant)
        record = self.state.get_run(rid)
        if record is None or w.ANSWERS not in record.awaiting:
            return self._answer(item, w.Step.DONE.value)
        answerer = Answerer(
            self.wiring.refunds,
            self.wiring.entitlements,
            self.policy_for(tenant),
            play=self.apis.play(tenant),
            apple=self.apis.apple(tenant),
            clock_ms=self.wiring.clock_ms,
            ends_at=time.monotonic() + self.budget_s,
            tenant=tenant.id,
        )
        answered = answerer.run()
        self.state.finish_source(
            rid, w.ANSWERS, refund_requests=answered, now_ms=self.wiring.clock_ms()
        )
        logs.bind(effect="answers", refund_requests=answered)
        return self._answer(item, "answers", refund_requests=answered)

    @staticmethod
    def _answer(item: w.Work, step: str, **more: Any) -> dict[str, Any]:
        return {
            "run_id": item.run_id,
            "tenant": item.tenant,
            "work": item.key,
            "page": item.page,
            "part": item.part,
            "step": step,
            **more,
        }


def _owns(tenant: Tenant, item: w.Work) -> bool:
    if item.source == w.ANSWERS:
        return True
    if item.source == w.GOOGLE:
        return item.app in tenant.play_packages
    app = tenant.apple_app(item.app)
    return app is not None and item.environment in app.environments


def add_counts(old: SourceTally | None, page: SourceTally) -> SourceTally:
    """The counts of a source's pages so far with one more page's."""
    if old is None:
        return dataclasses.replace(page)
    return dataclasses.replace(
        old,
        window_start_ms=old.window_start_ms or page.window_start_ms,
        window_end_ms=page.window_end_ms or old.window_end_ms,
        pages=old.pages + page.pages,
        seen=old.seen + page.seen,
        applied=old.applied + page.applied,
        already_known=old.already_known + page.already_known,
        rejected=old.rejected + page.rejected,
        errors=[*(old.errors or []), *(page.errors or [])][-10:] or None,
        cursor_ms=page.cursor_ms if page.cursor_ms is not None else old.cursor_ms,
        gap=old.gap or page.gap,
    )


def _tally(item: w.Work) -> SourceTally:
    return SourceTally(item.source, item.app, item.environment)


def _empty_cursor(key: str) -> Cursor:
    from .plan import Cursor

    return Cursor(key)
