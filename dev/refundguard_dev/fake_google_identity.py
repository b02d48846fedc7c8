"""A local stand-in for Google's identity endpoints, so every way the admin CLI gets an ID token
runs for real in tests: the OAuth token endpoint (a service-account key's JWT-bearer grant, for an
access token or, with ``target_audience``, an ID token), IAM Credentials' ``generateIdToken`` (a
caller allowed to impersonate a service account gets an ID token of it), and the JWKS of the key
that signs those ID tokens (give its URL to the admin function as ``ADMIN_CERTS_URL``)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .fake_http import FakeServer, Reply, Request, bearer
from .google_oauth import ServiceAccounts
from .id_tokens import ISSUER, TestSigner

GENERATE = ":generateIdToken"
SERVICE_ACCOUNTS = "/v1/projects/-/serviceAccounts/"
CERTS_PATH = "/oauth2/v3/certs"


class FakeGoogleIdentity(FakeServer):
    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.token_uri = f"{self.url}/token"
        self.certs_url = f"{self.url}{CERTS_PATH}"
        self.signer = TestSigner("fake-google-identity")
        self.service_accounts = ServiceAccounts(self.token_uri, client_id="100000000000000000002")
        self.access_tokens: dict[str, str] = {}  # token -> the account it was issued to
        self.impersonators: dict[str, set[str]] = {}  # service account -> who may impersonate

    def write_service_account_key(self, path: Path, email: str) -> Path:
        """A key file for ``email`` whose ``token_uri`` is this stand-in's."""
        return self.service_accounts.write_key(path, email)

    def allow_impersonation(self, service_account: str, caller: str) -> None:
        with self.lock:
            self.impersonators.setdefault(service_account, set()).add(caller)

    def id_token(self, email: str, audience: str, *, include_email: bool = True) -> str:
        claims: dict[str, Any] = {
            "sub": str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16))
        }
        return self.signer.token(
            email if include_email else None,
            audience=audience,
            issuer=ISSUER,
            email_verified=True if include_email else None,
            **claims,
        )

    def handle(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == CERTS_PATH:
            return Reply(200, {"keys": [self.signer.jwk]}, {"Cache-Control": "max-age=3600"})
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        if (
            request.method == "POST"
            and request.raw_path.startswith(SERVICE_ACCOUNTS)
            and request.raw_path.endswith(GENERATE)
        ):
            target = unquote(request.raw_path[len(SERVICE_ACCOUNTS) : -len(GENERATE)])
            return self._generate(request, target)
        return self.error_reply(404, "not found")

    def error_reply(self, status: int, message: str, reason: str | None = None) -> Reply:
        return Reply(status, {"error": {"code": status, "message": message}})

    def _token(self, request: Request) -> Reply:
        claims = self.service_accounts.grant(request)
        if isinstance(claims, Reply):
            return claims
        email = str(claims["iss"])
        audience = claims.get("target_audience")
        if audience:  # service_account.IDTokenCredentials
            return Reply(200, {"id_token": self.id_token(email, str(audience))})
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[token] = email
        return Reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _generate(self, request: Request, target: str) -> Reply:
        with self.lock:
            caller = self.access_tokens.get(bearer(request) or "")
            allowed = caller is not None and caller in self.impersonators.get(target, set())
        if caller is None:
            return self.error_reply(401, "Request had invalid authentication credentials.")
        if not allowed:
            return self.error_reply(
                403, "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource"
            )
        body = request.json() or {}
        audience = body.get("audience")
        if not isinstance(audience, str) or not audience:
            return self.error_reply(400, "audience is required")
        include_email = body.get("includeEmail") is True
        return Reply(200, {"token": self.id_token(target, audience, include_email=include_email)})
