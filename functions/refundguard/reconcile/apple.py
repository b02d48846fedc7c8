"""Apple's side of a run: Get Notification History (``onlyFailures``) per bundle id and
environment, from the source's cursor, page by page; every notification goes through the path of
the notification endpoint (``AppleVerifier.verify_notification``, ``map_notification``,
``EntitlementStore.apply``; a consumption request becomes a refund request). One that does not
verify, or cannot be mapped, is quarantined and never applied; the cursor moves on past it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import logs
from ..apple.api import AppStoreApiClient
from ..apple.notifications import UnmappableNotification, map_notification
from ..apple.verifier import AppleVerificationError, AppleVerifier
from ..errors import Kind, RefundGuardError
from ..model import Effect, LedgerEvent
from ..refund_store import record_refund_request
from ..store import EntitlementStore
from ..storeapi import StoreApiError, StoreAuthError, StoreRequestError
from . import plan
from .state import ReconcileState

PAGE_ATTEMPTS = 3
PAGE_BACKOFF_S = 2.0


class AppleHistory:
    """Reconciles one (bundle id, environment) per ``run``."""

    def __init__(
        self,
        api: AppStoreApiClient,
        verifier: AppleVerifier,
        store: EntitlementStore,
        state: ReconcileState,
        *,
        overlap_ms: int,
        ends_at: float,
        clock_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api, self.verifier, self.store, self.state = api, verifier, store, state
        self.overlap_ms, self.ends_at = overlap_ms, ends_at
        self.clock_ms, self.sleep = clock_ms, sleep

    def run(self, bundle_id: str, environment: str) -> plan.SourceTally:
        tally = plan.SourceTally("apple", bundle_id, environment)
        source = f"apple:{bundle_id}:{environment}"
        cursor = self.state.cursor(source)
        win = plan.window(
            cursor,
            now_ms=self.clock_ms(),
            overlap_ms=self.overlap_ms,
            lookback_ms=plan.APPLE_LOOKBACK_MS,
        )
        tally.window_start_ms, tally.window_end_ms, tally.gap = win.start_ms, win.end_ms, win.gap
        tally.cursor_ms = cursor.complete_ms if cursor else None
        token = win.page_token
        while True:
            if time.monotonic() >= self.ends_at:
                tally.more = True
                break
            try:
                page = self._page(bundle_id, environment, win, token)
            except StoreApiError as err:
                if isinstance(err, StoreRequestError) and token and token == win.page_token:
                    win, token = plan.Window(win.start_ms, win.end_ms), None
                    continue
                tally.error(f"{err.code}: {err.message}")
                tally.more = True
                break
            try:
                self._apply(page.items, bundle_id, environment, tally)
            except RefundGuardError as err:
                tally.error(f"{err.code}: {err.message}")
                tally.more = True
                break
            tally.pages += 1
            next_token = page.pagination_token if page.has_more and page.pagination_token else None
            self.state.save_cursor(
                plan.after_page(source, cursor, win, next_token, self.clock_ms())
            )
            if next_token:
                token = next_token
                continue
            tally.cursor_ms = win.end_ms
            break
        return tally

    def _page(self, bundle_id: str, environment: str, win: plan.Window, token: str | None) -> Any:
        for attempt in range(PAGE_ATTEMPTS):
            try:
                return self.api.get_signed_notification_history(
                    bundle_id=bundle_id,
                    environment=environment,
                    start_date_ms=win.start_ms,
                    end_date_ms=win.end_ms,
                    pagination_token=token,
                    only_failures=True,
                )
            except StoreAuthError:
                raise
            except StoreApiError as err:
                if not err.retryable or attempt + 1 >= PAGE_ATTEMPTS:
                    raise
                if time.monotonic() >= self.ends_at:
                    raise
                self.sleep(max(PAGE_BACKOFF_S * 2**attempt, err.retry_after_s or 0))
        raise AssertionError("unreachable")

    def _apply(self, items: Any, bundle_id: str, environment: str, tally: plan.SourceTally) -> None:
        tally.seen += len(items)
        events: list[LedgerEvent] = []
        for item in items:
            event = self._event(item.signed_payload, bundle_id, environment, tally)
            if event is not None:
                events.append(event)
        known = self.store.seen(events)
        for event in events:
            if f"{event.document_id}/{event.history_id}" in known:
                tally.already_known += 1
            else:
                try:
                    result = self.store.apply(event)
                except RefundGuardError as err:
                    if err.kind is not Kind.REJECTED:
                        raise
                    tally.rejected += 1
                    continue
                duplicate = result.effect is Effect.DUPLICATE
                tally.already_known += duplicate
                tally.applied += not duplicate
            record_refund_request(self.store, event, bundle_id)

    def _event(
        self, signed: str, bundle_id: str, environment: str, tally: plan.SourceTally
    ) -> LedgerEvent | None:
        """The endpoint's path: verify, check app and environment, map. None: nothing to apply
        (acknowledged-only types, or refused: quarantined)."""
        try:
            verified = self.verifier.verify_notification(signed)
            if verified.bundle_id != bundle_id or verified.environment != environment:
                raise _Refused("inconsistent_payload", "another app's or environment's data")
            return map_notification(verified).event
        except AppleVerificationError as err:
            code, message = err.status.code, str(err)
        except UnmappableNotification as err:
            code, message = err.code, err.message
        except _Refused as err:
            code, message = err.code, err.message
        tally.rejected += 1
        logs.warning("a notification from Apple's history was refused", code=code, app=bundle_id)
        self.store.quarantine(
            source="apple-history",
            code=code,
            reason=message[:300],
            body=signed.encode(),
            details={"bundle_id": bundle_id, "environment": environment},
        )
        return None


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
