"""Who is calling: a Google-signed OpenID Connect ID token, then an allow-list of emails.

Used by the admin function (people and support service accounts, ``ADMIN_*`` settings) and by the
Play function (the Pub/Sub push identity, ``PLAY_PUSH_*`` settings): the setting names below are the
admin function's; the Play function's are in ``refundguard.play.function``.

``Authenticator.authenticate(authorization_header)`` returns the caller (``Caller``) or raises a
``RefundGuardError``: UNAUTHENTICATED (401) for a missing, malformed, expired, wrongly signed,
wrong-issuer or wrong-audience token or an unverified email; FORBIDDEN (403) for a valid token of
someone not on the list; TRANSIENT (503) when Google's certificates cannot be fetched (ours to
retry, never the caller's fault).

Checks, in order: the header is ``Bearer <JWT>`` of sane length; the JWT header says ``RS256`` and
names a key id; the signature verifies against Google's certificate for that key id (fetched from
``ADMIN_CERTS_URL``, cached, refetched once on an unknown key id to follow key rotation); ``iat`` /
``exp`` hold (with a small clock skew); ``aud`` is one of ``ADMIN_AUDIENCES`` (when audiences are
configured: the Play function's push check relies on a dedicated identity instead); ``iss`` is
exactly ``accounts.google.com`` or ``https://accounts.google.com``; ``email_verified`` is the JSON
``true``; then the lower-cased email is on ``ADMIN_EMAILS``.

Allow-list entries are exact emails (``alice@example.com``) or ``*@domain``. A ``*@domain`` entry
matches only when the email's domain equals the domain AND the token's ``hd`` (hosted domain) claim
equals it too: Google's documentation says the email domain alone does not show that a Workspace /
Cloud Identity organisation manages the account (a consumer Google account can carry any verified
address), ``hd`` does. The one exception is a service-account domain
(``*@PROJECT.iam.gserviceaccount.com``), which only Google can issue addresses in and whose tokens
never carry ``hd``.

Nothing here logs or echoes the bearer token: google-auth's exception messages can contain it, so
they are mapped to fixed messages.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import logs
from .config import ConfigError
from .errors import Kind, RefundGuardError, transient

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
SERVICE_ACCOUNT_DOMAIN_SUFFIX = ".gserviceaccount.com"

MAX_TOKEN_CHARS = 8192  # Google ID tokens are ~1 KB; anything huge is not one
CLOCK_SKEW_SECONDS = 30
MAX_CERTS = 32  # Google publishes two or three keys at a time
MAX_CERTS_BYTES = 256 * 1024

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_EMAIL = re.compile(r"[^@\s,]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def unauthenticated(code: str, message: str) -> RefundGuardError:
    return RefundGuardError(Kind.UNAUTHENTICATED, code, message)


def forbidden(code: str, message: str) -> RefundGuardError:
    return RefundGuardError(Kind.FORBIDDEN, code, message)


@dataclass(frozen=True)
class Caller:
    """A caller whose token verified and whose email is on the allow-list."""

    email: str  # lower-cased
    subject: str | None  # the token's ``sub``: Google's stable account id
    hosted_domain: str | None  # ``hd``


# ---------------------------------------------------------------------------------------- certs


FetchResult = tuple[bytes, str | None]  # (body, Cache-Control header)
Fetcher = Callable[[str, float], FetchResult]


def _http_fetch(url: str, timeout_s: float) -> FetchResult:
    import requests

    with requests.get(url, timeout=timeout_s, stream=True, allow_redirects=False) as response:
        if response.status_code != 200:
            raise OSError(f"certificate endpoint answered HTTP {response.status_code}")
        body = response.raw.read(MAX_CERTS_BYTES + 1, decode_content=True)
        if len(body) > MAX_CERTS_BYTES:
            raise OSError("certificate endpoint answered more than the size limit")
        return body, response.headers.get("Cache-Control")


def _parse_certs(body: bytes) -> dict[str, str]:
    """Google's v1 format: ``{"<kid>": "-----BEGIN CERTIFICATE-----..."}``."""
    try:
        value = json.loads(body)
    except ValueError:
        raise OSError("certificate endpoint answered something other than JSON") from None
    if not isinstance(value, dict) or not value or len(value) > MAX_CERTS:
        raise OSError("certificate endpoint answered an unexpected document")
    certs = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    if len(certs) != len(value) or not all("BEGIN CERTIFICATE" in v for v in certs.values()):
        raise OSError("certificate endpoint answered an unexpected document")
    return certs


