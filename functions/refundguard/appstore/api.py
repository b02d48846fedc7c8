"""A thin App Store Server API client on requests and PyJWT, as Apple's own library keeps it: one
request helper (``_call``), one parser per answer (``resources``). Look Up Order ID, Get
Transaction Info, Get Transaction History (v2), Get Notification History, Send Consumption
Information (v2), Request a Test Notification and Get Test Notification Status. It returns Apple's
signed data as signed: verifying it is ``appstore.verified``'s, with an ``AppleVerifier``. Its
settings and API tokens are in ``appstore.credentials``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..refunds import DELIVERY_STATUSES
from ..storeapi import (
    APPLE,
    DEFAULT_MAX_RESPONSE_BYTES,
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
from .credentials import ApiTokens, AppleApiSettings, read_apple_api_settings
from .verifier import PRODUCTION, SANDBOX

__all__ = [
    "ApiTokens",
    "AppStoreApiClient",
    "AppleApiSettings",
    "ConsumptionInfo",
    "read_apple_api_settings",
]
REFUND_PREFERENCES = frozenset({"DECLINE", "GRANT_FULL", "GRANT_PRORATED"})
#: Apple's "not found yet, retry" 404s (ACCOUNT_, APP_, ORIGINAL_TRANSACTION_ID_...) and 5000001.
RETRYABLE_ERROR_CODES = frozenset({4040002, 4040004, 4040006, 5000001})
AUTH_HINT = (
    "check APPLE_API_KEY_ID, APPLE_API_ISSUER_ID and APPLE_API_PRIVATE_KEY (an In-App Purchase key "
    "from App Store Connect > Users and Access > Integrations), the bundle id and this server's "
    "clock; Production answers 401 until the app has a production release"
)


# ---------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ConsumptionInfo:
    """The body of Send Consumption Information (v2). Send it only with the customer's consent:
    Apple refuses ``customerConsented`` other than true."""

    customer_consented: bool
    delivery_status: str  # DELIVERY_STATUSES
    sample_content_provided: bool
    consumption_percentage: int | None = None  # milliunits, 0..100,000
    refund_preference: str | None = None  # DECLINE | GRANT_FULL | GRANT_PRORATED

    def to_json(self) -> dict[str, Any]:
        problems = []
        if self.customer_consented is not True:
            problems.append("customer_consented must be True (without consent, do not answer)")
        if self.delivery_status not in DELIVERY_STATUSES:
            problems.append(
                f"delivery_status must be one of {', '.join(sorted(DELIVERY_STATUSES))}"
            )
        if not isinstance(self.sample_content_provided, bool):
            problems.append("sample_content_provided must be a boolean")
        percent = self.consumption_percentage
        if percent is not None and not is_milliunits(percent):
            problems.append("consumption_percentage must be 0..100000 milliunits")
        if self.refund_preference is not None and self.refund_preference not in REFUND_PREFERENCES:
            problems.append("refund_preference must be DECLINE, GRANT_FULL or GRANT_PRORATED")
        if problems:
            raise _bad_argument("consumption", "; ".join(problems))
        body: dict[str, Any] = {
            "customerConsented": True,
            "deliveryStatus": self.delivery_status,
            "sampleContentProvided": self.sample_content_provided,
        }
        if percent is not None:
            body["consumptionPercentage"] = percent
        if self.refund_preference is not None:
            body["refundPreference"] = self.refund_preference
        return body


def explain(status: int, document: Any) -> Refusal:
    """Apple's error body: ``{"errorCode": 4040010, "errorMessage": "..."}``."""
    if not isinstance(document, dict):
        return Refusal()
    code = document.get("errorCode")
    message = document.get("errorMessage")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    return Refusal(
        message=message if isinstance(message, str) else None,
        reason=str(code) if code is not None else None,
        retryable=code in RETRYABLE_ERROR_CODES,
    )


def _bad_argument(operation: str, problem: str) -> StoreRequestError:
    return bad_argument(APPLE, operation, problem)


