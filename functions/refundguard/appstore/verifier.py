"""Verify App Store signed data (JWS with an ``x5c`` chain) and notifications, with PyJWT.

PyJWT decodes and checks every JWS (segments, JSON, headers, ES256 signature, registered claims)
with the leaf key that ``chain`` verified against the pinned roots, through a ``PyJWS`` whose
segment check runs at C speed (same verdicts as PyJWT's own); this module adds Apple's rules:
the chain valid at ``signedDate``, the notification's ``bundleId``, ``environment`` and
``appAppleId``, inner/outer consistency. Any failure is an ``AppleVerificationError``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from jwt import exceptions as jwt_errors

from .chain import Chain, ChainCache, verify_x5c
from .errors import AppleVerificationError, VerificationStatus

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "ENVIRONMENTS",
    "PRODUCTION",
    "SANDBOX",
    "AppleVerificationError",
    "AppleVerifier",
    "VerificationStatus",
    "VerifiedNotification",
]

PRODUCTION = "Production"
SANDBOX = "Sandbox"
ENVIRONMENTS = frozenset({PRODUCTION, SANDBOX})
DEFAULT_CACHE_SIZE = 64
_MAX_TOKEN_CHARS = 256 * 1024
_ALGORITHM = "ES256"

_S = VerificationStatus
#: PyJWT's exceptions -> our status; first match wins (InvalidSignatureError is a DecodeError).
_PYJWT_STATUS: tuple[tuple[type[Exception], VerificationStatus], ...] = (
    (jwt_errors.InvalidSignatureError, _S.INVALID_SIGNATURE),
    (jwt_errors.InvalidAlgorithmError, _S.INVALID_ALGORITHM),
    (jwt_errors.ExpiredSignatureError, _S.INVALID_CLAIMS),
    (jwt_errors.ImmatureSignatureError, _S.INVALID_CLAIMS),
    (jwt_errors.InvalidIssuedAtError, _S.INVALID_CLAIMS),
    (jwt_errors.InvalidAudienceError, _S.INVALID_CLAIMS),
    (jwt_errors.InvalidIssuerError, _S.INVALID_CLAIMS),
    (jwt_errors.InvalidSubjectError, _S.INVALID_CLAIMS),
    (jwt_errors.InvalidJTIError, _S.INVALID_CLAIMS),
    (jwt_errors.MissingRequiredClaimError, _S.INVALID_CLAIMS),
    (jwt_errors.InvalidKeyError, _S.INVALID_CHAIN),
    (jwt_errors.PyJWTError, _S.MALFORMED),  # DecodeError (segments, JSON, exp/nbf type), headers
)
#: What PyJWT lets through on odd input in some versions; never expected from 2.15 on ASCII text.
_DECODE_ERRORS = (jwt_errors.PyJWTError, ValueError, TypeError, RecursionError, OverflowError)


#: Whether a verified notification's (bundleId, environment, appAppleId) is one of ours: None,
#: or why not (the verification status and a message). A tenant directory answers it at run time.
AppCheck = Callable[[str, str, "int | None"], "tuple[VerificationStatus, str] | None"]


def check_app(
    environment: str,
    app_apple_id: int | None,
    *,
    environments: Collection[str],
    expected: int | None,
) -> tuple[VerificationStatus, str] | None:
    """An app's environments and, in Production, its Apple ID (Apple's rules for both)."""
    if environment not in environments:
        return _S.INVALID_ENVIRONMENT, "environment is not configured"
    if environment == PRODUCTION and (app_apple_id is None or app_apple_id != expected):
        return _S.INVALID_APP_IDENTIFIER, "appAppleId is not configured"
    return None


def _fail(status: VerificationStatus, message: str) -> AppleVerificationError:
    return AppleVerificationError(status, message)


def _pyjwt_failure(exc: Exception) -> AppleVerificationError:
    """One fixed message per exception class: PyJWT's own text may echo header values."""
    status = next((s for cls, s in _PYJWT_STATUS if isinstance(exc, cls)), _S.MALFORMED)
    return _fail(status, f"PyJWT refused the JWS ({type(exc).__name__})")


_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")


