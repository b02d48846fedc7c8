"""A small Google Play Developer API (androidpublisher v3) client on google-auth and requests:
orders (get, batchGet, reviewrefund), one-time purchases (productsv2), subscriptions
(subscriptionsv2) and voided purchases, answering the dataclasses of ``play.resources``. Also its
settings are in ``credentials`` (read without importing this client). No generated API client."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import outbound
from ..storeapi import (
    DEFAULT_MAX_RESPONSE_BYTES,
    GOOGLE,
    CallPolicy,
    MalformedAnswer,
    Refusal,
    StoreRequestError,
    bad_answer,
    bad_argument,
    is_milliunits,
    path_segment,
)
from ..storehttp import Transport
from . import resources
from .credentials import SCOPE, PlayApiSettings, play_credentials, read_play_api_settings

__all__ = [  # with the settings the client is built from (``credentials``), for callers' ease
    "SCOPE",
    "PlayApiClient",
    "PlayApiSettings",
    "RefundReview",
    "read_play_api_settings",
]

if TYPE_CHECKING:
    from .resources import Order, ProductPurchase, SubscriptionPurchase, VoidedPage

API_ROOT = "/androidpublisher/v3/applications"
MAX_BATCH = 1000  # orders.batchGet: 1 to 1,000 distinct order ids
MAX_VOIDED_RESULTS = 1000
REFUND_PREFERENCES = frozenset({"APPROVE", "DECLINE", "NEUTRAL"})
AUTH_HINT = (
    "invite the Play API service account (PLAY_API_SERVICE_ACCOUNT; unset: the function's own) "
    "in the Play Console (Users and permissions) with 'View financial data' (and 'Manage orders "
    "and subscriptions' to answer refund reviews), and enable the Google Play Android Developer "
    "API in its Google Cloud project (with PLAY_API_SERVICE_ACCOUNT, the function also needs "
    "Service Account Token Creator on that account and the IAM Service Account Credentials API)"
)
_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+")
_QUOTA_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)


# ---------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RefundReview:
    """The body of ``orders.reviewrefund``: the answer to a pending refund review (chargeback).
    Only the first answer counts; Google expects it within 24 hours of the notification."""

    pending_refund_token: str
    refund_preference: str  # APPROVE | DECLINE | NEUTRAL
    sample_content_provided: bool
    consumption_percentage_milliunits: int | None = None  # 0..100,000
    consumption_usage_events: Sequence[dict[str, Any]] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        problems = []
        if not isinstance(self.pending_refund_token, str) or not self.pending_refund_token:
            problems.append("pending_refund_token is required")
        if self.refund_preference not in REFUND_PREFERENCES:
            problems.append("refund_preference must be APPROVE, DECLINE or NEUTRAL")
        if not isinstance(self.sample_content_provided, bool):
            problems.append("sample_content_provided must be a boolean")
        percent = self.consumption_percentage_milliunits
        if percent is not None and not is_milliunits(percent):
            problems.append("consumption_percentage_milliunits must be 0..100000")
        if len(self.consumption_usage_events) > 1000:
            problems.append("at most 1000 consumption_usage_events")
        if problems:
            raise _bad_argument("reviewrefund", "; ".join(problems))
        body: dict[str, Any] = {
            "pendingRefundToken": self.pending_refund_token,
            "sampleContentProvided": self.sample_content_provided,
            "refundPreference": self.refund_preference,
        }
        if percent is not None:
            body["consumptionPercentageMilliunits"] = percent
        if self.consumption_usage_events:
            body["consumptionUsageEvents"] = list(self.consumption_usage_events)
        return body


def explain(status: int, document: Any) -> Refusal:
    """Google's error body: ``{"error": {"code", "message", "status", "errors": [{"reason"}]}}``."""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return Refusal()
    message = error.get("message") if isinstance(error.get("message"), str) else None
    reason = error.get("status") if isinstance(error.get("status"), str) else None
    reasons = {
        item.get("reason")
        for item in (error.get("errors") or [])
        if isinstance(item, dict) and isinstance(item.get("reason"), str)
    }
    quota = status == 403 and bool(reasons & _QUOTA_REASONS or reason == "RESOURCE_EXHAUSTED")
    return Refusal(message=message, reason=reason, quota=quota)


def _bad_argument(operation: str, problem: str) -> StoreRequestError:
    return bad_argument(GOOGLE, operation, problem)


def _segment(value: Any, what: str, operation: str, *, max_chars: int = 512) -> str:
    return path_segment(value, what, store=GOOGLE, operation=operation, max_chars=max_chars)


# ---------------------------------------------------------------------------------------- client


