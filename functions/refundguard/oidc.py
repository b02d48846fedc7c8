"""Google-signed OpenID Connect ID tokens: Google's signing keys (a cached JWKS), the token check
(PyJWT), and an allow-list of emails. Used for admins and for the Pub/Sub push identity; every
setting name is passed in by the function that owns it."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from . import logs
from .config import ConfigError, Settings, is_local_url
from .errors import Kind, RefundGuardError, transient

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
SERVICE_ACCOUNT_DOMAIN_SUFFIX = ".gserviceaccount.com"
MAX_TOKEN_CHARS = 8192  # Google ID tokens are ~1 KB; anything huge is not one
CLOCK_SKEW_SECONDS = 30
MAX_KEYS = 32  # Google publishes two or three keys at a time
MAX_JWKS_BYTES = 256 * 1024

_EMAIL = re.compile(r"[^@\s,*]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
# A project's own service accounts: PROJECT.iam.gserviceaccount.com (project ids: 6-30 chars).
_PROJECT_SA_DOMAIN = re.compile(
    r"(?!gcp-sa-)[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
)


def unauthenticated(code: str, message: str, realm: str) -> RefundGuardError:
    return RefundGuardError(
        Kind.UNAUTHENTICATED, code, message, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'}
    )


@dataclass(frozen=True)
class Caller:
    """A caller whose token verified (``Authenticator.authenticate``: on the allow-list too)."""

    email: str  # lower-cased
    subject: str | None  # the token's ``sub``: Google's stable account id
    hosted_domain: str | None  # ``hd``


# ---------------------------------------------------------------------------------------- keys

FetchResult = tuple[bytes, str | None]  # (body, Cache-Control header)
Fetcher = Callable[[str, float], FetchResult]


def http_fetch(url: str, timeout_s: float) -> FetchResult:
    """The key set, within ``timeout_s`` as a whole (``outbound.deadline``)."""
    from . import outbound

    with (
        outbound.deadline(timeout_s),
        outbound.session() as session,
        session.get(url, timeout=timeout_s, stream=True, allow_redirects=False) as response,
    ):
        if response.status_code != 200:
            raise OSError(f"key endpoint answered HTTP {response.status_code}")
        try:
            body = outbound.read_body(response, MAX_JWKS_BYTES)
        except outbound.TooLarge:
            raise OSError("key endpoint answered more than the size limit") from None
        return body, response.headers.get("Cache-Control")


def parse_jwks(body: bytes) -> dict[str, jwt.PyJWK]:
    """Google's JWKS (``{"keys": [{"kid", "kty": "RSA", "n", "e", ...}]}``) -> {kid: key}."""
    try:
        document = json.loads(body)
        keys = document["keys"]
        if not isinstance(keys, list) or not 0 < len(keys) <= MAX_KEYS:
            raise ValueError("unexpected number of keys")
        parsed = {}
        for entry in keys:
            key = jwt.PyJWK.from_dict(entry, algorithm="RS256")
            if not isinstance(key.key_id, str) or not key.key_id:
                raise ValueError("a key without a key id")
            parsed[key.key_id] = key
        return parsed
    except (ValueError, TypeError, KeyError, RecursionError, jwt.PyJWKError) as exc:
        raise OSError(f"key endpoint answered an unexpected document ({exc})") from None


