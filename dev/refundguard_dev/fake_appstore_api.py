"""A local stand-in for the App Store Server API (one environment per server), for tests and
``make run``: a real HTTP server on 127.0.0.1 whose transactions and notifications are signed with
``refundguard_dev.apple_pki`` (so refundguard's real verifier runs on them).

Every request's API token is checked as Apple does: ES256 signature with a registered key
(``new_api_key`` makes one and its .p8), header ``kid`` and ``typ``, ``iss``, ``aud``
(``appstoreconnect-v1``), ``bid`` (a known app), ``iat``/``exp`` at most 60 minutes apart; 401
otherwise. Endpoints: Look Up Order ID (Production only), Get Transaction Info, Get Transaction
History v2 (``revision`` paging, 20 a page), Get Notification History (``paginationToken``;
``onlyFailures``; tampered notifications on request),
Send Consumption Information v2 (202, or 400 by every documented field rule of ConsumptionRequest:
``consumption_errors``), Request a Test Notification (a token; then, as Apple does, a signed
``TEST`` notification POSTed to ``notification_url``, each attempt's result recorded) and Get Test
Notification Status (its signed payload and send attempts; 400 4000020 for a malformed token, 404
4040008 for an unknown one); errors as ``{"errorCode", "errorMessage"}``. Faults
(``fail_next``) come from ``fake_http``. ``POST /_dev/order`` (no token; for ``make run``'s stack,
which runs in another process) adds an order and its transaction, optionally answered late.
Run alone: ``python -m refundguard_dev.fake_appstore_api``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .apple_pki import (
    APP_APPLE_ID,
    BUNDLE_ID,
    ApplePKI,
    default_pki,
    notification_payload,
    transaction_payload,
)
from .fake_http import FakeServer, Fault, Reply, Request, bearer

AUDIENCE = "appstoreconnect-v1"
PAGE_SIZE = 20
DAY_MS = 86_400_000
DELIVERY = {"DELIVERED", "UNDELIVERED_QUALITY_ISSUE", "UNDELIVERED_WRONG_ITEM",
            "UNDELIVERED_SERVER_OUTAGE", "UNDELIVERED_OTHER"}  # fmt: skip
ERRORS = {  # Apple's error codes for the statuses tests force
    400: (4000000, "Invalid request."),
    404: (4040010, "Transaction id not found."),
    429: (4290000, "Rate limit exceeded."),
    500: (5000000, "An unknown error occurred."),
    503: (5000001, "An unknown error occurred. Please try again."),
}

#: Send Consumption Information's documented 400s (App Store Server API 1.19). Apple documents
#: ConsumptionPercentageOutOfRangeError and UndeliveredConsumptionPercentageNonZeroError without a
#: code in the pages we could read: they answer GeneralBadRequest's 4000000, named in the message.
INVALID_CUSTOMER_CONSENTED = (4000035, "Invalid customer consented.")
INVALID_DELIVERY_STATUS = (4000036, "Invalid delivery status.")
INVALID_SAMPLE_CONTENT = (4000041, "Invalid sample content provided.")
INVALID_REFUND_PREFERENCE = (4000044, "Invalid request. The refund preference field is invalid.")
INVALID_TEST_NOTIFICATION_TOKEN = (4000020, "Invalid test notification token.")
TEST_NOTIFICATION_NOT_FOUND = (
    4040008,
    "Either the test notification token is expired or the notification and status are not yet "
    "available.",
)
#: Apple's test notification tokens: a UUID, an underscore, milliseconds since the epoch.
TEST_TOKEN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_\d{13}$")
PERCENTAGE_OUT_OF_RANGE = (4000000, "ConsumptionPercentageOutOfRangeError.")
UNDELIVERED_PERCENTAGE_NON_ZERO = (4000000, "UndeliveredConsumptionPercentageNonZeroError.")
PERCENTAGE_AUTO_RENEWABLE = (
    4000209,
    "Invalid request. The consumption percentage field is not supported for auto-renewable "
    "subscription transactions.",
)
AUTO_RENEWABLE = "Auto-Renewable Subscription"

__all__ = ["ApiKey", "FakeAppStoreApi", "Fault", "consumption_errors", "new_api_key"]


@dataclass(frozen=True)
class ApiKey:
    """An App Store Connect In-App Purchase key: what the function's settings hold."""

    key_id: str
    issuer_id: str
    private_key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:  # the .p8 file's text
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def write_p8(self, path: Path) -> Path:
        path.write_text(self.pem)
        path.chmod(0o600)
        return path