class PlayApiClient:
    """The Play Developer API calls refundguard makes. ``credentials``: google-auth credentials
    (None: ``play_credentials(settings)``), scoped to ``SCOPE`` here. Every method takes an
    optional ``deadline_s`` (all retries included) and raises a ``storeapi.StoreApiError``."""

    def __init__(
        self,
        settings: PlayApiSettings | None = None,
        *,
        credentials: Any = None,
        policy: CallPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        from google.auth.credentials import with_scopes_if_required
        from google.auth.transport.requests import AuthorizedSession

        settings = settings or PlayApiSettings()
        policy = policy or CallPolicy()
        if credentials is None:
            credentials = play_credentials(settings)
        credentials = with_scopes_if_required(credentials, [SCOPE])
        session = AuthorizedSession(  # token fetches bounded by each call's deadline too
            credentials,
            refresh_timeout=policy.read_timeout_s,
            auth_request=outbound.google_auth_request(),
        )
        self.transport = Transport(
            GOOGLE,
            settings.base_url,
            session,
            explain=explain,
            auth_hint=AUTH_HINT,
            policy=policy,
            max_response_bytes=max_response_bytes,
        )

    def _get(
        self,
        operation: str,
        path: str,
        parse: Any,
        *,
        params: dict[str, Any] | None = None,
        deadline_s: float | None,
        secrets: Sequence[str] = (),
    ) -> Any:
        answer = self.transport.call(
            operation, "GET", path, params=params, deadline_s=deadline_s, secrets=secrets
        )
        try:
            return parse(answer.body)
        except MalformedAnswer as exc:
            raise bad_answer(GOOGLE, operation, str(exc)) from None

    def _app(self, package: str, operation: str) -> str:
        if not isinstance(package, str) or len(package) > 255 or not _PACKAGE.fullmatch(package):
            raise _bad_argument(operation, "package name must look like com.example.app")
        return f"{API_ROOT}/{package}"

    def get_order(self, package: str, order_id: str, *, deadline_s: float | None = None) -> Order:
        """``orders.get``: ``GET applications/{pkg}/orders/{orderId}``."""
        op = "orders.get"
        path = f"{self._app(package, op)}/orders/{_segment(order_id, 'order id', op)}"
        return self._get(op, path, resources.parse_order, deadline_s=deadline_s)

    def batch_get_orders(
        self, package: str, order_ids: Sequence[str], *, deadline_s: float | None = None
    ) -> tuple[Order, ...]:
        """``orders.batchGet``: 1 to 1,000 distinct ids; Google fails the whole request (404)
        when any of them is unknown."""
        op = "orders.batchGet"
        ids = list(dict.fromkeys(order_ids))
        if not 0 < len(ids) <= MAX_BATCH:
            raise _bad_argument(op, f"order_ids must hold 1 to {MAX_BATCH} distinct ids")
        for order_id in ids:
            _segment(order_id, "order id", op)
        path = f"{self._app(package, op)}/orders:batchGet"
        return self._get(
            op, path, resources.parse_orders, params={"orderIds": ids}, deadline_s=deadline_s
        )

    def get_product_purchase(
        self, package: str, purchase_token: str, *, deadline_s: float | None = None
    ) -> ProductPurchase:
        """``purchases.productsv2.getproductpurchasev2``: a one-time purchase by its token."""
        return self._purchase(
            "productsv2", package, purchase_token, resources.parse_product_purchase, deadline_s
        )

    def get_subscription(
        self, package: str, purchase_token: str, *, deadline_s: float | None = None
    ) -> SubscriptionPurchase:
        """``purchases.subscriptionsv2.get``: a subscription by its token."""
        return self._purchase(
            "subscriptionsv2",
            package,
            purchase_token,
            resources.parse_subscription_purchase,
            deadline_s,
        )

    def _purchase(
        self,
        collection: str,
        package: str,
        purchase_token: str,
        parse: Any,
        deadline_s: float | None,
    ) -> Any:
        """``purchases.<collection>/tokens/{token}``; the token is kept out of every message."""
        op = f"purchases.{collection}.get"
        token = _segment(purchase_token, "purchase token", op, max_chars=4096)
        path = f"{self._app(package, op)}/purchases/{collection}/tokens/{token}"
        return self._get(op, path, parse, deadline_s=deadline_s, secrets=(purchase_token, token))

    def list_voided_purchases(
        self,
        package: str,
        *,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_subscriptions: bool = True,
        include_partial_refunds: bool = True,
        deadline_s: float | None = None,
    ) -> VoidedPage:
        """``purchases.voidedpurchases.list``: one page (``VoidedPage.next_token`` for the next).
        ``include_subscriptions`` sends ``type=1`` (then key rows on ``order_id``); Google ignores
        the time window once a page token is given, and looks at most 30 days back."""
        op = "purchases.voidedpurchases.list"
        params: dict[str, Any] = {"type": 1 if include_subscriptions else 0}
        for name, value in (("startTime", start_time_ms), ("endTime", end_time_ms)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise _bad_argument(op, f"{name} must be epoch milliseconds")
                params[name] = str(value)
        if max_results is not None:
            if isinstance(max_results, bool) or not 0 < max_results <= MAX_VOIDED_RESULTS:
                raise _bad_argument(op, f"max_results must be 1..{MAX_VOIDED_RESULTS}")
            params["maxResults"] = max_results
        if page_token is not None:
            _segment(page_token, "page token", op, max_chars=4096)
            params["token"] = page_token
        if include_partial_refunds:
            params["includeQuantityBasedPartialRefund"] = "true"
        path = f"{self._app(package, op)}/purchases/voidedpurchases"
        return self._get(
            op, path, resources.parse_voided_page, params=params, deadline_s=deadline_s
        )

    def review_refund(
        self, package: str, order_id: str, review: RefundReview, *, deadline_s: float | None = None
    ) -> None:
        """``orders.reviewrefund``: ``POST applications/{pkg}/orders/{orderId}:reviewrefund``.
        Not idempotent (only the first answer counts): retried only when it cannot have reached
        Google or Google refused it unprocessed (429)."""
        op = "orders.reviewrefund"
        body = review.to_json()
        path = f"{self._app(package, op)}/orders/{_segment(order_id, 'order id', op)}:reviewrefund"
        self.transport.call(
            op,
            "POST",
            path,
            json_body=body,
            expect=(200, 204),
            idempotent=False,
            deadline_s=deadline_s,
            secrets=(review.pending_refund_token,),
        )