class _PyJWS(jwt.PyJWS):
    """PyJWT's JWS, its segment check done by a compiled regex instead of a Python loop over every
    character (about 60% of a warm verification). Same rule, same ``DecodeError``: up to two
    ``=`` only on a length that is a multiple of 4, the base64url alphabet, canonical (re-encodes
    to itself). Were a PyJWT release to rename this hook, its own check would run: slower, as
    strict."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if (
            padding > 2
            or (padding and len(segment) % 4)
            or len(stripped) % 4 == 1
            or _BASE64URL.fullmatch(stripped) is None
        ):
            raise jwt_errors.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
        except (TypeError, binascii.Error) as err:
            raise jwt_errors.DecodeError(f"Invalid {name} padding") from err
        if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
            raise jwt_errors.DecodeError(f"Invalid {name} padding")
        return decoded


_JWS = _PyJWS(algorithms=[_ALGORITHM])


class _PyJWT(jwt.PyJWT):
    """PyJWT's JWT (payload JSON, registered claims) over ``_JWS``, ES256 only."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _JWS


_JWT = _PyJWT()


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return _JWS.get_unverified_header(token)
    except _DECODE_ERRORS as exc:
        raise _pyjwt_failure(exc) from None


def _decode(token: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """PyJWT's full check: decoding, headers, ``alg`` ES256, the signature, registered claims."""
    try:
        return _JWT.decode(token, key, algorithms=[_ALGORITHM])
    except _DECODE_ERRORS as exc:
        raise _pyjwt_failure(exc) from None


@dataclass(frozen=True)
class VerifiedNotification:
    """A notification whose JWS, and every JWS inside it, verified."""

    payload: dict[str, Any]  # the decoded notification (``data`` still holds the signed strings)
    bundle_id: str | None
    environment: str
    transaction: dict[str, Any] | None  # decoded ``data.signedTransactionInfo``
    renewal: dict[str, Any] | None  # decoded ``data.signedRenewalInfo``


class AppleVerifier:
    """Verifies App Store signed data against pinned roots, for the configured apps.

    ``clock`` (epoch seconds) is the chain's time for a payload without ``signedDate`` or
    ``receiptCreationDate``; PyJWT checks ``exp``/``nbf``/``iat`` against the system clock.
    """

    def __init__(
        self,
        roots: Iterable[x509.Certificate | bytes],
        *,
        bundle_ids: Collection[str],
        environments: Collection[str] = (PRODUCTION,),
        app_apple_id: int | None = None,
        apps: AppCheck | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._roots = tuple(
            r if isinstance(r, x509.Certificate) else x509.load_der_x509_certificate(r)
            for r in roots
        )
        if not self._roots:
            raise ValueError("at least one root certificate is required")
        self._bundle_ids = frozenset(bundle_ids)
        self._environments = frozenset(environments)
        unknown = self._environments - ENVIRONMENTS
        if unknown or not self._environments:
            raise ValueError(
                f"environments must be among {sorted(ENVIRONMENTS)}, not {sorted(unknown)}"
            )
        if apps is None and PRODUCTION in self._environments and app_apple_id is None:
            raise ValueError("app_apple_id is required when Production is enabled")
        self._app_apple_id = app_apple_id
        self._apps = apps or self._configured_app
        self._clock = clock
        self._cache = ChainCache(cache_size)

    # ------------------------------------------------------------ one JWS

    def verify_jws(self, token: str) -> dict[str, Any]:
        """Verify one App Store JWS (chain, signature, chain valid at its ``signedDate``); return
        its payload."""
        if not isinstance(token, str):
            raise _fail(_S.MALFORMED, "a JWS must be a string")
        if len(token) > _MAX_TOKEN_CHARS:
            raise _fail(_S.MALFORMED, "the JWS is too large")
        if not token.isascii():  # a compact JWS is base64url and dots; also no lone surrogates
            raise _fail(_S.MALFORMED, "a compact JWS is ASCII")
        chain = self._chain(token)
        payload = _decode(token, chain.leaf_key)
        # signedDate is read once the signature verified; Apple's library reads the same value
        # before, so the verdicts are the same, but nothing unsigned is trusted here.
        if not chain.valid_at(self._signing_time(payload)):
            raise _fail(
                _S.CERTIFICATE_EXPIRED,
                "a certificate of the chain is not valid at the payload's signedDate",
            )
        return payload

    def _chain(self, token: str) -> Chain:
        """The verified chain named by the token's ``x5c``, cached by the exact header segment."""
        header_segment = token.partition(".")[0]
        chain = self._cache.get(header_segment)
        if chain is None:
            header = _unverified_header(token)
            if header.get("alg") != _ALGORITHM:
                raise _fail(_S.INVALID_ALGORITHM, "alg must be ES256")
            x5c = header.get("x5c")
            if not isinstance(x5c, list) or len(x5c) != 3:
                raise _fail(_S.INVALID_CHAIN_LENGTH, "x5c must hold exactly 3 certificates")
            chain = verify_x5c(x5c[0], x5c[1], self._roots)
            self._cache.put(header_segment, chain)
        return chain

    def _signing_time(self, payload: Mapping[str, Any]) -> int:
        """Epoch seconds at which the chain must be valid: ``signedDate`` (ms), as Apple's library
        reads it (``receiptCreationDate`` when absent, else now), but only a JSON number."""
        value = payload.get("signedDate")
        if value is None:
            value = payload.get("receiptCreationDate")
        if value is None:
            return int(self._clock())
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(_S.INVALID_CLAIMS, "signedDate must be a number of milliseconds")
        if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity
            raise _fail(_S.INVALID_CLAIMS, "signedDate must be finite")
        return int(value) // 1000  # an int of any size: compared, never converted to a date

    # ------------------------------------------------------------ a notification

    def verify_notification(self, signed_payload: str) -> VerifiedNotification:
        """Verify a ``signedPayload`` and every JWS inside it; check app and environment."""
        payload = self.verify_jws(signed_payload)
        bundle_id, app_apple_id, environment = _app_fields(payload)
        if not isinstance(bundle_id, str):
            raise _fail(_S.INVALID_APP_IDENTIFIER, "bundleId must be text")
        if not isinstance(environment, str):
            raise _fail(_S.INVALID_ENVIRONMENT, "environment must be text")
        if isinstance(app_apple_id, bool) or not isinstance(app_apple_id, int):
            app_apple_id = None
        problem = self._apps(bundle_id, environment, app_apple_id)
        if problem is not None:
            raise _fail(*problem)

        transaction = renewal = None
        data = payload.get("data")
        if isinstance(data, dict):
            signed_transaction = data.get("signedTransactionInfo")
            if signed_transaction is not None:
                transaction = self.verify_jws(signed_transaction)
                if transaction.get("bundleId") != bundle_id:
                    raise _fail(
                        _S.INCONSISTENT_PAYLOAD,
                        "the transaction's bundleId differs from the notification's",
                    )
                if transaction.get("environment") != environment:
                    raise _fail(
                        _S.INCONSISTENT_PAYLOAD,
                        "the transaction's environment differs from the notification's",
                    )
            signed_renewal = data.get("signedRenewalInfo")
            if signed_renewal is not None:
                renewal = self.verify_jws(signed_renewal)
                if renewal.get("environment") != environment:
                    raise _fail(
                        _S.INCONSISTENT_PAYLOAD,
                        "the renewal info's environment differs from the notification's",
                    )
        return VerifiedNotification(payload, bundle_id, environment, transaction, renewal)

    def _configured_app(
        self, bundle_id: str, environment: str, app_apple_id: int | None
    ) -> tuple[VerificationStatus, str] | None:
        """The apps given to the constructor: ``bundle_ids`` in ``environments``, Production
        naming ``app_apple_id``."""
        if bundle_id not in self._bundle_ids:
            return _S.INVALID_APP_IDENTIFIER, "bundleId is not configured"
        return check_app(
            environment, app_apple_id, environments=self._environments, expected=self._app_apple_id
        )

    @property
    def cached_chains(self) -> int:
        return len(self._cache)


def _app_fields(payload: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(bundleId, appAppleId, environment) from the first of ``data``, ``summary``,
    ``externalPurchaseToken`` or ``appData`` that is present (not null), as Apple's library picks
    them; the one picked must be an object."""
    for name in ("data", "summary"):
        section = payload.get(name)
        if section is not None:
            if not isinstance(section, dict):
                raise _fail(_S.MALFORMED, f"{name} must be an object")
            return section.get("bundleId"), section.get("appAppleId"), section.get("environment")
    token = payload.get("externalPurchaseToken")
    if token is not None:
        if not isinstance(token, dict):
            raise _fail(_S.MALFORMED, "externalPurchaseToken must be an object")
        purchase_id = token.get("externalPurchaseId")
        sandbox = isinstance(purchase_id, str) and purchase_id.startswith("SANDBOX")
        return token.get("bundleId"), token.get("appAppleId"), SANDBOX if sandbox else PRODUCTION
    app_data = payload.get("appData")
    if app_data is not None:
        if not isinstance(app_data, dict):
            raise _fail(_S.MALFORMED, "appData must be an object")
        return app_data.get("bundleId"), app_data.get("appAppleId"), app_data.get("environment")
    return None, None, None