class CertCache:
    """Google's signing certificates, fetched once and kept for their ``max-age``.

    Bounded in every direction: at most ``MAX_CERTS`` keys, one document, a lifetime clamped to
    [``min_ttl_s``, ``max_ttl_s``]. A token naming a key id that is not cached triggers one refetch
    (key rotation), at most once per ``refetch_interval_s``, so a stream of tokens with made-up key
    ids cannot make us hammer the endpoint. If a refresh fails while the previous certificates are
    less than ``stale_grace_s`` past their expiry, those are used (Google announces keys long before
    using them and keeps them long after); otherwise the failure is TRANSIENT (503).
    Thread-safe: one fetch at a time; concurrent requests wait for it.
    """

    def __init__(
        self,
        url: str,
        *,
        fetch: Fetcher = _http_fetch,
        timeout_s: float = 5.0,
        default_ttl_s: float = 3600.0,
        min_ttl_s: float = 60.0,
        max_ttl_s: float = 6 * 3600.0,
        refetch_interval_s: float = 30.0,
        stale_grace_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._fetch = fetch
        self._timeout_s = timeout_s
        self._default_ttl_s = default_ttl_s
        self._min_ttl_s = min_ttl_s
        self._max_ttl_s = max_ttl_s
        self._refetch_interval_s = refetch_interval_s
        self._stale_grace_s = stale_grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._expires_at = 0.0
        self._fetched_at: float | None = None
        self.fetches = 0  # successful and failed attempts, for tests and logs

    def certs_for(self, kid: str) -> Mapping[str, str]:
        """The current certificates, refreshed if expired or if ``kid`` is not among them."""
        with self._lock:
            now = self._clock()
            if not self._certs or now >= self._expires_at:
                self._refresh(now, allow_stale=True)
            elif kid not in self._certs and (
                self._fetched_at is None or now - self._fetched_at >= self._refetch_interval_s
            ):
                # Key rotation, or a made-up key id: one rate-limited refetch. If it fails we cannot
                # tell which, so the caller gets a 503 (retry) rather than a 401.
                self._refresh(now, allow_stale=False)
            return dict(self._certs)

    def _refresh(self, now: float, *, allow_stale: bool) -> None:
        self.fetches += 1
        try:
            body, cache_control = self._fetch(self.url, self._timeout_s)
            certs = _parse_certs(body)
        except Exception as exc:  # network, HTTP status, bad document: all ours to retry
            self._fetched_at = now  # rate-limit the retries too
            usable = self._certs and now < self._expires_at + self._stale_grace_s
            logs.error(
                "could not fetch Google's ID-token certificates",
                url=self.url,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                using_cached=bool(allow_stale and usable),
            )
            if allow_stale and usable:
                return
            raise transient(
                "certs_unavailable", "could not fetch the token signing certificates; retry later"
            ) from exc
        self._certs = certs
        self._fetched_at = now
        self._expires_at = now + self._ttl(cache_control)

    def _ttl(self, cache_control: str | None) -> float:
        match = _MAX_AGE.search(cache_control or "")
        ttl = float(match.group(1)) if match else self._default_ttl_s
        return min(max(ttl, self._min_ttl_s), self._max_ttl_s)


# ---------------------------------------------------------------------------------------- tokens


class IdTokenVerifier:
    """Verifies a Google-signed ID token and returns its claims (see the module docstring)."""

    def __init__(
        self,
        audiences: Iterable[str] | None,
        certs: CertCache,
        *,
        clock_skew_s: int = CLOCK_SKEW_SECONDS,
        setting: str = "ADMIN_AUDIENCES",
    ) -> None:
        """``audiences`` None: any audience (only for a caller identity dedicated to one use)."""
        self.audiences = tuple(audiences) if audiences is not None else None
        if self.audiences is not None and not self.audiences:
            raise ConfigError(f"{setting} must name at least one audience")
        self._certs = certs
        self._clock_skew_s = clock_skew_s

    def verify(self, token: str) -> Mapping[str, Any]:
        from google.auth import exceptions as gauth_exceptions
        from google.auth import jwt

        if len(token) > MAX_TOKEN_CHARS or not _JWT_SHAPE.fullmatch(token):
            raise unauthenticated("malformed_token", "the bearer token is not a JWT")
        try:
            header = jwt.decode_header(token)
        except (gauth_exceptions.GoogleAuthError, ValueError, TypeError):
            raise unauthenticated("malformed_token", "the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise unauthenticated("bad_token_algorithm", "the token must be signed with RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthenticated("bad_token_key", "the token names no signing key")

        certs = self._certs.certs_for(kid)
        if kid not in certs:
            raise unauthenticated("unknown_token_key", "the token's signing key is not Google's")
        try:
            claims = jwt.decode(
                token,
                certs={kid: certs[kid]},
                audience=None,
                clock_skew_in_seconds=self._clock_skew_s,
            )
        except (gauth_exceptions.GoogleAuthError, ValueError, TypeError) as exc:
            text = str(exc)
            if "expired" in text:
                raise unauthenticated("token_expired", "the token has expired") from None
            if "too early" in text:
                raise unauthenticated("token_not_yet_valid", "the token is not valid yet") from None
            if "signature" in text:
                raise unauthenticated(
                    "bad_token_signature", "the token's signature does not verify"
                ) from None
            raise unauthenticated("invalid_token", "the token is not valid") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise unauthenticated("wrong_issuer", "the token was not issued by Google accounts")
        aud = claims.get("aud")
        if not isinstance(aud, str) or (self.audiences is not None and aud not in self.audiences):
            raise unauthenticated("wrong_audience", "the token is not meant for this function")
        if claims.get("email_verified") is not True:
            raise unauthenticated(
                "email_not_verified",
                "the token carries no verified email (for a service account, "
                "request it with --include-email)",
            )
        email = claims.get("email")
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise unauthenticated("no_email", "the token carries no email")


# ---------------------------------------------------------------------------------------- who


class AllowList:
    """``ADMIN_EMAILS``: exact emails and ``*@domain`` entries, compared lower-cased."""

    def __init__(self, entries: Iterable[str], *, setting: str = "ADMIN_EMAILS") -> None:
        emails: set[str] = set()
        domains: set[str] = set()
        for raw in entries:
            entry = raw.strip().lower()
            if entry.startswith("*@"):
                domain = entry[2:]
                if not _EMAIL.fullmatch(f"x@{domain}"):
                    raise ConfigError(f"{setting}: {raw!r} is not a valid *@domain entry")
                domains.add(domain)
            elif _EMAIL.fullmatch(entry) and "*" not in entry:
                emails.add(entry)
            else:
                raise ConfigError(f"{setting}: {raw!r} is neither an email nor a *@domain entry")
        if not emails and not domains:
            raise ConfigError(f"{setting} must list at least one email or *@domain")
        self.emails = frozenset(emails)
        self.domains = frozenset(domains)

    def allows(self, email: str, hosted_domain: str | None) -> bool:
        email = email.lower()
        if email in self.emails:
            return True
        domain = email.rpartition("@")[2]
        if domain not in self.domains:
            return False
        if domain.endswith(SERVICE_ACCOUNT_DOMAIN_SUFFIX):
            return True
        return isinstance(hosted_domain, str) and hosted_domain.lower() == domain


class Authenticator:
    """The one gate: ``Authorization`` header in, ``Caller`` out (or 401 / 403 / 503)."""

    def __init__(
        self,
        verifier: IdTokenVerifier,
        allow_list: AllowList,
        *,
        function: str = "the admin function",
        forbidden_code: str = "not_an_admin",
    ) -> None:
        self.verifier = verifier
        self.allow_list = allow_list
        self.function = function
        self.forbidden_code = forbidden_code

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization or not authorization.strip():
            raise unauthenticated(
                "missing_token", "send Authorization: Bearer <Google-signed ID token>"
            )
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated(
                "not_bearer", "the Authorization header must be: Bearer <ID token>"
            )
        claims = self.verifier.verify(token)
        email = str(claims["email"]).lower()
        hd = claims.get("hd")
        hosted_domain = hd.lower() if isinstance(hd, str) else None
        if not self.allow_list.allows(email, hosted_domain):
            logs.warning(
                "caller not allowed",
                function=self.function,
                email=email,
                hosted_domain=hosted_domain,
            )
            raise forbidden(self.forbidden_code, f"{email} is not allowed to use {self.function}")
        sub = claims.get("sub")
        return Caller(
            email=email, subject=sub if isinstance(sub, str) else None, hosted_domain=hosted_domain
        )


def check_certs_url(url: str, *, setting: str = "ADMIN_CERTS_URL") -> str:
    """HTTPS, or plain HTTP to this machine only (tests): certificates are the root of trust."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return url
    raise ConfigError(f"{setting} must be an https:// URL (http:// only to localhost)")