class KeySet:
    """Google's signing keys, fetched once and kept for their ``max-age`` (clamped).

    A key id that is not cached triggers one refetch (key rotation), at most once per
    ``refetch_interval_s``, so made-up key ids cannot make us hammer the endpoint. A failed refresh
    keeps using keys less than ``stale_grace_s`` past expiry; otherwise it is TRANSIENT (503).
    """

    def __init__(
        self,
        url: str,
        *,
        fetch: Fetcher = http_fetch,
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
        self._ttl_bounds = (default_ttl_s, min_ttl_s, max_ttl_s)
        self._refetch_interval_s = refetch_interval_s
        self._stale_grace_s = stale_grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self.expires_at = 0.0
        self._fetched_at: float | None = None
        self.fetches = 0

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``, refreshing the set if it expired or does not hold ``kid``."""
        with self._lock:
            now = self._clock()
            if not self._keys or now >= self.expires_at:
                self._refresh(now, allow_stale=True)
            elif kid not in self._keys and (
                self._fetched_at is None or now - self._fetched_at >= self._refetch_interval_s
            ):
                self._refresh(now, allow_stale=False)
            return self._keys.get(kid)

    def _refresh(self, now: float, *, allow_stale: bool) -> None:
        self.fetches += 1
        try:
            body, cache_control = self._fetch(self.url, self._timeout_s)
            keys = parse_jwks(body)
        except Exception as exc:  # network, HTTP status, bad document: all ours to retry
            self._fetched_at = now  # rate-limit the retries too
            usable = bool(self._keys) and now < self.expires_at + self._stale_grace_s
            logs.error(
                "could not fetch Google's ID-token signing keys",
                url=self.url,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                using_cached=allow_stale and usable,
            )
            if allow_stale and usable:
                return
            raise transient(
                "keys_unavailable", "could not fetch the token signing keys; retry later"
            ) from exc
        default, low, high = self._ttl_bounds
        match = _MAX_AGE.search(cache_control or "")
        self._keys, self._fetched_at = keys, now
        self.expires_at = now + min(max(float(match.group(1)) if match else default, low), high)


# ---------------------------------------------------------------------------------------- tokens

_PYJWT_ERRORS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "the token is not valid yet"),
    (jwt.InvalidSignatureError, "bad_token_signature", "the token's signature does not verify"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token is not meant for this function"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token was not issued by Google accounts"),
    (jwt.InvalidAlgorithmError, "bad_token_algorithm", "the token must be signed with RS256"),
)


_MISSING_CLAIM = {
    "iss": ("wrong_issuer", "the token was not issued by Google accounts"),
    "aud": ("wrong_audience", "the token is not meant for this function"),
    "exp": ("invalid_token", "the token has no expiry"),
    "iat": ("invalid_token", "the token has no issue time"),
}


class IdTokenVerifier:
    """Verifies a Google-signed ID token with PyJWT and returns its claims."""

    def __init__(self, keys: KeySet, *, audiences: Iterable[str], realm: str) -> None:
        self.keys = keys
        self.audiences = tuple(audiences)
        self.realm = realm

    def refuse(self, code: str, message: str) -> RefundGuardError:
        return unauthenticated(code, message, self.realm)

    def verify(self, token: str) -> Mapping[str, Any]:
        key = self.keys.key(self._key_id(token))
        if key is None:
            raise self.refuse("unknown_token_key", "the token's signing key is not Google's")
        claims = self._decode(token, key)
        if not isinstance(claims.get("aud"), str):
            raise self.refuse("wrong_audience", "the token is not meant for this function")
        if claims.get("email_verified") is not True:
            raise self.refuse(
                "email_not_verified",
                "the token carries no verified email (for a service account, "
                "request it with --include-email)",
            )
        email = claims.get("email")
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise self.refuse("no_email", "the token carries no email")
        return claims

    def _key_id(self, token: str) -> str:
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise self.refuse("malformed_token", "the bearer token is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise self.refuse("malformed_token", "the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise self.refuse("bad_token_algorithm", "the token must be signed with RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise self.refuse("bad_token_key", "the token names no signing key")
        return kid

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        """Signature, ``exp``/``iat`` (with leeway), ``iss`` and ``aud``: PyJWT's checks."""
        try:
            return jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audiences,
                issuer=GOOGLE_ISSUERS,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat"]},
            )
        except jwt.MissingRequiredClaimError as exc:
            code, message = _MISSING_CLAIM.get(exc.claim, ("invalid_token", "the token is invalid"))
            raise self.refuse(code, message) from None
        except jwt.PyJWTError as exc:
            for error_type, code, message in _PYJWT_ERRORS:
                if isinstance(exc, error_type):
                    raise self.refuse(code, message) from None
            raise self.refuse("invalid_token", "the token is not valid") from None
        except (ValueError, TypeError, RecursionError):
            raise self.refuse("invalid_token", "the token is not valid") from None


# ---------------------------------------------------------------------------------------- who


