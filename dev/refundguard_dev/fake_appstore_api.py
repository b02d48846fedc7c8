"""A local stand-in for the App Store Server API (one environment per server), for tests and
``make run``: a real HTTP server on 127.0.0.1 whose transactions and notifications are signed with
``refundguard_dev.apple_pki`` (so refundguard's real verifier runs on them).

Every request's API token is checked as Apple does: ES256 signature with a registered key
(``new_api_key`` makes one and its .p8), header ``kid`` and ``typ``, ``iss``, ``aud``
(``appstoreconnect-v1``), ``bid`` (a known app), ``iat``/``exp`` at most 60 minutes apart; 401
otherwise. Endpoints: Look Up Order ID (Production only), Get Transaction Info, Get Transaction
History v2 (``revision`` paging, 20 a page), Get Notification History (``paginationToken``;
``onlyFailures``; tampered notifications on request),
Send Consumption Information v2 (202); errors as ``{"errorCode", "errorMessage"}``. Faults
(``fail_next``) come from ``fake_http``. Run alone: ``python -m refundguard_dev.fake_appstore_api``.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
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

__all__ = ["ApiKey", "FakeAppStoreApi", "Fault", "new_api_key"]


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
        self.bundle_ids = set(bundle_ids)
        self.app_apple_id = app_apple_id
        self.pki = pki or default_pki()  # swap for another PKI: answers stop verifying
        self.keys: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = {}
        self.tokens_seen: list[str] = []
        self.refused_tokens: list[str] = []  # why each refused token was refused
        self.transactions: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, list[str]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.consumption: dict[str, list[dict[str, Any]]] = {}

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
        bid = self._authenticate(bearer(request))
        if bid is None:
            return Reply(401, b"Unauthenticated\n", {"Content-Type": "text/plain"})
        parts = [unquote(p) for p in request.raw_path.strip("/").split("/")]
        with self.lock:
            return self._route(request, bid, parts)

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
        if not isinstance(body, dict) or body.get("customerConsented") is not True:
            return self._error(4000035, "Invalid customer consented.")
        if body.get("deliveryStatus") not in DELIVERY:
            return self._error(4000036, "Invalid delivery status.")
        if not isinstance(body.get("sampleContentProvided"), bool):
            return self._error(4000041, "Invalid sample content provided.")
        percent = body.get("consumptionPercentage", 0)
        if not isinstance(percent, int) or not 0 <= percent <= 100_000:
            return self._error(4000000, "Invalid consumption percentage.")
        if body.get("refundPreference") not in (None, "DECLINE", "GRANT_FULL", "GRANT_PRORATED"):
            return self._error(4000000, "Invalid refund preference.")
        self.consumption.setdefault(tx, []).append(body)
        return Reply(202, None)


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
