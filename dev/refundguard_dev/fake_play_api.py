"""A local stand-in for Google's OAuth token endpoint and the Play Developer API (androidpublisher
v3), for tests and ``make run``: a real HTTP server on 127.0.0.1 with in-memory state tests seed.

- ``POST /token``: the JWT-bearer grant google-auth sends for a service-account key written by
  ``write_service_account_key`` (RS256 signature checked with that key, ``iss``, ``aud``, ``scope``,
  ``iat``/``exp``), answering an access token; API requests without a live token get 401.
- ``orders.get``, ``orders.batchGet``, ``orders.reviewrefund``, ``purchases.productsv2``,
  ``purchases.subscriptionsv2``, ``purchases.voidedpurchases.list`` (time window, ``type``,
  partial refunds, token paging at most ``page_size`` rows a page, tokens that expire, an optional
  per-package quota answering 429 with ``Retry-After``), with Google's error body
  ``{"error": {code, message, status}}``.
- IAM Service Account Credentials ``generateAccessToken``
  (``POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken``, what google-auth's
  impersonated credentials call, pointed here by ``iam_endpoint_override``):
  the caller's token must carry the IAM or cloud-platform scope and its account must hold Token
  Creator on the target (``add_service_account``); else Google's documented errors (401
  UNAUTHENTICATED, 403 PERMISSION_DENIED ``IAM_PERMISSION_DENIED``, 403 ``SERVICE_DISABLED`` when
  ``iam_disabled``, 404 NOT_FOUND for an unknown account, 400 INVALID_ARGUMENT for a missing scope
  or a lifetime beyond 1-3600 s). Every access token belongs to an account; with ``invited`` set,
  only those accounts may call the Play API (others: 403, as an account not invited in the Play
  Console).

Faults (``fail_next``) come from ``fake_http``.
Run alone: ``python -m refundguard_dev.fake_play_api``.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .fake_http import FakeServer, Fault, Reply, Request, bearer
from .google_oauth import ServiceAccounts, oauth_error

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
IAM_SCOPES = (
    "https://www.googleapis.com/auth/iam",
    "https://www.googleapis.com/auth/cloud-platform",
)
IAM_PATH = "/v1/projects/-/serviceAccounts/"
DEFAULT_ACCOUNT = "refundguard-test@demo-refundguard.iam.gserviceaccount.com"
API = "/androidpublisher/v3/applications/"
DAY_MS = 86_400_000
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ALREADY_EXISTS", 410: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip

__all__ = ["DEFAULT_ACCOUNT", "FakePlayApi", "Fault"]


class FakePlayApi(FakeServer):
    def __init__(
        self,
        port: int = 0,
        *,
        packages: Iterable[str] | None = None,
        token_lifetime_s: int = 3600,
        page_size: int = 1000,
    ) -> None:
        super().__init__(port)
        self.token_uri = f"{self.url}/token"
        self.packages = set(packages) if packages is not None else None  # None: every package
        self.token_lifetime_s = token_lifetime_s
        self.page_size = page_size
        self.service_accounts = ServiceAccounts(self.token_uri, client_id="100000000000000000001")
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch s)
        self.token_owners: dict[str, tuple[str, frozenset[str]]] = {}  # token -> (account, scopes)
        #: Accounts invited in the Play Console (None: every account may call the Play API).
        self.invited: set[str] | None = None
        #: IAM: service account -> the accounts holding Token Creator on it.
        self.token_creators: dict[str, set[str]] = {}
        self.iam_disabled = False  # the IAM Service Account Credentials API is off
        self.orders: dict[tuple[str, str], dict[str, Any]] = {}
        self.products: dict[tuple[str, str], dict[str, Any]] = {}
        self.subscriptions: dict[tuple[str, str], dict[str, Any]] = {}
        self.gone: set[tuple[str, str]] = set()  # tokens Google no longer answers for (410)
        self.voided: dict[str, list[dict[str, Any]]] = {}
        self.pending_reviews: dict[tuple[str, str], str] = {}  # (pkg, order id) -> token
        self.reviews: dict[tuple[str, str], dict[str, Any]] = {}
        self.token_epoch = 0  # page tokens of an older epoch are refused (expired)
        self.quota: tuple[int, float] | None = None  # (queries, seconds) per package, else none
        self.voided_queries: dict[str, list[float]] = {}  # package -> times of voided queries

    @property
    def token_requests(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path == "/token")

    @property
    def iam_requests(self) -> list[str]:
        """The accounts ``generateAccessToken`` was asked for, in order."""
        with self.lock:
            return [self._iam_target(r) for r in self.requests if r.path.startswith(IAM_PATH)]

    def api_callers(self) -> list[str]:
        """The account behind each Play API request so far (``?`` for an unknown token)."""
        with self.lock:
            return [
                self.token_owners.get(bearer(r) or "", ("?", frozenset()))[0]
                for r in self.requests
                if r.raw_path.startswith(API)
            ]

    def add_service_account(self, email: str, *, token_creators: Iterable[str] = ()) -> None:
        """A service account IAM knows, and who may mint its tokens (Token Creator)."""
        with self.lock:
            self.token_creators.setdefault(email, set()).update(token_creators)

    # ------------------------------------------------------------------ accounts and seeding

    def write_service_account_key(self, path: Path, email: str = DEFAULT_ACCOUNT) -> Path:
        """A service-account key file whose ``token_uri`` is this stand-in's; its key is trusted."""
        return self.service_accounts.write_key(path, email, auth_uri=f"{self.url}/auth")

    def add_order(self, package: str, order: dict[str, Any]) -> None:
        with self.lock:
            self.orders[(package, order["orderId"])] = order

    def add_product_purchase(self, package: str, token: str, purchase: dict[str, Any]) -> None:
        with self.lock:
            self.products[(package, token)] = purchase

    def add_subscription(self, package: str, token: str, purchase: dict[str, Any]) -> None:
        with self.lock:
            self.subscriptions[(package, token)] = purchase

    def add_voided(
        self,
        package: str,
        row: dict[str, Any],
        *,
        subscription: bool = False,
        recorded_ms: int | None = None,
    ) -> None:
        """A voided purchase; ``recorded_ms``: when Google saw the void (the window filters on
        it), by default its ``voidedTimeMillis``."""
        entry = {"row": row, "subscription": subscription}
        entry["recorded_ms"] = recorded_ms or int(row["voidedTimeMillis"])
        with self.lock:
            self.voided.setdefault(package, []).append(entry)

    def expire_page_tokens(self) -> None:
        """Every page token given so far is refused from now on (400), as a stale one would be."""
        with self.lock:
            self.token_epoch += 1

    def add_pending_refund_review(self, package: str, order_id: str, token: str) -> None:
        with self.lock:
            self.pending_reviews[(package, order_id)] = token

    # ------------------------------------------------------------------ serving

    def target_of(self, request: Request) -> str:
        if request.path.startswith(IAM_PATH):
            return "iam"
        return "token" if request.path == "/token" else "api"

    def error_reply(self, status: int, message: str, reason: str | None = None) -> Reply:
        error = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
        error["errors"] = [{"message": message, "domain": "global", "reason": reason or "error"}]
        return Reply(status, {"error": error})

    def handle(self, request: Request) -> Reply:
        if request.path == "/token":
            return self._token(request)
        if request.path.startswith(IAM_PATH) and request.method == "POST":
            return self._generate_access_token(request)
        if request.path == "/_dev/voided" and request.method == "POST":
            return self._dev_voided(request)
        if not request.raw_path.startswith(API):
            return self.error_reply(404, "no such method", "notFound")
        token = bearer(request)
        with self.lock:
            expiry = self.access_tokens.get(token or "")
            account, scopes = self.token_owners.get(token or "", ("", frozenset()))
        if expiry is None or expiry <= time.time():
            return self.error_reply(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                "authError",
            )
        if SCOPE not in scopes:
            return self.error_reply(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )
        if self.invited is not None and account not in self.invited:
            return self.error_reply(
                403,
                "The current user has insufficient permissions to perform the requested operation.",
                "permissionDenied",
            )
        raw = request.raw_path[len(API) :].split("/")
        package, parts = unquote(raw[0]), [unquote(p) for p in raw[1:]]
        if self.packages is not None and package not in self.packages:
            return self.error_reply(403, "The caller does not have permission", "permissionDenied")
        with self.lock:
            return self._route(request, package, raw[1:], parts)

    def _route(self, request: Request, package: str, raw: list[str], parts: list[str]) -> Reply:
        method = request.method
        if method == "GET" and raw == ["orders:batchGet"]:
            return self._batch_get(package, request.query.get("orderIds", []))
        if len(raw) == 2 and raw[0] == "orders":
            order_raw, colon, verb = raw[1].partition(":")
            order_id = unquote(order_raw)
            if method == "GET" and not colon:
                order = self.orders.get((package, order_id))
                return Reply(200, order) if order else self.error_reply(404, "Order not found.")
            if method == "POST" and verb == "reviewrefund":
                return self._review(package, order_id, request)
        if method == "GET" and len(parts) == 4 and parts[0] == "purchases" and parts[2] == "tokens":
            store = {"productsv2": self.products, "subscriptionsv2": self.subscriptions}
            table = store.get(parts[1])
            if table is not None:
                if (package, parts[3]) in self.gone:
                    return self.error_reply(410, "The purchase is no longer available.", "gone")
                purchase = table.get((package, parts[3]))
                if purchase is None:
                    return self.error_reply(400, "Invalid Value", "invalid")
                return Reply(200, purchase)
        if method == "GET" and parts == ["purchases", "voidedpurchases"]:
            return self._voided(package, request)
        return self.error_reply(404, "Method not found.", "notFound")

    def _dev_voided(self, request: Request) -> Reply:
        """``make run`` only (``scripts/add_play_void.py``): a void Google recorded just now,
        ``{"package", "purchaseToken", "orderId"}``, that no notification announces."""
        body = request.json() if request.body else None
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) and body.get(k) for k in ("purchaseToken", "orderId")
        ):
            return self.error_reply(400, "purchaseToken and orderId are required")
        package = body.get("package") or next(iter(sorted(self.packages or {"com.example.app"})))
        now_ms = int(time.time() * 1000)
        row = {
            "kind": "androidpublisher#voidedPurchase",
            "purchaseToken": body["purchaseToken"],
            "orderId": body["orderId"],
            "purchaseTimeMillis": str(now_ms - DAY_MS),
            "voidedTimeMillis": str(now_ms),
            "voidedSource": 0,
            "voidedReason": 1,
        }
        self.add_voided(str(package), row)
        return Reply(200, {"added": row})

    def _issue(self, account: str, scopes: Iterable[str], lifetime_s: float) -> str:
        access_token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[access_token] = time.time() + lifetime_s
            self.token_owners[access_token] = (account, frozenset(scopes))
        return access_token

    def _token(self, request: Request) -> Reply:
        claims = self.service_accounts.grant(request)
        if isinstance(claims, Reply):
            return claims
        scopes = str(claims.get("scope", "")).split()
        if not {SCOPE, *IAM_SCOPES} & set(scopes):
            return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience.")
        access_token = self._issue(str(claims["iss"]), scopes, self.token_lifetime_s)
        body = {
            "access_token": access_token,
            "expires_in": self.token_lifetime_s,
            "token_type": "Bearer",
        }
        return Reply(200, body)

    @staticmethod
    def _iam_target(request: Request) -> str:
        return request.path[len(IAM_PATH) :].partition(":")[0]

    def _iam_error(self, status: int, message: str, reason: str | None = None) -> Reply:
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS.get(status, "UNKNOWN"),
        }
        if reason:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "iam.googleapis.com"
                    if reason != "SERVICE_DISABLED"
                    else "googleapis.com",
                    "metadata": {"service": "iamcredentials.googleapis.com"},
                }
            ]
        return Reply(status, {"error": error})

    def _generate_access_token(self, request: Request) -> Reply:
        target, _, verb = request.path[len(IAM_PATH) :].partition(":")
        if verb != "generateAccessToken":
            return self._iam_error(404, "Method not found.")
        token = bearer(request) or ""
        with self.lock:
            expiry = self.access_tokens.get(token)
            caller, scopes = self.token_owners.get(token, ("", frozenset()))
            creators = self.token_creators.get(target)
        if expiry is None or expiry <= time.time():
            return self._iam_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            )
        if not set(IAM_SCOPES) & scopes:
            return self._iam_error(
                403,
                "Request had insufficient authentication scopes.",
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            )
        if self.iam_disabled:
            return self._iam_error(
                403,
                "IAM Service Account Credentials API has not been used in project 1 before or it "
                "is disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
                "iamcredentials.googleapis.com/overview?project=1 then retry.",
                "SERVICE_DISABLED",
            )
        if creators is None:
            return self._iam_error(404, f"Not found; Gaia id not found for email {target}")
        if caller not in creators:
            return self._iam_error(
                403,
                "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may "
                "not exist).",
                "IAM_PERMISSION_DENIED",
            )
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._iam_error(400, "Invalid JSON payload received.")
        scope = body.get("scope")
        if not isinstance(scope, list) or not scope or not all(isinstance(x, str) for x in scope):
            return self._iam_error(400, "Scope required.")
        if body.get("delegates"):
            return self._iam_error(400, "Delegates are not supported by this stand-in.")
        lifetime = str(body.get("lifetime") or "3600s")
        try:
            seconds = float(lifetime.removesuffix("s"))
        except ValueError:
            seconds = -1.0
        if not lifetime.endswith("s") or not 1 <= seconds <= 3600:
            return self._iam_error(
                400, "The lifetime must be a duration between 1s and 3600s (without an org policy)."
            )
        seconds = min(seconds, float(self.token_lifetime_s))
        access_token = self._issue(target, scope, seconds)
        expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
        return Reply(200, {"accessToken": access_token, "expireTime": expire})

    def _batch_get(self, package: str, ids: list[str]) -> Reply:
        if not 0 < len(ids) <= 1000 or len(set(ids)) != len(ids):
            return self.error_reply(400, "orderIds must hold 1 to 1000 distinct ids")
        orders = [self.orders.get((package, order_id)) for order_id in ids]
        if any(order is None for order in orders):
            return self.error_reply(404, "Order not found.")
        return Reply(200, {"orders": orders})

    def _review(self, package: str, order_id: str, request: Request) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return self.error_reply(400, "Invalid JSON payload received.")
        pending = self.pending_reviews.get((package, order_id))
        if pending is None:
            return self.error_reply(404, "Order not found.")
        if not isinstance(body, dict) or body.get("pendingRefundToken") != pending:
            return self.error_reply(400, "Invalid pendingRefundToken.")
        percent = body.get("consumptionPercentageMilliunits", 0)
        if (
            body.get("refundPreference") not in ("APPROVE", "DECLINE", "NEUTRAL")
            or not isinstance(body.get("sampleContentProvided"), bool)
            or not isinstance(percent, int)
            or not 0 <= percent <= 100_000
            or len(body.get("consumptionUsageEvents") or []) > 1000
        ):
            return self.error_reply(400, "Invalid refund review.")
        if (package, order_id) in self.reviews:  # only the first answer counts
            return self.error_reply(409, "The refund review was already answered.")
        self.reviews[(package, order_id)] = body
        return Reply(200, {})

    def _voided(self, package: str, request: Request) -> Reply:
        now_ms = int(time.time() * 1000)
        if self.quota is not None:  # Google: 30 queries per 30 seconds per package
            limit, window_s = self.quota
            sent = self.voided_queries.setdefault(package, [])
            sent[:] = [t for t in sent if t > time.monotonic() - window_s]
            if len(sent) >= limit:
                reply = self.error_reply(429, "Quota exceeded", "rateLimitExceeded")
                reply.headers["Retry-After"] = str(int(window_s))
                return reply
            sent.append(time.monotonic())
        try:
            page_token = request.arg("token")
            if page_token:
                state = json.loads(base64.urlsafe_b64decode(page_token.encode()))
                if state.get("epoch", 0) != self.token_epoch:
                    return self.error_reply(400, "Invalid pagination token")
                start, end, kind = state["start"], state["end"], state["type"]
                partial, offset, size = state["partial"], state["offset"], state["size"]
            else:
                start = int(request.arg("startTime") or now_ms - 30 * DAY_MS)
                end = int(request.arg("endTime") or now_ms)
                kind = int(request.arg("type") or 0)
                partial = request.arg("includeQuantityBasedPartialRefund") == "true"
                offset, size = 0, int(request.arg("maxResults") or self.page_size)
        except (ValueError, KeyError, TypeError):
            return self.error_reply(400, "Invalid Value")
        if start < now_ms - 30 * DAY_MS - 60_000 or end > now_ms + 60_000 or start > end:
            return self.error_reply(400, "startTime must be within the last 30 days, <= endTime")
        if kind not in (0, 1) or not 0 < size <= 1000:
            return self.error_reply(400, "Invalid Value")
        size = min(size, self.page_size)  # Google may answer fewer rows than asked for
        rows = [
            entry["row"]
            for entry in self.voided.get(package, [])
            if start <= entry["recorded_ms"] <= end
            and (kind == 1 or not entry["subscription"])
            and (partial or "voidedQuantity" not in entry["row"])
        ]
        body: dict[str, Any] = {"voidedPurchases": rows[offset : offset + size]}
        body["pageInfo"] = {"totalResults": len(rows), "resultPerPage": size, "startIndex": offset}
        if offset + size < len(rows):
            state = {"start": start, "end": end, "type": kind, "partial": partial}
            state.update(offset=offset + size, size=size, epoch=self.token_epoch)
            token = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            body["tokenPagination"] = {"nextPageToken": token}
        if not rows[offset : offset + size]:
            body.pop("voidedPurchases")
        return Reply(200, body)


def main() -> None:  # pragma: no cover - a manual tool
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--key-file", type=Path, default=Path(".run/play-fake-sa.json"))
    args = parser.parse_args()
    args.key_file.parent.mkdir(parents=True, exist_ok=True)
    api = FakePlayApi(args.port)
    api.write_service_account_key(args.key_file)
    api.start()
    print(
        f"fake Play Developer API on {api.url} (PLAY_API_BASE_URL); token endpoint {api.token_uri}"
    )
    print(f"service-account key (GOOGLE_APPLICATION_CREDENTIALS): {args.key_file}")
    api.serve_until_interrupted()


if __name__ == "__main__":  # pragma: no cover
    main()
