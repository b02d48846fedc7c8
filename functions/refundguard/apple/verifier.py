"""Verify App Store signed data (JWS with an ``x5c`` chain) against pinned roots.

Modelled on stripe-python's ``_webhook.py`` (one small verifier, one exception) and on Apple's
``app-store-server-library`` ``SignedDataVerifier`` (whose verdicts this one matches on each case of
``tests/test_apple_differential.py``). For each JWS (the notification, its ``signedTransactionInfo``
and its ``signedRenewalInfo``):

1. compact serialisation, three base64url segments decoded as PyJWT 2.15 does (canonical, optional
   ``=`` padding); header and payload are JSON objects; header ``kid``/``crit``/``b64`` as PyJWT;
2. ``alg`` exactly ``ES256``; ``x5c`` a list of exactly three entries;
3. the chain ``x5c[0]`` (leaf) <- ``x5c[1]`` (intermediate) <- a **pinned root** (``x5c[2]`` is
   never read: trust comes only from configuration), at the payload's ``signedDate``: signatures,
   names, key identifiers, CA basic constraints and key usage, the strict RFC 5280 rules OpenSSL's
   ``X509_V_FLAG_X509_STRICT`` applies, validity ``notBefore <= t <= notAfter`` for all three
   certificates, Apple's OIDs (intermediate ``1.2.840.113635.100.6.2.1``, leaf
   ``1.2.840.113635.100.6.11.1``), and a P-256 leaf key;
4. the ES256 signature over the exact signing input (raw ``r || s``, 64 bytes);
5. the registered JWT claims as PyJWT checks them (``exp``, ``nbf``, ``iat``, ``aud``, ``sub``,
   ``jti``: Apple never sends them, but a token that carries them is judged the same way);
6. for a notification: ``bundleId``, ``environment`` and, in Production, ``appAppleId``; the inner
   transaction's ``bundleId`` and ``environment`` and the renewal info's ``environment`` must equal
   the notification's.

A verified chain is cached (bounded LRU, keyed by the exact ``x5c[0]``/``x5c[1]`` text) with only
time-independent facts: the leaf's public key and the validity windows, which are re-checked against
each payload's ``signedDate``. The payload signature is always checked.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtensionOID

from ..errors import Kind, RefundGuardError

PRODUCTION = "Production"
SANDBOX = "Sandbox"
ENVIRONMENTS = frozenset({PRODUCTION, SANDBOX})

LEAF_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
INTERMEDIATE_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")

#: Critical extensions this verifier understands; any other critical extension fails the chain.
_HANDLED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_MAX_TOKEN_CHARS = 256 * 1024
DEFAULT_CACHE_SIZE = 64


class VerificationStatus(enum.Enum):
    """What failed. ``retryable``: whether the same input could verify later (none can today:
    every check is offline; a future OCSP check would add a retryable status)."""

    MALFORMED = ("malformed", False)  # not a compact JWS: segments, base64url, JSON, header fields
    INVALID_ALGORITHM = ("invalid_algorithm", False)  # alg is not ES256
    INVALID_CHAIN_LENGTH = ("invalid_chain_length", False)  # x5c missing or not 3 entries
    INVALID_CERTIFICATE = ("invalid_certificate", False)  # x5c entry not base64 DER X.509
    INVALID_CHAIN = ("invalid_chain", False)  # does not chain to a pinned root, or breaks a rule
    CERTIFICATE_EXPIRED = ("certificate_not_valid", False)  # outside validity at signedDate
    INVALID_SIGNATURE = ("invalid_signature", False)  # the JWS signature does not verify
    INVALID_CLAIMS = ("invalid_claims", False)  # exp/nbf/iat/aud/sub/jti, signedDate type
    INVALID_APP_IDENTIFIER = ("invalid_app_identifier", False)  # bundleId / appAppleId
    INVALID_ENVIRONMENT = ("invalid_environment", False)  # environment not configured
    INCONSISTENT_PAYLOAD = ("inconsistent_payload", False)  # inner JWS disagrees with the outer

    def __init__(self, code: str, retryable: bool) -> None:
        self.code = code
        self.retryable = retryable


class AppleVerificationError(RefundGuardError):
    """The one exception of this module. ``status`` says what failed; a non-retryable status is a
    ``REJECTED`` RefundGuardError (HTTP 400), a retryable one ``TRANSIENT`` (503)."""

    def __init__(self, status: VerificationStatus, message: str) -> None:
        kind = Kind.TRANSIENT if status.retryable else Kind.REJECTED
        super().__init__(kind, f"apple_{status.code}", message)
        self.status = status


def _fail(status: VerificationStatus, message: str) -> AppleVerificationError:
    return AppleVerificationError(status, message)


# --------------------------------------------------------------------------- decoding


def _b64url_segment(segment: bytes, name: str) -> bytes:
    """PyJWT 2.15's ``_decode_base64url_segment``: up to two ``=``, canonical encoding only."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if padding > 2 or (padding and len(segment) % 4) or len(stripped) % 4 == 1:
        raise _fail(VerificationStatus.MALFORMED, f"invalid {name} padding")
    if stripped.translate(None, _B64URL):  # anything left is outside the alphabet
        raise _fail(VerificationStatus.MALFORMED, f"invalid {name} base64url")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise _fail(VerificationStatus.MALFORMED, f"invalid {name} base64url") from None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise _fail(VerificationStatus.MALFORMED, f"non-canonical {name} base64url")
    return decoded


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise _fail(VerificationStatus.MALFORMED, f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise _fail(VerificationStatus.MALFORMED, f"{name} is not a JSON object")
    return value


def _check_header(header: Mapping[str, Any]) -> None:
    if "kid" in header and not isinstance(header["kid"], str):
        raise _fail(VerificationStatus.MALFORMED, "header kid must be a string")
    if "crit" in header:
        crit = header["crit"]
        if (
            not isinstance(crit, list)
            or not crit
            or not all(isinstance(name, str) and name == "b64" and name in header for name in crit)
        ):
            raise _fail(VerificationStatus.MALFORMED, "unsupported critical header")
    if header.get("b64", True) is False:
        raise _fail(VerificationStatus.MALFORMED, "unencoded (b64=false) payloads are not accepted")


def _int_claim(value: Any) -> int | None:
    """``int(value)`` as PyJWT applies it to registered time claims; None when it fails."""
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        return None


def _check_registered_claims(payload: Mapping[str, Any], now: float) -> None:
    """The registered-claim checks PyJWT's ``jwt.decode`` applies (Apple never sends these)."""
    bad = VerificationStatus.INVALID_CLAIMS
    if "iat" in payload:
        iat = _int_claim(payload["iat"])
        if iat is None or iat > now:
            raise _fail(bad, "iat is not an integer or is in the future")
    if "nbf" in payload:
        nbf = _int_claim(payload["nbf"])
        if nbf is None or nbf > now:
            raise _fail(bad, "nbf is not an integer or is in the future")
    if "exp" in payload:
        exp = _int_claim(payload["exp"])
        if exp is None or exp <= now:
            raise _fail(bad, "exp is not an integer or has passed")
    if payload.get("aud"):
        raise _fail(bad, "an audience claim is not expected")
    for name in ("sub", "jti"):
        if name in payload and not isinstance(payload[name], str):
            raise _fail(bad, f"{name} must be a string")


# --------------------------------------------------------------------------- X.509


@dataclass(frozen=True)
class _Chain:
    """Time-independent facts of a verified leaf <- intermediate <- root chain."""

    leaf_key: ec.EllipticCurvePublicKey
    windows: tuple[tuple[int, int], ...]  # per usable root: [not_before, not_after] in epoch s


def _window(cert: x509.Certificate) -> tuple[int, int]:
    return (
        int(cert.not_valid_before_utc.timestamp()),
        int(cert.not_valid_after_utc.timestamp()),
    )


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[Any] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def _key_cert_sign(cert: x509.Certificate) -> bool | None:
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    return None if ku is None else bool(ku.value.key_cert_sign)


def _check_strict(cert: x509.Certificate, what: str) -> None:
    """RFC 5280 rules OpenSSL enforces under X509_V_FLAG_X509_STRICT, for a non-anchor cert."""
    bad = VerificationStatus.INVALID_CHAIN
    if cert.version is not x509.Version.v3:
        raise _fail(bad, f"{what} is not an X.509 v3 certificate")
    for extension in cert.extensions:  # raises on duplicates / malformed (caught by the caller)
        if extension.critical and extension.oid not in _HANDLED_CRITICAL:
            raise _fail(
                bad, f"{what} has an unhandled critical extension {extension.oid.dotted_string}"
            )
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    is_ca = bool(bc and bc.value.ca)
    key_cert_sign = _key_cert_sign(cert)
    if bc is not None and bc.value.path_length is not None and not (is_ca and key_cert_sign):
        raise _fail(bad, f"{what} has a path length without being a signing CA")
    if is_ca:
        if key_cert_sign is None:
            raise _fail(bad, f"{what}: a CA certificate needs a key usage extension")
        if _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER) is None:
            raise _fail(bad, f"{what}: a CA certificate needs a subject key identifier")
    elif key_cert_sign:
        raise _fail(bad, f"{what}: keyCertSign on a non-CA certificate")
    if len(cert.issuer) == 0 or len(cert.subject) == 0:
        raise _fail(bad, f"{what} has an empty issuer or subject name")
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    if aki is None or aki.critical:
        raise _fail(bad, f"{what} needs a non-critical authority key identifier")
    ski = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if ski is not None and ski.critical:
        raise _fail(bad, f"{what}: subject key identifier must not be critical")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:  # noqa: PLR0911
    """Whether ``issuer`` issued ``cert``: name, key identifiers, CA-ness, then the signature."""
    if cert.issuer != issuer.subject:
        return False
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    if aki is not None:
        value: x509.AuthorityKeyIdentifier = aki.value
        ski = _ext(issuer, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
        if (
            value.key_identifier is not None
            and ski is not None
            and value.key_identifier != ski.value.digest
        ):
            return False
        serial = value.authority_cert_serial_number
        if serial is not None and serial != issuer.serial_number:
            return False
        if value.authority_cert_issuer is not None:
            names = [
                n.value for n in value.authority_cert_issuer if isinstance(n, x509.DirectoryName)
            ]
            if issuer.issuer not in names:
                return False
    bc = _ext(issuer, ExtensionOID.BASIC_CONSTRAINTS)
    if bc is None or not bc.value.ca or _key_cert_sign(issuer) is False:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _verify_chain(
    leaf_der: bytes, intermediate_der: bytes, roots: Iterable[x509.Certificate]
) -> _Chain:
    bad = VerificationStatus.INVALID_CHAIN
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        intermediate = x509.load_der_x509_certificate(intermediate_der)
    except ValueError:
        raise _fail(
            VerificationStatus.INVALID_CERTIFICATE, "x5c holds a certificate that is not DER X.509"
        ) from None
    try:
        _check_strict(leaf, "leaf")
        _check_strict(intermediate, "intermediate")
        if not _issued_by(leaf, intermediate):
            raise _fail(bad, "the leaf is not issued by the intermediate")
        windows = []
        for root in roots:
            if not _issued_by(intermediate, root):
                continue
            root_bc = _ext(root, ExtensionOID.BASIC_CONSTRAINTS)
            if root_bc is not None and root_bc.value.path_length == 0:
                continue  # the intermediate is a CA below a root that allows none
            windows.append(_window(root))
        if not windows:
            raise _fail(bad, "the intermediate does not chain to a pinned root")
        if _ext(leaf, LEAF_OID) is None:
            raise _fail(bad, "the leaf lacks Apple's OID 1.2.840.113635.100.6.11.1")
        if _ext(intermediate, INTERMEDIATE_OID) is None:
            raise _fail(bad, "the intermediate lacks Apple's OID 1.2.840.113635.100.6.2.1")
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise _fail(bad, "the leaf key is not a P-256 key (ES256)")
        # One window per root: all three certificates must be valid at the signing time.
        leaf_w, inter_w = _window(leaf), _window(intermediate)
        combined = tuple(
            (max(leaf_w[0], inter_w[0], nb), min(leaf_w[1], inter_w[1], na)) for nb, na in windows
        )
        return _Chain(key, combined)
    except AppleVerificationError:
        raise
    except Exception as exc:  # malformed extensions, unsupported keys: never a crash
        raise _fail(bad, f"certificate rejected: {type(exc).__name__}") from None


class _ChainCache:
    """A bounded LRU of verified chains, keyed by the exact (x5c[0], x5c[1]) text."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], _Chain] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> _Chain | None:
        with self._lock:
            chain = self._items.get(key)
            if chain is not None:
                self._items.move_to_end(key)
            return chain

    def put(self, key: tuple[str, str], chain: _Chain) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._items[key] = chain
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------- the verifier


@dataclass(frozen=True)
class VerifiedNotification:
    """A notification whose JWS, and every JWS inside it, verified."""

    payload: dict[str, Any]  # the decoded notification (``data`` still holds the signed strings)
    bundle_id: str | None
    environment: str
    transaction: dict[str, Any] | None  # decoded ``data.signedTransactionInfo``
    renewal: dict[str, Any] | None  # decoded ``data.signedRenewalInfo``


class AppleVerifier:
    """Verifies App Store signed data against pinned roots, for the configured apps."""

    def __init__(
        self,
        roots: Iterable[x509.Certificate | bytes],
        *,
        bundle_ids: Collection[str],
        environments: Collection[str] = (PRODUCTION,),
        app_apple_id: int | None = None,
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
        if PRODUCTION in self._environments and app_apple_id is None:
            raise ValueError("app_apple_id is required when Production is enabled")
        self._app_apple_id = app_apple_id
        self._clock = clock
        self._cache = _ChainCache(cache_size)

    # ------------------------------------------------------------ one JWS

    def verify_jws(self, token: str) -> dict[str, Any]:
        """Verify one App Store JWS (chain at its ``signedDate``, signature); return its payload."""
        if not isinstance(token, str):
            raise _fail(VerificationStatus.MALFORMED, "a JWS must be a string")
        if len(token) > _MAX_TOKEN_CHARS:
            raise _fail(VerificationStatus.MALFORMED, "the JWS is too large")
        try:
            raw = token.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(VerificationStatus.MALFORMED, "the JWS is not UTF-8") from None
        signing_input, dot, sig_segment = raw.rpartition(b".")
        header_segment, dot2, payload_segment = signing_input.partition(b".")
        if not dot or not dot2:
            raise _fail(VerificationStatus.MALFORMED, "a JWS has three dot-separated segments")
        header = _json_object(_b64url_segment(header_segment, "header"), "header")
        _check_header(header)
        payload = _json_object(_b64url_segment(payload_segment, "payload"), "payload")
        signature = _b64url_segment(sig_segment, "signature")

        if header.get("alg") != "ES256":
            raise _fail(VerificationStatus.INVALID_ALGORITHM, "alg must be ES256")
        x5c = header.get("x5c")
        if not isinstance(x5c, list) or len(x5c) != 3:
            raise _fail(
                VerificationStatus.INVALID_CHAIN_LENGTH, "x5c must hold exactly 3 certificates"
            )

        signed_at = self._signing_time(payload)
        chain = self._chain(x5c[0], x5c[1])
        if not any(nb <= signed_at <= na for nb, na in chain.windows):
            raise _fail(
                VerificationStatus.CERTIFICATE_EXPIRED,
                "a certificate of the chain is not valid at the payload's signedDate",
            )
        if len(signature) != 64:
            raise _fail(VerificationStatus.INVALID_SIGNATURE, "an ES256 signature is 64 bytes")
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            chain.leaf_key.verify(der, signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            raise _fail(
                VerificationStatus.INVALID_SIGNATURE, "the JWS signature does not verify"
            ) from None
        _check_registered_claims(payload, self._clock())
        return payload

    def _signing_time(self, payload: Mapping[str, Any]) -> int:
        """Epoch seconds at which the chain must be valid: ``signedDate`` (ms), as Apple's library
        reads it (``receiptCreationDate`` when absent, else now)."""
        value = payload.get("signedDate")
        if value is None:
            value = payload.get("receiptCreationDate")
        if value is None:
            return int(self._clock())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise _fail(
                VerificationStatus.INVALID_CLAIMS, "signedDate must be a number of milliseconds"
            )
        try:
            return int(value) // 1000
        except (OverflowError, ValueError):
            raise _fail(VerificationStatus.INVALID_CLAIMS, "signedDate is out of range") from None

    def _chain(self, leaf_b64: Any, intermediate_b64: Any) -> _Chain:
        if not isinstance(leaf_b64, str) or not isinstance(intermediate_b64, str):
            raise _fail(
                VerificationStatus.INVALID_CERTIFICATE, "x5c entries must be base64 strings"
            )
        key = (leaf_b64, intermediate_b64)
        chain = self._cache.get(key)
        if chain is None:
            try:
                leaf_der = base64.b64decode(leaf_b64, validate=True)
                intermediate_der = base64.b64decode(intermediate_b64, validate=True)
            except (binascii.Error, ValueError):
                raise _fail(
                    VerificationStatus.INVALID_CERTIFICATE, "x5c entries must be standard base64"
                ) from None
            chain = _verify_chain(leaf_der, intermediate_der, self._roots)
            self._cache.put(key, chain)
        return chain

    # ------------------------------------------------------------ a notification

    def verify_notification(self, signed_payload: str) -> VerifiedNotification:
        """Verify a ``signedPayload`` and every JWS inside it; check app and environment."""
        payload = self.verify_jws(signed_payload)
        bundle_id, app_apple_id, environment = _app_fields(payload)
        if bundle_id not in self._bundle_ids:
            raise _fail(VerificationStatus.INVALID_APP_IDENTIFIER, "bundleId is not configured")
        if environment not in self._environments:
            raise _fail(VerificationStatus.INVALID_ENVIRONMENT, "environment is not configured")
        if environment == PRODUCTION and (
            isinstance(app_apple_id, bool) or app_apple_id != self._app_apple_id
        ):
            raise _fail(VerificationStatus.INVALID_APP_IDENTIFIER, "appAppleId is not configured")
        assert isinstance(environment, str)

        transaction = renewal = None
        data = payload.get("data")
        if isinstance(data, dict):
            signed_transaction = data.get("signedTransactionInfo")
            if signed_transaction is not None:
                transaction = self.verify_jws(signed_transaction)
                if transaction.get("bundleId") != bundle_id:
                    raise _fail(
                        VerificationStatus.INCONSISTENT_PAYLOAD,
                        "the transaction's bundleId differs from the notification's",
                    )
                if transaction.get("environment") != environment:
                    raise _fail(
                        VerificationStatus.INCONSISTENT_PAYLOAD,
                        "the transaction's environment differs from the notification's",
                    )
            signed_renewal = data.get("signedRenewalInfo")
            if signed_renewal is not None:
                renewal = self.verify_jws(signed_renewal)
                if renewal.get("environment") != environment:
                    raise _fail(
                        VerificationStatus.INCONSISTENT_PAYLOAD,
                        "the renewal info's environment differs from the notification's",
                    )
        return VerifiedNotification(payload, bundle_id, environment, transaction, renewal)

    @property
    def cached_chains(self) -> int:
        return len(self._cache)


def _app_fields(payload: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(bundleId, appAppleId, environment) from ``data``, ``summary``, ``externalPurchaseToken`` or
    ``appData``, in the order Apple's library looks for them."""
    for name in ("data", "summary"):
        section = payload.get(name)
        if section:
            if not isinstance(section, dict):
                raise _fail(VerificationStatus.MALFORMED, f"{name} must be an object")
            return section.get("bundleId"), section.get("appAppleId"), section.get("environment")
    token = payload.get("externalPurchaseToken")
    if token:
        if not isinstance(token, dict):
            raise _fail(VerificationStatus.MALFORMED, "externalPurchaseToken must be an object")
        purchase_id = token.get("externalPurchaseId")
        sandbox = isinstance(purchase_id, str) and purchase_id.startswith("SANDBOX")
        return token.get("bundleId"), token.get("appAppleId"), SANDBOX if sandbox else PRODUCTION
    app_data = payload.get("appData")
    if app_data:
        if not isinstance(app_data, dict):
            raise _fail(VerificationStatus.MALFORMED, "appData must be an object")
        return app_data.get("bundleId"), app_data.get("appAppleId"), app_data.get("environment")
    return None, None, None