def new_api_key(key_id: str = "RGTEST0001", issuer_id: str | None = None) -> ApiKey:
    return ApiKey(key_id, issuer_id or str(uuid.uuid4()), ec.generate_private_key(ec.SECP256R1()))


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    if not isinstance(offset, int) or offset < 0:
        raise ValueError("bad offset")
    return offset


class FakeAppStoreApi(FakeServer):
    def __init__(
        self,
        port: int = 0,
        *,
        environment: str = "Sandbox",
        bundle_ids: Iterable[str] = (BUNDLE_ID,),
        app_apple_id: int = APP_APPLE_ID,
        pki: ApplePKI | None = None,
    ) -> None:
        super().__init__(port)
        self.environment = environment
        bundle_ids = list(bundle_ids)
        self.bundle_ids = set(bundle_ids)
        #: The first app given: the one ``POST /_dev/order`` adds transactions to.
        self.first_bundle_id = bundle_ids[0] if bundle_ids else BUNDLE_ID
        self.app_apple_id = app_apple_id
        self.pki = pki or default_pki()  # swap for another PKI: answers stop verifying
        self.keys: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = {}
        self.tokens_seen: list[str] = []
        self.refused_tokens: list[str] = []  # why each refused token was refused
        self.transactions: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, list[str]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.consumption: dict[str, list[dict[str, Any]]] = {}
        #: Where TEST notifications go (App Store Connect's URL for this environment); None: none
        #: configured (the status then shows no attempt).
        self.notification_url: str | None = None
        self.test_notifications: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ seeding

    def register_key(self, key: ApiKey) -> ApiKey:
        with self.lock:
            self.keys[key.key_id] = (key.issuer_id, key.private_key.public_key())
        return key

    def add_transaction(self, **fields: Any) -> dict[str, Any]:
        """A transaction (``apple_pki.transaction_payload`` fields), in this environment."""
        fields.setdefault("environment", self.environment)
        payload = transaction_payload(**fields)
        with self.lock:
            self.transactions[payload["transactionId"]] = payload
        return payload

    def add_order(self, order_id: str, *transaction_ids: str) -> None:
        with self.lock:
            self.orders[order_id] = list(transaction_ids)

    def add_notification(
        self,
        notification_type: str,
        subtype: str | None = None,
        *,
        transaction_id: str | None = None,
        signed_date: int | None = None,
        results: Iterable[str] = ("SUCCESS",),
        tampered: bool = False,
        data: dict[str, Any] | None = None,
    ) -> str:
        """A notification Apple tried to send, ``results`` the outcome of each attempt;
        ``tampered``: its payload is altered after signing (its signature no longer verifies);
        ``data``: extra fields of its ``data`` (e.g. ``consumptionRequestReason``). Returns its
        notificationUUID."""
        signed_date = signed_date or int(time.time() * 1000) - 60_000
        entry = {
            "type": notification_type,
            "subtype": subtype,
            "transaction_id": transaction_id,
            "signed_date": signed_date,
            "uuid": str(uuid.uuid4()),
            "results": list(results),
            "tampered": tampered,
            "data": dict(data or {}),
        }
        with self.lock:
            self.notifications.append(entry)
        return str(entry["uuid"])

    # ------------------------------------------------------------------ serving

    def error_reply(self, status: int, message: str, reason: str | None = None) -> Reply:
        code, text = ERRORS.get(status, (status * 10000, message))
        if message.startswith("injected fault; "):  # a fault quoting the request's headers
            text = message
        return Reply(status, {"errorCode": code, "errorMessage": text})

    def _error(self, code: int, message: str) -> Reply:
        return Reply(code // 10000, {"errorCode": code, "errorMessage": message})

    def handle(self, request: Request) -> Reply:
        if request.path == "/_dev/order" and request.method == "POST":
            return self._dev_order(request)
        bid = self._authenticate(bearer(request))
        if bid is None:
            return Reply(401, b"Unauthenticated\n", {"Content-Type": "text/plain"})
        parts = [unquote(p) for p in request.raw_path.strip("/").split("/")]
        with self.lock:
            return self._route(request, bid, parts)

    def _dev_order(self, request: Request) -> Reply:
        """``{"orderId", "transactionId", "delay_s"}``: an order of one transaction (of the first
        app given); with ``delay_s``, its next Look Up Order ID answers that many seconds late."""
        body = request.json() if request.body else None
        order_id = body.get("orderId") if isinstance(body, dict) else None
        tx = body.get("transactionId") if isinstance(body, dict) else None
        delay = body.get("delay_s", 0) if isinstance(body, dict) else None
        if not (isinstance(order_id, str) and order_id and isinstance(tx, str) and tx.isdigit()):
            return self._error(4000000, "orderId and a numeric transactionId are required")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 60:
            return self._error(4000000, "delay_s must be 0-60 seconds")
        bundle_id = self.first_bundle_id
        self.add_transaction(original_transaction_id=tx, bundle_id=bundle_id)
        self.add_order(order_id, tx)
        if delay:
            self.fail_next(Fault(delay_s=float(delay), path=f"/inApps/v1/lookup/{order_id}"))
        return Reply(200, {"added": order_id})

    def _authenticate(self, token: str | None) -> str | None:
        def refuse(why: str) -> None:
            with self.lock:
                self.refused_tokens.append(why)

        if token is None:
            return refuse("no bearer token")
        try:
            header = jwt.get_unverified_header(token)
            issuer, key = self.keys[header.get("kid")]
        except (jwt.PyJWTError, KeyError, TypeError):
            return refuse("unknown kid")
        if header.get("alg") != "ES256" or header.get("typ") != "JWT":
            return refuse("header must be alg ES256, typ JWT")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=issuer,
                options={"require": ["iss", "iat", "exp", "aud", "bid"]},
            )
        except jwt.PyJWTError as exc:
            return refuse(f"{type(exc).__name__}: {exc}")
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int) or not isinstance(exp, int) or iat > time.time() + 60:
            return refuse("iat in the future")
        if exp - iat > 3600:
            return refuse("exp more than 60 minutes after iat")
        if claims["bid"] not in self.bundle_ids:
            return refuse("unknown bid")
        with self.lock:
            self.tokens_seen.append(token)
        return str(claims["bid"])

    def _route(self, request: Request, bid: str, parts: list[str]) -> Reply:
        method = request.method
        match parts:
            case ["inApps", "v1", "lookup", order_id] if method == "GET":
                return self._lookup(bid, order_id)
            case ["inApps", "v1", "transactions", tx] if method == "GET":
                found = self._transaction(bid, tx)
                if isinstance(found, Reply):
                    return found
                return Reply(200, {"signedTransactionInfo": self.pki.sign(found)})
            case ["inApps", "v2", "history", tx] if method == "GET":
                return self._history(bid, tx, request)
            case ["inApps", "v1", "notifications", "history"] if method == "POST":
                return self._notification_history(bid, request)
            case ["inApps", "v2", "transactions", "consumption", tx] if method == "PUT":
                return self._consumption(bid, tx, request)
            case ["inApps", "v1", "notifications", "test"] if method == "POST":
                return self._request_test_notification(bid)
            case ["inApps", "v1", "notifications", "test", token] if method == "GET":
                return self._test_notification_status(bid, token)
        return Reply(404, b"Not Found\n", {"Content-Type": "text/plain"})

    def _transaction(self, bid: str, tx: str) -> dict[str, Any] | Reply:
        if not tx.isdigit():
            return self._error(4000006, "Invalid transaction id.")
        payload = self.transactions.get(tx)
        if payload is None or payload["bundleId"] != bid:
            return self._error(4040010, "Transaction id not found.")
        return payload

    def _lookup(self, bid: str, order_id: str) -> Reply:
        if self.environment != "Production":
            return Reply(404, b"Not Found\n", {"Content-Type": "text/plain"})
        ids = self.orders.get(order_id)
        if not ids:
            return Reply(200, {"status": 1})
        signed = [self.pki.sign(self.transactions[t]) for t in ids]
        return Reply(200, {"status": 0, "signedTransactions": signed})

    def _history(self, bid: str, tx: str, request: Request) -> Reply:
        found = self._transaction(bid, tx)
        if isinstance(found, Reply):
            return found
        try:
            offset = _offset(request.arg("revision"))
        except (ValueError, KeyError, TypeError):
            return self._error(4000005, "Invalid request revision.")
        start = int(request.arg("startDate") or 0)
        end = int(request.arg("endDate") or 2**62)
        products = request.query.get("productId") or None
        revoked = request.arg("revoked")
        rows = sorted(
            (
                t
                for t in self.transactions.values()
                if t["originalTransactionId"] == found["originalTransactionId"]
                and start <= t["purchaseDate"] < end
                and (products is None or t["productId"] in products)
                and (revoked is None or ("revocationDate" in t) == (revoked == "true"))
            ),
            key=lambda t: t["purchaseDate"],
            reverse=request.arg("sort") == "DESCENDING",
        )
        page = rows[offset : offset + PAGE_SIZE]
        body = {
            "revision": _page_token(offset + len(page)),
            "hasMore": offset + PAGE_SIZE < len(rows),
            "bundleId": bid,
            "appAppleId": self.app_apple_id,
            "environment": self.environment,
            "signedTransactions": [self.pki.sign(t) for t in page],
        }
        return Reply(200, body)

    def _notification_history(self, bid: str, request: Request) -> Reply:
        try:
            body = request.json()
            offset = _offset(request.arg("paginationToken"))
        except (ValueError, KeyError, TypeError):
            return self._error(4000014, "Invalid pagination token.")
        if not isinstance(body, dict) or not isinstance(body.get("startDate"), int):
            return self._error(4000015, "Invalid start date.")
        if not isinstance(body.get("endDate"), int):
            return self._error(4000016, "Invalid end date.")
        days = 180 if self.environment == "Production" else 30
        if body["startDate"] < time.time() * 1000 - days * DAY_MS:
            return self._error(4000012, "Start date is too far in the past.")
        if body["startDate"] >= body["endDate"]:
            return self._error(4000013, "Start date after end date.")
        if body.get("transactionId") and body.get("notificationType"):
            return self._error(4000019, "Multiple filters supplied.")
        rows = [
            n
            for n in self.notifications
            if body["startDate"] <= n["signed_date"] <= body["endDate"]
            and body.get("notificationType") in (None, n["type"])
            and body.get("transactionId") in (None, n["transaction_id"])
            and not (body.get("onlyFailures") and "SUCCESS" in n["results"])
        ]
        page = rows[offset : offset + PAGE_SIZE]
        out: dict[str, Any] = {"hasMore": offset + PAGE_SIZE < len(rows)}
        out["notificationHistory"] = [self._signed_notification(bid, n) for n in page]
        if out["hasMore"]:
            out["paginationToken"] = _page_token(offset + PAGE_SIZE)
        return Reply(200, out)

    def _signed_notification(self, bid: str, n: dict[str, Any]) -> dict[str, Any]:
        tx = self.transactions.get(n["transaction_id"] or "")
        payload = notification_payload(
            n["type"],
            n["subtype"],
            signed_transaction=self.pki.sign(tx) if tx else None,
            environment=self.environment,
            bundle_id=bid,
            app_apple_id=self.app_apple_id,
            signed_date=n["signed_date"],
            notification_uuid=n["uuid"],
        )
        payload["data"].update(n.get("data") or {})
        signed = self.pki.sign(payload)
        if n.get("tampered"):  # another payload under the same header and signature
            header, _, signature = signed.split(".")
            payload["notificationType"] = "REFUND_REVERSED"
            body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
            signed = f"{header}.{body}.{signature}"
        attempts = [
            {"attemptDate": n["signed_date"] + 1000 * i, "sendAttemptResult": result}
            for i, result in enumerate(n["results"])
        ]
        return {"signedPayload": signed, "sendAttempts": attempts}

    def _consumption(self, bid: str, tx: str, request: Request) -> Reply:
        found = self._transaction(bid, tx)
        if isinstance(found, Reply):
            return found
        try:
            body = request.json()
        except ValueError:
            return self._error(4000000, "Invalid request.")
        if not isinstance(body, dict):
            return self._error(4000000, "Invalid request.")
        refused = consumption_errors(body, found.get("type"))
        if refused:
            code, message = refused[0]
            return self._error(code, message)
        self.consumption.setdefault(tx, []).append(body)
        return Reply(202, None)

    # ------------------------------------------------------------------ test notifications

    def _request_test_notification(self, bid: str) -> Reply:
        token = f"{uuid.uuid4()}_{int(time.time() * 1000)}"
        payload = notification_payload(
            "TEST",
            environment=self.environment,
            bundle_id=bid,
            app_apple_id=self.app_apple_id,
            signed_date=int(time.time() * 1000),
        )
        test = {"bid": bid, "signed": self.pki.sign(payload), "attempts": []}
        self.test_notifications[token] = test
        if self.notification_url:
            url = self.notification_url
            threading.Thread(target=self._send_test, args=(test, url), daemon=True).start()
        return Reply(200, {"testNotificationToken": token})

    def _send_test(self, test: dict[str, Any], url: str) -> None:
        """One attempt to deliver, as App Store Server Notifications does (Sandbox: no retry)."""
        body = json.dumps({"signedPayload": test["signed"]}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                result = "SUCCESS" if answer.status == 200 else "UNSUCCESSFUL_HTTP_RESPONSE_CODE"
        except urllib.error.HTTPError:
            result = "UNSUCCESSFUL_HTTP_RESPONSE_CODE"
        except TimeoutError:
            result = "TIMED_OUT"
        except OSError:
            result = "NO_RESPONSE"
        with self.lock:
            attempt = {"attemptDate": int(time.time() * 1000), "sendAttemptResult": result}
            test["attempts"].append(attempt)

    def _test_notification_status(self, bid: str, token: str) -> Reply:
        if not TEST_TOKEN.match(token):
            return self._error(*INVALID_TEST_NOTIFICATION_TOKEN)
        test = self.test_notifications.get(token)
        if test is None or test["bid"] != bid:
            return self._error(*TEST_NOTIFICATION_NOT_FOUND)
        return Reply(200, {"signedPayload": test["signed"], "sendAttempts": list(test["attempts"])})


def consumption_errors(body: dict[str, Any], product_type: Any) -> list[tuple[int, str]]:
    """Apple's documented rules for a ConsumptionRequest (v2) on a transaction of
    ``product_type``: every error Apple would answer, first the one it answers."""
    errors = []
    if body.get("customerConsented") is not True:
        errors.append(INVALID_CUSTOMER_CONSENTED)
    delivery = body.get("deliveryStatus")
    if not isinstance(delivery, str) or delivery not in DELIVERY:
        errors.append(INVALID_DELIVERY_STATUS)
    if not isinstance(body.get("sampleContentProvided"), bool):
        errors.append(INVALID_SAMPLE_CONTENT)
    preference = body.get("refundPreference")
    if preference is not None and preference not in ("DECLINE", "GRANT_FULL", "GRANT_PRORATED"):
        errors.append(INVALID_REFUND_PREFERENCE)
    percent = body.get("consumptionPercentage")
    given = "consumptionPercentage" in body
    in_range = type(percent) is int and 0 <= percent <= 100_000
    if given and not in_range:
        errors.append(PERCENTAGE_OUT_OF_RANGE)
    if given and product_type == AUTO_RENEWABLE:
        errors.append(PERCENTAGE_AUTO_RENEWABLE)
    if given and in_range and delivery != "DELIVERED" and percent != 0:
        errors.append(UNDELIVERED_PERCENTAGE_NON_ZERO)
    prorated = preference == "GRANT_PRORATED" and product_type != AUTO_RENEWABLE
    if prorated and not (in_range and 0 < percent < 100_000):
        errors.append(PERCENTAGE_OUT_OF_RANGE)
    return errors


def main() -> None:  # pragma: no cover - a manual tool
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8086)
    parser.add_argument("--environment", default="Sandbox", choices=("Sandbox", "Production"))
    parser.add_argument("--p8", type=Path, default=Path(".run/appstore-fake-key.p8"))
    args = parser.parse_args()
    args.p8.parent.mkdir(parents=True, exist_ok=True)
    api = FakeAppStoreApi(args.port, environment=args.environment)
    key = api.register_key(new_api_key())
    key.write_p8(args.p8)
    api.start()
    print(f"fake App Store Server API ({args.environment}) on {api.url}")
    print(f"APPLE_API_KEY_ID={key.key_id} APPLE_API_ISSUER_ID={key.issuer_id}")
    print(f"APPLE_API_PRIVATE_KEY: the text of {args.p8}")
    api.serve_until_interrupted()


if __name__ == "__main__":  # pragma: no cover
    main()