def _segment(value: Any, what: str, operation: str) -> str:
    return path_segment(value, what, store=APPLE, operation=operation, max_chars=128)


# ---------------------------------------------------------------------------------------- client


class AppStoreApiClient:
    """The App Store Server API calls refundguard makes. Every method takes the app's
    ``bundle_id`` (its token's ``bid``), most an ``environment`` (Production or Sandbox: the
    host), an optional ``deadline_s``; it raises a ``storeapi.StoreApiError``."""

    def __init__(
        self,
        settings: AppleApiSettings,
        *,
        policy: CallPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        tokens: ApiTokens | None = None,
    ) -> None:
        import requests

        self.settings = settings
        self.tokens = tokens or ApiTokens(settings)
        session = requests.Session()
        self.transports = {
            env: Transport(
                APPLE,
                settings.url_for(env),
                session,
                explain=explain,
                auth_hint=AUTH_HINT,
                policy=policy,
                max_response_bytes=max_response_bytes,
            )
            for env in (PRODUCTION, SANDBOX)
        }

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        bundle_id: str,
        environment: str,
        deadline_s: float | None,
        **kw: Any,
    ) -> Any:
        transport = self.transports.get(environment)
        if transport is None:
            raise _bad_argument(operation, "environment must be Production or Sandbox")
        _segment(bundle_id, "bundle id", operation)

        def headers() -> dict[str, str]:  # per attempt: a retry after expiry gets a fresh token
            return {"Authorization": f"Bearer {self.tokens.token(bundle_id)}"}

        return transport.call(
            operation, method, path, headers=headers, deadline_s=deadline_s, **kw
        ).body

    def look_up_order(
        self, order_id: str, *, bundle_id: str, deadline_s: float | None = None
    ) -> resources.SignedOrderLookup:
        """Look Up Order ID: ``GET /inApps/v1/lookup/{orderId}`` (Production only); its signed
        transactions still to verify (``appstore.verified.look_up_order``)."""
        op = "lookup"
        path = f"/inApps/v1/lookup/{_segment(order_id, 'order id', op)}"
        body = self._call(
            op, "GET", path, bundle_id=bundle_id, environment=PRODUCTION, deadline_s=deadline_s
        )
        return _parse(op, resources.parse_order_lookup, body)

    def get_transaction_info(
        self,
        transaction_id: str,
        *,
        bundle_id: str,
        environment: str,
        deadline_s: float | None = None,
    ) -> str:
        """Get Transaction Info: ``GET /inApps/v1/transactions/{transactionId}``; the signed
        transaction (``appstore.verified.transaction_info`` verifies it)."""
        op = "transactions.get"
        path = f"/inApps/v1/transactions/{_segment(transaction_id, 'transaction id', op)}"
        body = self._call(
            op, "GET", path, bundle_id=bundle_id, environment=environment, deadline_s=deadline_s
        )
        return str(_parse(op, resources.parse_transaction_info, body))

    def get_transaction_history(
        self,
        transaction_id: str,
        *,
        bundle_id: str,
        environment: str,
        revision: str | None = None,
        start_date_ms: int | None = None,
        end_date_ms: int | None = None,
        product_ids: Sequence[str] = (),
        revoked: bool | None = None,
        descending: bool = False,
        deadline_s: float | None = None,
    ) -> resources.SignedHistoryPage:
        """Get Transaction History v2: ``GET /inApps/v2/history/{transactionId}``, one page of up
        to 20, signed; pass ``revision`` back (with the same filters) while ``has_more``."""
        op = "history"
        params: dict[str, Any] = {"sort": "DESCENDING" if descending else "ASCENDING"}
        if revision is not None:
            params["revision"] = revision
        for name, value in (("startDate", start_date_ms), ("endDate", end_date_ms)):
            if value is not None:
                params[name] = str(int(value))
        if product_ids:
            params["productId"] = list(product_ids)
        if revoked is not None:
            params["revoked"] = "true" if revoked else "false"
        path = f"/inApps/v2/history/{_segment(transaction_id, 'transaction id', op)}"
        body = self._call(
            op,
            "GET",
            path,
            bundle_id=bundle_id,
            environment=environment,
            deadline_s=deadline_s,
            params=params,
        )
        return _parse(op, resources.parse_history, body)

    def get_signed_notification_history(
        self,
        *,
        bundle_id: str,
        environment: str,
        start_date_ms: int,
        end_date_ms: int,
        pagination_token: str | None = None,
        only_failures: bool = False,
        transaction_id: str | None = None,
        notification_type: str | None = None,
        notification_subtype: str | None = None,
        deadline_s: float | None = None,
    ) -> resources.SignedNotificationPage:
        """One page of Get Notification History: ``POST /inApps/v1/notifications/history`` (20 a
        page; 180 days back in Production, 30 in Sandbox), each ``signedPayload`` still to verify
        (the reconciler verifies each as the endpoint does, quarantining one that fails)."""
        op = "notifications.history"
        request: dict[str, Any] = {"startDate": int(start_date_ms), "endDate": int(end_date_ms)}
        for name, value in (
            ("transactionId", transaction_id),
            ("notificationType", notification_type),
            ("notificationSubtype", notification_subtype),
        ):
            if value is not None:
                request[name] = value
        if only_failures:
            request["onlyFailures"] = True
        params = {"paginationToken": pagination_token} if pagination_token else None
        body = self._call(
            op,
            "POST",
            "/inApps/v1/notifications/history",
            bundle_id=bundle_id,
            environment=environment,
            deadline_s=deadline_s,
            params=params,
            json_body=request,
        )
        return _parse(op, resources.parse_notification_history, body)

    def send_consumption_information(
        self,
        transaction_id: str,
        info: ConsumptionInfo,
        *,
        bundle_id: str,
        environment: str,
        deadline_s: float | None = None,
    ) -> None:
        """Send Consumption Information v2: ``PUT /inApps/v2/transactions/consumption/{id}``
        (202 Accepted). A PUT of the same facts: safe to retry."""
        op = "consumption"
        body = info.to_json()
        path = (
            f"/inApps/v2/transactions/consumption/{_segment(transaction_id, 'transaction id', op)}"
        )
        self._call(
            op,
            "PUT",
            path,
            bundle_id=bundle_id,
            environment=environment,
            deadline_s=deadline_s,
            json_body=body,
            expect=(200, 202),
        )

    def request_test_notification(
        self, *, bundle_id: str, environment: str, deadline_s: float | None = None
    ) -> str:
        """Request a Test Notification: ``POST /inApps/v1/notifications/test``; Apple then sends
        a ``TEST`` notification to the app's notification URL of that environment. Returns the
        ``testNotificationToken`` (for ``get_test_notification_status``)."""
        op = "notifications.test"
        body = self._call(
            op,
            "POST",
            "/inApps/v1/notifications/test",
            bundle_id=bundle_id,
            environment=environment,
            deadline_s=deadline_s,
            idempotent=False,  # each request is a new test: retried only if it never arrived
        )
        return str(_parse(op, resources.parse_test_notification_token, body))

    def get_test_notification_status(
        self,
        test_notification_token: str,
        *,
        bundle_id: str,
        environment: str,
        deadline_s: float | None = None,
    ) -> resources.TestNotificationStatus:
        """Get Test Notification Status: ``GET /inApps/v1/notifications/test/{token}`` (for six
        months): the TEST notification's signed payload and Apple's send attempts."""
        op = "notifications.test.status"
        token = _segment(test_notification_token, "test notification token", op)
        body = self._call(
            op,
            "GET",
            f"/inApps/v1/notifications/test/{token}",
            bundle_id=bundle_id,
            environment=environment,
            deadline_s=deadline_s,
        )
        return _parse(op, resources.parse_test_notification_status, body)


def _parse(operation: str, parse: Callable[[Any], Any], body: Any) -> Any:
    try:
        return parse(body)
    except MalformedAnswer as exc:
        raise bad_answer(APPLE, operation, str(exc)) from None
