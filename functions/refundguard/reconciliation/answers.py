"""Answering the stores' refund questions (every run): each pending ``refund_requests`` document
is judged by the policy (``refund_answers.judge``) with what the platform reported, then answered
once (Apple Send Consumption Information, Google ``orders.reviewrefund``; Google's 409 means it was
answered already), left pending with its reason, refused, or expired at its deadline. What became
of it is recorded in the entitlement's history (an informational entry)."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import logs
from ..errors import RefundGuardError
from ..refund_answers import Policy, judge
from ..refund_rules import Facts
from ..refunds import (
    ANSWERED,
    APPLE_CONSUMPTION,
    EXPIRED,
    UNANSWERABLE,
    RefundRequest,
    history_event,
)
from ..storeapi import StoreApiError, StoreConflictError

if TYPE_CHECKING:
    from ..appstore.api import AppStoreApiClient
    from ..playstore.api import PlayApiClient
    from ..refund_store import RefundStore
    from ..store import EntitlementStore

MAX_CALL_S = 15.0


class Answerer:
    def __init__(
        self,
        refunds: RefundStore,
        entitlements: EntitlementStore,
        policy: Policy,
        *,
        play: PlayApiClient | None,
        apple: AppStoreApiClient | None,
        clock_ms: Callable[[], int],
        ends_at: float,
        tenant: str | None = None,
    ) -> None:
        self.refunds, self.entitlements, self.policy = refunds, entitlements, policy
        self.tenant = tenant  # None: every tenant's requests (a run before tenants)
        self.play, self.apple = play, apple
        self.clock_ms, self.ends_at = clock_ms, ends_at

    def run(self) -> dict[str, int]:
        """Handle every pending request; counts by outcome (``pending`` = still waiting)."""
        counts: collections.Counter[str] = collections.Counter()
        for request in self.refunds.pending(tenant=self.tenant):
            if time.monotonic() >= self.ends_at:
                counts["pending"] += 1
                continue
            counts[self.handle(request)] += 1
        return dict(counts)

    def handle(self, request: RefundRequest) -> str:
        now = self.clock_ms()
        api_on = (self.apple if request.kind == APPLE_CONSUMPTION else self.play) is not None
        consumption = self.refunds.consumption(request.entitlement_id)
        facts = self._facts(request) if self.policy.rules and consumption is not None else None
        verdict = judge(request, consumption, self.policy, api_on=api_on, now_ms=now, facts=facts)
        rule = {"rule": verdict.rule} if verdict.rule else {}
        if verdict.action == "wait":
            if request.reason != verdict.reason:
                self.refunds.update(request, reason=verdict.reason, updated_ms=now)
            return "pending"
        if verdict.action in ("refuse", "expire"):
            state = EXPIRED if verdict.action == "expire" else UNANSWERABLE
            done = self.refunds.update(
                request, state=state, reason=verdict.reason, updated_ms=now, **rule
            )
            self._history(done, f"REFUND_REQUEST_{state.upper()}", now, **rule)
            return state
        try:
            self._send(request, dict(verdict.body), now)
        except StoreConflictError:
            # Google keeps only the first answer: a 409 says one was given (by an earlier attempt
            # whose answer was lost, or by hand in the Play Console).
            done = self.refunds.update(
                request,
                state=ANSWERED,
                reason="already answered (Google answered 409: it keeps the first answer)",
                attempts=request.attempts + 1,
                updated_ms=now,
                answered_ms=now,
            )
            self._history(done, "REFUND_REQUEST_ANSWERED", now, conflict=True)
            return ANSWERED
        except StoreApiError as err:
            if err.retryable:
                self.refunds.update(
                    request,
                    reason=f"retrying: {err.code}",
                    attempts=request.attempts + 1,
                    updated_ms=now,
                )
                return "pending"
            done = self.refunds.update(
                request,
                state=UNANSWERABLE,
                reason=f"store_refused: {err.code}: {err.message[:200]}",
                attempts=request.attempts + 1,
                updated_ms=now,
            )
            self._history(done, "REFUND_REQUEST_UNANSWERABLE", now)
            return UNANSWERABLE
        done = self.refunds.update(
            request,
            state=ANSWERED,
            reason=None,
            answer=verdict.body,
            attempts=request.attempts + 1,
            updated_ms=now,
            answered_ms=now,
            **rule,
        )
        self._history(done, "REFUND_REQUEST_ANSWERED", now, **dict(verdict.body), **rule)
        return ANSWERED

    def _facts(self, request: RefundRequest) -> Facts:
        return facts_of(request, self.entitlements)

    def _send(self, request: RefundRequest, body: dict[str, object], now: int) -> None:
        deadline = max(1.0, min(MAX_CALL_S, (request.deadline_ms - now) / 1000))
        logs.info(
            "answering a refund request",
            request_id=request.id,
            kind=request.kind,
            refund_preference=body.get("refundPreference"),
        )
        if request.kind == APPLE_CONSUMPTION:
            assert self.apple is not None and request.transaction_id
            from ..appstore.api import ConsumptionInfo  # built when Apple is answered

            info = ConsumptionInfo(
                customer_consented=True,
                delivery_status=str(body["deliveryStatus"]),
                sample_content_provided=bool(body["sampleContentProvided"]),
                consumption_percentage=_int(body.get("consumptionPercentage")),
                refund_preference=_text(body.get("refundPreference")),
            )
            self.apple.send_consumption_information(
                request.transaction_id,
                info,
                bundle_id=request.app,
                environment=request.environment,
                deadline_s=deadline,
            )
            return
        assert self.play is not None and request.order_id and request.pending_refund_token
        from ..playstore.api import RefundReview  # built when Google is answered

        review = RefundReview(
            pending_refund_token=request.pending_refund_token,
            refund_preference=str(body["refundPreference"]),
            sample_content_provided=bool(body["sampleContentProvided"]),
            consumption_percentage_milliunits=_int(body.get("consumptionPercentageMilliunits")),
        )
        self.play.review_refund(request.app, request.order_id, review, deadline_s=deadline)

    def _history(self, request: RefundRequest, type_: str, now: int, **details: object) -> None:
        """Best effort: the request's own document already says what happened."""
        try:
            self.entitlements.apply(history_event(request, type_=type_, now_ms=now, **details))
        except RefundGuardError as err:
            logs.warning("refund request outcome not added to history", code=err.code)


def facts_of(request: RefundRequest, entitlements: EntitlementStore) -> Facts:
    """What the rules may match on: the purchase's product and time (its entitlement), the
    storefront the store named, when the store asked."""
    from ..model import StoreName

    entitlement = entitlements.get(
        StoreName(request.store), request.purchase_id, request.environment
    )
    return Facts(
        store=request.store,
        product_id=entitlement.product_id if entitlement else None,
        storefront=request.storefront,
        purchase_time_ms=entitlement.purchase_time_ms if entitlement else None,
        asked_ms=request.received_ms,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