class AllowList:
    """Exact emails and ``*@domain`` entries, compared lower-cased.

    A ``*@domain`` entry matches only when the token's ``hd`` (hosted domain) claim equals the
    domain too: the email domain alone does not show that a Workspace organisation manages the
    account. Service accounts carry no ``hd``; ``*@PROJECT.iam.gserviceaccount.com`` is the one
    service-account domain accepted (only that project can create addresses in it); shared domains
    (``developer.gserviceaccount.com``, ``appspot.gserviceaccount.com``...) are refused.
    """

    def __init__(self, entries: Iterable[str], *, setting: str) -> None:
        emails: set[str] = set()
        domains: set[str] = set()
        problems: list[str] = []
        for raw in entries:
            entry = raw.strip().lower()
            if entry.startswith("*@"):
                domain = entry[2:]
                if not _EMAIL.fullmatch(f"x@{domain}"):
                    problems.append(f"{raw!r} is not a valid *@domain entry")
                elif _service_account_domain(domain) and not _PROJECT_SA_DOMAIN.fullmatch(domain):
                    problems.append(
                        f"{raw!r} is a service-account domain shared across projects; list the "
                        "service accounts one by one, or use *@PROJECT.iam.gserviceaccount.com"
                    )
                else:
                    domains.add(domain)
            elif _EMAIL.fullmatch(entry):
                emails.add(entry)
            else:
                problems.append(f"{raw!r} is neither an email nor a *@domain entry")
        if not problems and not emails and not domains:
            problems.append("must list at least one email or *@domain")
        if problems:
            raise ConfigError(*(f"{setting}: {p}" for p in problems))
        self.emails = frozenset(emails)
        self.domains = frozenset(domains)

    def allows(self, email: str, hosted_domain: str | None) -> bool:
        email = email.lower()
        if email in self.emails:
            return True
        domain = email.rpartition("@")[2]
        if domain not in self.domains:
            return False
        if _service_account_domain(domain):
            return True
        return isinstance(hosted_domain, str) and hosted_domain.lower() == domain


def _service_account_domain(domain: str) -> bool:
    return domain == SERVICE_ACCOUNT_DOMAIN_SUFFIX[1:] or domain.endswith(
        SERVICE_ACCOUNT_DOMAIN_SUFFIX
    )


class Authenticator:
    """The one gate: ``Authorization`` header in, ``Caller`` out (or 401 / 403 / 503)."""

    def __init__(
        self, verifier: IdTokenVerifier, allow_list: AllowList, *, who: str, forbidden_code: str
    ) -> None:
        self.verifier = verifier
        self.allow_list = allow_list
        self.who = who  # e.g. "the admin function"
        self.forbidden_code = forbidden_code

    def authenticate(self, authorization: str | None) -> Caller:
        """A verified caller on the allow-list; 403 ``forbidden_code`` for anyone else."""
        caller = self.identify(authorization)
        if not self.listed(caller):
            raise self.not_allowed(caller)
        return caller

    def listed(self, caller: Caller) -> bool:
        return self.allow_list.allows(caller.email, caller.hosted_domain)

    def not_allowed(self, caller: Caller) -> RefundGuardError:
        return RefundGuardError(
            Kind.FORBIDDEN, self.forbidden_code, f"{caller.email} is not allowed to use {self.who}"
        )

    def identify(self, authorization: str | None) -> Caller:
        """Whoever the verified token names (signature, issuer, audience, expiry and a verified
        email checked), allow-listed or not: the caller decides what they may do."""
        fail = self.verifier.refuse
        if not authorization or not authorization.strip():
            raise fail("missing_token", "send Authorization: Bearer <Google-signed ID token>")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise fail("not_bearer", "the Authorization header must be: Bearer <ID token>")
        claims = self.verifier.verify(token)
        email = str(claims["email"]).lower()
        hd = claims.get("hd")
        hosted_domain = hd.lower() if isinstance(hd, str) else None
        sub = claims.get("sub")
        return Caller(email, sub if isinstance(sub, str) else None, hosted_domain)


def check_keys_url(url: str, *, setting: str) -> str:
    """HTTPS, or plain HTTP to this machine only (tests): the keys are the root of trust."""
    parts = urlsplit(url)
    if (parts.scheme == "https" and parts.hostname) or is_local_url(url):
        return url
    raise ConfigError(f"{setting} must be an https:// URL (http:// only to localhost)")


def read_authenticator(
    settings: Settings,
    *,
    emails: str,
    audiences: str,
    keys_url: str,
    who: str,
    forbidden_code: str,
) -> Authenticator | None:
    """An Authenticator from the settings named here; None when ``emails`` is unset (the caller
    decides whether that is allowed). Problems are recorded on ``settings``."""
    entries = settings.csv(emails)
    url = settings.text(keys_url, default=GOOGLE_JWKS_URL)
    settings.check(lambda: check_keys_url(url, setting=keys_url))
    if not entries:
        return None
    audience_list = settings.csv(audiences, required=True)
    allow_list = settings.check(lambda: AllowList(entries, setting=emails))
    if allow_list is None:
        return None
    verifier = IdTokenVerifier(KeySet(url), audiences=audience_list, realm=who)
    return Authenticator(verifier, allow_list, who=who, forbidden_code=forbidden_code)
