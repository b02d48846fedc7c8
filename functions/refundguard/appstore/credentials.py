"""The App Store Server API's credentials: the settings (``config.APPLE_API_ENV``,
``read_apple_api_settings``: key id, issuer id, the .p8 private key checked at start-up and never
echoed, base URLs) and ``ApiTokens``, the ES256 API tokens signed with that key."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from ..config import Settings, is_local_url
from ..storeapi import check_base_url
from .config import read_app_apple_id, read_roots
from .verifier import PRODUCTION, AppleVerifier

DEFAULT_BASE_URL = "https://api.storekit.apple.com"
DEFAULT_SANDBOX_BASE_URL = "https://api.storekit-sandbox.apple.com"
AUDIENCE = "appstoreconnect-v1"
MAX_TOKEN_LIFETIME_S = 3600  # Apple refuses an exp more than 60 minutes after iat
DEFAULT_TOKEN_LIFETIME_S = 1200
TOKEN_REFRESH_MARGIN_S = 60
_KEY_ID = re.compile(r"[A-Za-z0-9]{1,64}")


@dataclass(frozen=True)
class AppleApiSettings:
    key_id: str
    issuer_id: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    sandbox_base_url: str = DEFAULT_SANDBOX_BASE_URL

    def url_for(self, environment: str) -> str:
        return self.base_url if environment == PRODUCTION else self.sandbox_base_url


def load_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The .p8 text as a P-256 private key; ValueError (never quoting the key) otherwise.
    ``\\n`` escapes stand for newlines (a PEM pasted into one environment variable line)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    text = pem.strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError("is not an unencrypted PEM private key (the .p8 file's text)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("is not a P-256 EC private key (an App Store Connect .p8 key)")
    return key


def read_apple_api_settings(settings: Settings) -> AppleApiSettings | None:
    """The three key settings together, or none (API off: None). Problems are recorded on
    ``settings``; the private key is never echoed."""
    key_id = settings.text("APPLE_API_KEY_ID")
    issuer_id = settings.text("APPLE_API_ISSUER_ID")
    pem = settings.text("APPLE_API_PRIVATE_KEY")
    urls = [
        settings.check(
            lambda n=name, d=default: check_base_url(settings.text(n, default=d), setting=n)
        )
        for name, default in (
            ("APPLE_API_BASE_URL", DEFAULT_BASE_URL),
            ("APPLE_API_SANDBOX_BASE_URL", DEFAULT_SANDBOX_BASE_URL),
        )
    ]
    given = {"APPLE_API_KEY_ID": key_id, "APPLE_API_ISSUER_ID": issuer_id}
    given["APPLE_API_PRIVATE_KEY"] = pem
    if not any(given.values()):
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        settings.problem(
            f"{', '.join(missing)} must be set too: the App Store Server API needs the key id, "
            "the issuer id and the private key together (or none of them: API off)"
        )
        return None
    problems_before = len(settings.problems)
    if not _KEY_ID.fullmatch(key_id):
        settings.problem("APPLE_API_KEY_ID must be the key's id from App Store Connect")
    try:
        uuid.UUID(issuer_id)
    except ValueError:
        settings.problem(
            "APPLE_API_ISSUER_ID must be the issuer id (a UUID) from App Store Connect"
        )
    try:
        key = load_private_key(pem)
    except ValueError as err:
        settings.problem(f"APPLE_API_PRIVATE_KEY {err}")
        return None
    if len(settings.problems) > problems_before or None in urls:
        return None
    return AppleApiSettings(key_id, issuer_id, key, urls[0] or "", urls[1] or "")


# ---------------------------------------------------------------------------------------- tokens


class ApiTokens:
    """ES256 API tokens (header ``kid``, ``typ: JWT``; claims ``iss``, ``iat``, ``exp``,
    ``aud``, ``bid``), one per bundle id, reused until ``refresh_margin_s`` before they expire."""

    def __init__(
        self,
        settings: AppleApiSettings,
        *,
        lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
        refresh_margin_s: float = TOKEN_REFRESH_MARGIN_S,
        reuse: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < lifetime_s <= MAX_TOKEN_LIFETIME_S or refresh_margin_s >= lifetime_s:
            raise ValueError("token lifetime must be 1..3600 s and longer than the refresh margin")
        self._settings = settings
        self._lifetime_s = lifetime_s
        self._margin_s = refresh_margin_s
        self._reuse = reuse
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}
        self.minted = 0

    def token(self, bundle_id: str) -> str:
        import jwt

        with self._lock:
            now = self._clock()
            cached = self._tokens.get(bundle_id)
            if self._reuse and cached and now < cached[1] - self._margin_s:
                return cached[0]
            issued = int(now)
            claims = {
                "iss": self._settings.issuer_id,
                "iat": issued,
                "exp": issued + self._lifetime_s,
                "aud": AUDIENCE,
                "bid": bundle_id,
            }
            token = jwt.encode(
                claims,
                self._settings.private_key,
                algorithm="ES256",
                headers={"kid": self._settings.key_id, "typ": "JWT"},
            )
            self._tokens[bundle_id] = (token, float(claims["exp"]))
            self.minted += 1
            return token


@dataclass(frozen=True)
class AppleApiAccess:
    """The App Store Server API as a function calls it: the key, the apps and environments to ask
    for, and the verifier of its signed answers."""

    api: AppleApiSettings
    bundle_ids: tuple[str, ...]
    environments: tuple[str, ...]
    verifier: AppleVerifier


def read_apple_api_access(
    settings: Settings, environments: tuple[str, ...], *, asked_for: str
) -> AppleApiAccess | None:
    """The App Store Server API when its key is set, else None, with what verifying its signed
    answers needs (``APPLE_BUNDLE_IDS``, ``APPLE_APP_APPLE_ID``, ``APPLE_ROOT_CERTS``; problems
    recorded). Production's answers must chain to Apple Root CA - G3, unless the API is a local
    stand-in (an http:// base URL: ``make run``), whose test root is trusted. ``asked_for``: what
    the apps are asked for, for the problem of an empty ``APPLE_BUNDLE_IDS``."""
    api = read_apple_api_settings(settings)
    if api is None:
        return None
    bundle_ids = settings.csv("APPLE_BUNDLE_IDS")
    if not bundle_ids:
        settings.problem(
            f"APPLE_BUNDLE_IDS must list the apps whose {asked_for} to ask for (the App Store "
            "Server API key is set)"
        )
    production = PRODUCTION in environments
    app_apple_id = read_app_apple_id(settings, required=production)
    roots, _ = read_roots(settings, production=production and not is_local_url(api.base_url))
    if not (bundle_ids and roots) or (production and app_apple_id is None):
        return None
    verifier = AppleVerifier(
        roots, bundle_ids=bundle_ids, environments=environments, app_apple_id=app_apple_id
    )
    return AppleApiAccess(api, bundle_ids, environments, verifier)
