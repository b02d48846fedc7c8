"""What every source of a run does alike (``google.GoogleVoids``, ``apple.AppleHistory``): walk a
window page by page from the source's cursor, each page fetched with backoff and never skipped,
the cursor saved past each page once it is processed; and hand a page's events to the ingestion
path (``Ingestion.apply_new``: what the ledger does not hold yet is judged and applied)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from .. import logs
from ..errors import RefundGuardError, transient
from ..storeapi import StoreApiError, StoreAuthError, StoreRequestError
from . import plan

if TYPE_CHECKING:
    from ..ingest import Ingestion
    from ..model import LedgerEvent
    from .state import ReconcileState

PAGE_ATTEMPTS = 3  # each a Transport call with its own retries of 429 / 5xx
PAGE_BACKOFF_S = 2.0

Page = TypeVar("Page")


class PagedSource:
    """A source of a run: ``open`` its window, ``walk`` it, ``apply_new`` each page's events."""

    def __init__(
        self,
        ingestion: Ingestion,
        state: ReconcileState,
        *,
        overlap_ms: int,
        ends_at: float,  # time.monotonic() after which no new page is started
        clock_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ingestion, self.state = ingestion, state
        self.overlap_ms, self.ends_at = overlap_ms, ends_at
        self.clock_ms, self.sleep = clock_ms, sleep

    def open(
        self, source: str, tally: plan.SourceTally, lookback_ms: int
    ) -> tuple[plan.Cursor | None, plan.Window]:
        """The source's cursor and the window this run asks for (noted in ``tally``)."""
        cursor = self.state.cursor(source)
        return cursor, self.window_of(cursor, tally, lookback_ms)

    def window_of(
        self, cursor: plan.Cursor | None, tally: plan.SourceTally, lookback_ms: int
    ) -> plan.Window:
        """The window to ask for from ``cursor`` (noted in ``tally``)."""
        win = plan.window(
            cursor, now_ms=self.clock_ms(), overlap_ms=self.overlap_ms, lookback_ms=lookback_ms
        )
        tally.window_start_ms, tally.window_end_ms, tally.gap = win.start_ms, win.end_ms, win.gap
        tally.cursor_ms = cursor.complete_ms if cursor else None
        return win

    def walk(
        self,
        source: str,
        tally: plan.SourceTally,
        cursor: plan.Cursor | None,
        win: plan.Window,
        *,
        fetch: Callable[[plan.Window, str | None], Page],
        process: Callable[[Page], str | None],
    ) -> plan.SourceTally:
        """Every page of ``win`` from its resume token: ``fetch`` one (retried), ``process`` it
        (answering the next page's token), save the cursor past it. Stops at the time budget or
        a failure with ``tally.more`` set; the cursor says where the next run resumes."""
        token = win.page_token
        while True:
            if time.monotonic() >= self.ends_at:
                tally.more = True
                return tally
            try:
                page = self._fetch(source, fetch, win, token)
            except StoreApiError as err:
                if isinstance(err, StoreRequestError) and token and token == win.page_token:
                    logs.warning("resume token refused; the window restarts", source=source)
                    win, token = plan.Window(win.start_ms, win.end_ms), None
                    continue
                tally.error(f"{err.code}: {err.message}")
                tally.more = True
                return tally
            try:
                next_token = process(page)
            except BudgetSpent:  # within the page: it comes again next run, from its token
                logs.warning("the time budget ran out within a page", source=source)
                tally.more = True
                return tally
            except RefundGuardError as err:  # Firestore: this page stays to be processed again
                tally.error(f"{err.code}: {err.message}")
                tally.more = True
                return tally
            tally.pages += 1
            self.state.save_cursor(
                plan.after_page(source, cursor, win, next_token, self.clock_ms())
            )
            if not next_token:
                tally.cursor_ms = win.end_ms
                return tally
            token = next_token

    def one(
        self,
        source: str,
        tally: plan.SourceTally,
        cursor: plan.Cursor | None,
        win: plan.Window,
        *,
        fetch: Callable[[plan.Window, str | None], Page],
        process: Callable[[Page], str | None],
    ) -> plan.Cursor | None:
        """One page of ``win`` from its resume token (a fanned-out run's worker): fetched
        (retried), processed; the cursor past it, which the caller saves. None: not done, with
        ``tally.more`` set (the time budget: ``BudgetSpent`` within the page, else before it) or
        an error in ``tally`` (a store error no retry fixes). A store error a retry may fix
        raises TRANSIENT (the message comes again); so does Firestore."""
        token = win.page_token
        while True:
            if time.monotonic() >= self.ends_at:
                tally.more = True
                return None
            try:
                page = self._fetch(source, fetch, win, token)
            except StoreApiError as err:
                if isinstance(err, StoreRequestError) and token and token == win.page_token:
                    logs.warning("resume token refused; the window restarts", source=source)
                    win, token = plan.Window(win.start_ms, win.end_ms), None
                    continue
                if err.retryable:
                    raise transient(
                        "store_unavailable", f"{source}: {err.code}: {err.message}"[:300]
                    ) from err
                tally.error(f"{err.code}: {err.message}")
                return None
            next_token = process(page)  # BudgetSpent, RefundGuardError: the caller's
            tally.pages += 1
            if not next_token:
                tally.cursor_ms = win.end_ms
            tally.window_start_ms, tally.window_end_ms = win.start_ms, win.end_ms
            return plan.after_page(source, cursor, win, next_token, self.clock_ms())

    def _fetch(
        self,
        source: str,
        fetch: Callable[[plan.Window, str | None], Page],
        win: plan.Window,
        token: str | None,
    ) -> Page:
        """One page, retried with backoff (past the client's own retries); never skipped."""
        for attempt in range(PAGE_ATTEMPTS):
            try:
                return fetch(win, token)
            except StoreAuthError:
                raise
            except StoreApiError as err:
                last = attempt + 1 >= PAGE_ATTEMPTS
                if not err.retryable or last or time.monotonic() >= self.ends_at:
                    raise
                wait = max(PAGE_BACKOFF_S * 2**attempt, err.retry_after_s or 0)
                logs.warning(
                    "a page failed; retrying",
                    source=source,
                    attempt=attempt + 1,
                    error=err.code,
                    wait_s=wait,
                )
                self.sleep(wait)
        raise AssertionError("unreachable")

    def apply_new(
        self,
        events: Iterable[LedgerEvent],
        tally: plan.SourceTally,
        *,
        app: str,
        judge: Callable[[LedgerEvent], LedgerEvent] = lambda event: event,
        prepare: Callable[[list[LedgerEvent]], None] | None = None,
    ) -> None:
        """A page's events through the ingestion path, counted in ``tally``. When the time budget
        runs out within the page, ``BudgetSpent``: the page is not done (its cursor does not
        move), and what was applied is found known when the page comes again."""
        batch = self.ingestion.apply_new(
            events,
            app=app,
            judge=judge,
            prepare=prepare,
            stop=lambda: time.monotonic() >= self.ends_at,
        )
        tally.applied += batch.applied
        tally.already_known += batch.already_known
        tally.rejected += batch.rejected
        if batch.stopped:
            raise BudgetSpent


class BudgetSpent(Exception):
    """The run's time budget ran out in the middle of a page."""
