"""Apple's side of a run: Get Notification History (``onlyFailures``) per bundle id and
environment, from the source's cursor, page by page; every notification is verified like the
endpoint's (``AppleVerifier.verify_notification``) and goes through the same ingestion path
(``ingest.apple_event``, ``Ingestion.apply_new``; a consumption request becomes a refund request).
One that does not verify, or cannot be mapped, is quarantined and never applied; the cursor moves
on past it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import logs
from ..appstore.notifications import UnmappableNotification
from ..appstore.verifier import AppleVerificationError, AppleVerifier
from ..ingest import Ingestion, apple_event
from . import plan
from .pages import PagedSource

if TYPE_CHECKING:
    from ..appstore.api import AppStoreApiClient
    from ..appstore.resources import SignedNotificationPage
    from ..model import LedgerEvent
    from .state import ReconcileState


class AppleHistory(PagedSource):
    """Reconciles one (bundle id, environment) per ``run``."""

    def __init__(
        self,
        api: AppStoreApiClient,
        verifier: AppleVerifier,
        ingestion: Ingestion,
        state: ReconcileState,
        **walk: Any,  # PagedSource's
    ) -> None:
        super().__init__(ingestion, state, **walk)
        self.api, self.verifier = api, verifier

    def run(self, bundle_id: str, environment: str) -> plan.SourceTally:
        tally = plan.SourceTally("apple", bundle_id, environment)
        source = f"apple:{bundle_id}:{environment}"
        cursor, win = self.open(source, tally, plan.APPLE_LOOKBACK_MS)
        fetch, process = self._steps(bundle_id, environment, tally)
        return self.walk(source, tally, cursor, win, fetch=fetch, process=process)

    def page(
        self, bundle_id: str, environment: str, cursor: plan.Cursor | None
    ) -> tuple[plan.SourceTally, plan.Cursor | None]:
        """One page from ``cursor`` (``PagedSource.one``): its tally, and the cursor past it."""
        tally = plan.SourceTally("apple", bundle_id, environment)
        win = self.window_of(cursor, tally, plan.APPLE_LOOKBACK_MS)
        source = f"apple:{bundle_id}:{environment}"
        fetch, process = self._steps(bundle_id, environment, tally)
        return tally, self.one(source, tally, cursor, win, fetch=fetch, process=process)

    def _steps(self, bundle_id: str, environment: str, tally: plan.SourceTally) -> tuple[Any, Any]:
        """Fetching a page of the app's failed notifications, and processing one."""

        def fetch(win: plan.Window, token: str | None) -> SignedNotificationPage:
            return self.api.get_signed_notification_history(
                bundle_id=bundle_id,
                environment=environment,
                start_date_ms=win.start_ms,
                end_date_ms=win.end_ms,
                pagination_token=token,
                only_failures=True,
            )

        def process(page: SignedNotificationPage) -> str | None:
            tally.seen += len(page.items)
            signed = (item.signed_payload for item in page.items)
            mapped = (self._event(payload, bundle_id, environment, tally) for payload in signed)
            self.apply_new([event for event in mapped if event is not None], tally, app=bundle_id)
            return page.pagination_token if page.has_more and page.pagination_token else None

        return fetch, process

    def _event(
        self, signed: str, bundle_id: str, environment: str, tally: plan.SourceTally
    ) -> LedgerEvent | None:
        """The endpoint's path: verify, then ``ingest.apple_event`` for this app and environment.
        None: nothing to apply (acknowledged-only types, or refused: quarantined)."""
        try:
            verified = self.verifier.verify_notification(signed)
            return apple_event(verified, bundle_id=bundle_id, environment=environment).event
        except AppleVerificationError as err:
            code, message = err.status.code, str(err)
        except UnmappableNotification as err:
            code, message = err.code, err.message
        tally.rejected += 1
        logs.warning("a notification from Apple's history was refused", code=code, app=bundle_id)
        self.ingestion.quarantine.keep(
            source="apple-history",
            code=code,
            reason=message[:300],
            body=signed.encode(),
            details={"bundle_id": bundle_id, "environment": environment},
        )
        return None
