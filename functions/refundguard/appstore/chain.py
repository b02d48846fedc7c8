"""The x5c chain check: leaf ``x5c[0]`` <- intermediate ``x5c[1]`` <- a pinned root, Apple's rules.

``verify_x5c`` returns a ``Chain`` (the leaf's P-256 key and the validity windows, to be checked at
the payload's ``signedDate``); ``ChainCache`` is the bounded LRU of verified chains. ``x5c[2]`` is
never read: trust comes only from the configured roots.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from .errors import AppleVerificationError, VerificationStatus

LEAF_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
INTERMEDIATE_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")

#: Critical extensions this check understands; any other critical extension fails the chain.
_HANDLED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)


@dataclass(frozen=True)
class Chain:
    """Time-independent facts of a verified leaf <- intermediate <- root chain."""

    leaf_key: ec.EllipticCurvePublicKey
    windows: tuple[tuple[int, int], ...]  # per usable root: [not_before, not_after] in epoch s

    def valid_at(self, epoch_seconds: int) -> bool:
        """Whether all three certificates are valid at that second (bounds included)."""
        return any(nb <= epoch_seconds <= na for nb, na in self.windows)


def _fail(message: str) -> AppleVerificationError:
    return AppleVerificationError(VerificationStatus.INVALID_CHAIN, message)


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
    if cert.version is not x509.Version.v3:
        raise _fail(f"{what} is not an X.509 v3 certificate")
    for extension in cert.extensions:  # raises on duplicates / malformed (caught by the caller)
        if extension.critical and extension.oid not in _HANDLED_CRITICAL:
            raise _fail(f"{what} has an unhandled critical extension {extension.oid.dotted_string}")
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    is_ca = bool(bc and bc.value.ca)
    key_cert_sign = _key_cert_sign(cert)
    if bc is not None and bc.value.path_length is not None and not (is_ca and key_cert_sign):
        raise _fail(f"{what} has a path length without being a signing CA")
    if is_ca:
        if key_cert_sign is None:
            raise _fail(f"{what}: a CA certificate needs a key usage extension")
        if _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER) is None:
            raise _fail(f"{what}: a CA certificate needs a subject key identifier")
    elif key_cert_sign:
        raise _fail(f"{what}: keyCertSign on a non-CA certificate")
    if len(cert.issuer) == 0 or len(cert.subject) == 0:
        raise _fail(f"{what} has an empty issuer or subject name")
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    if aki is None or aki.critical:
        raise _fail(f"{what} needs a non-critical authority key identifier")
    ski = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if ski is not None and ski.critical:
        raise _fail(f"{what}: subject key identifier must not be critical")


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


def verify_chain(
    leaf_der: bytes, intermediate_der: bytes, roots: Iterable[x509.Certificate]
) -> Chain:
    """Check leaf <- intermediate <- one of ``roots``; raise ``AppleVerificationError`` if not."""
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        intermediate = x509.load_der_x509_certificate(intermediate_der)
    except Exception:  # ValueError, or x509.InvalidVersion (not a ValueError) on a bad version
        raise AppleVerificationError(
            VerificationStatus.INVALID_CERTIFICATE, "x5c holds a certificate that is not DER X.509"
        ) from None
    try:
        _check_strict(leaf, "leaf")
        _check_strict(intermediate, "intermediate")
        if not _issued_by(leaf, intermediate):
            raise _fail("the leaf is not issued by the intermediate")
        windows = []
        for root in roots:
            if not _issued_by(intermediate, root):
                continue
            root_bc = _ext(root, ExtensionOID.BASIC_CONSTRAINTS)
            if root_bc is not None and root_bc.value.path_length == 0:
                continue  # the intermediate is a CA below a root that allows none
            windows.append(_window(root))
        if not windows:
            raise _fail("the intermediate does not chain to a pinned root")
        if _ext(leaf, LEAF_OID) is None:
            raise _fail("the leaf lacks Apple's OID 1.2.840.113635.100.6.11.1")
        if _ext(intermediate, INTERMEDIATE_OID) is None:
            raise _fail("the intermediate lacks Apple's OID 1.2.840.113635.100.6.2.1")
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise _fail("the leaf key is not a P-256 key (ES256)")
        # One window per root: all three certificates must be valid at the signing time.
        leaf_w, inter_w = _window(leaf), _window(intermediate)
        combined = tuple(
            (max(leaf_w[0], inter_w[0], nb), min(leaf_w[1], inter_w[1], na)) for nb, na in windows
        )
        return Chain(key, combined)
    except AppleVerificationError:
        raise
    except Exception as exc:  # malformed extensions, unsupported keys: never a crash
        raise _fail(f"certificate rejected: {type(exc).__name__}") from None


def verify_x5c(leaf_b64: Any, intermediate_b64: Any, roots: Iterable[x509.Certificate]) -> Chain:
    """``verify_chain`` on the first two ``x5c`` entries (standard base64 DER, RFC 7515 4.1.6)."""
    if not isinstance(leaf_b64, str) or not isinstance(intermediate_b64, str):
        raise AppleVerificationError(
            VerificationStatus.INVALID_CERTIFICATE, "x5c entries must be base64 strings"
        )
    try:
        leaf_der = base64.b64decode(leaf_b64, validate=True)
        intermediate_der = base64.b64decode(intermediate_b64, validate=True)
    except (binascii.Error, ValueError):
        raise AppleVerificationError(
            VerificationStatus.INVALID_CERTIFICATE, "x5c entries must be standard base64"
        ) from None
    return verify_chain(leaf_der, intermediate_der, roots)


class ChainCache:
    """A bounded LRU of verified chains (thread-safe); ``size <= 0`` caches nothing."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Chain] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Chain | None:
        with self._lock:
            chain = self._items.get(key)
            if chain is not None:
                self._items.move_to_end(key)
            return chain

    def put(self, key: str, chain: Chain) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._items[key] = chain
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
