"""A throw-away PKI shaped like Apple's, and a signer for App Store signed data (test helper).

Like stripe-python's ``generate_signature_header``: ``sign_notification(...)`` returns a
``signedPayload`` that refundguard's verifier (and Apple's ``SignedDataVerifier``) accept when given
``pki.root_der`` as the trusted root. The certificates carry what strict X.509 checks want: key
identifiers, critical CA basic constraints, key usage, and Apple's OIDs (intermediate
1.2.840.113635.100.6.2.1, leaf 1.2.840.113635.100.6.11.1). Every knob can be turned to build the
hostile cases of the differential tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

LEAF_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
INTERMEDIATE_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")
NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2036, 1, 1, tzinfo=dt.UTC)
#: signedDate of the default test notifications (2026-05-28T20:26:40Z), inside every default window.
SIGNED_DATE_MS = 1_780_000_000_000
BUNDLE_ID = "com.example.refundguard"
APP_APPLE_ID = 1234567890


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "RefundGuard Test PKI"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _ski(key: ec.EllipticCurvePrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def b64(self) -> str:
        return base64.b64encode(self.der).decode()

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def new_key(curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1() if curve == "P-256" else ec.SECP384R1())


def issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: Issued | None = None,
    ca: bool | None = False,
    path_length: int | None = None,
    bc_critical: bool = True,
    key_usage: str | None = "leaf",
    ski: bool = True,
    aki: bool = True,
    apple_oid: x509.ObjectIdentifier | None = None,
    apple_oid_critical: bool = False,
    extra: Iterable[tuple[x509.ExtensionType, bool]] = (),
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
    issuer_name: x509.Name | None = None,
    hash_algorithm: hashes.HashAlgorithm | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
    version1: bool = False,
) -> Issued:
    """Issue a certificate (self-signed when ``issuer`` is None)."""
    name = _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or (issuer.cert.subject if issuer else name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if not version1:
        if ca is not None:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=ca, path_length=path_length), critical=bc_critical
            )
        if key_usage == "ca":
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        elif key_usage == "leaf":
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        if ski:
            builder = builder.add_extension(_ski(key), critical=False)
        signer_key = issuer.key if issuer else key
        if aki and issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        elif aki and issuer is None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
                critical=False,
            )
        if apple_oid is not None:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(apple_oid, b"\x05\x00"), critical=apple_oid_critical
            )
        for extension, critical in extra:
            builder = builder.add_extension(extension, critical=critical)
    signer = signing_key or (issuer.key if issuer else key)
    algorithm = hash_algorithm or (
        hashes.SHA384() if isinstance(signer.curve, ec.SECP384R1) else hashes.SHA256()
    )
    return Issued(builder.sign(signer, algorithm), key)


def make_root(name: str = "RefundGuard Test Root CA - G3", **kw: Any) -> Issued:
    kw.setdefault("key_usage", "ca")
    kw.setdefault("ca", True)
    return issue(name, kw.pop("key", None) or new_key("P-384"), aki=False, **kw)


def make_intermediate(root: Issued, name: str = "RefundGuard Test WWDR CA G6", **kw: Any) -> Issued:
    kw.setdefault("key_usage", "ca")
    kw.setdefault("ca", True)
    kw.setdefault("path_length", 0)
    kw.setdefault("apple_oid", INTERMEDIATE_OID)
    return issue(name, kw.pop("key", None) or new_key("P-384"), issuer=root, **kw)


def make_leaf(
    intermediate: Issued, name: str = "RefundGuard Test Store Signing", **kw: Any
) -> Issued:
    kw.setdefault("apple_oid", LEAF_OID)
    return issue(name, kw.pop("key", None) or new_key("P-256"), issuer=intermediate, **kw)


@dataclass(frozen=True)
class ApplePKI:
    root: Issued
    intermediate: Issued
    leaf: Issued
    extra_header: Mapping[str, Any] = field(default_factory=dict)

    @property
    def root_der(self) -> bytes:
        return self.root.der

    def x5c(self) -> list[str]:
        return [self.leaf.b64, self.intermediate.b64, self.root.b64]

    def sign(self, payload: Mapping[str, Any], **kw: Any) -> str:
        kw.setdefault("x5c", self.x5c())
        return sign_jws(payload, self.leaf.key, **kw)


def generate_pki(name: str = "RefundGuard Test") -> ApplePKI:
    root = make_root(f"{name} Root CA - G3")
    intermediate = make_intermediate(root, f"{name} WWDR CA G6")
    leaf = make_leaf(intermediate, f"{name} Store Signing")
    return ApplePKI(root, intermediate, leaf)


@functools.cache
def default_pki() -> ApplePKI:
    """One PKI per test process (key generation is the slow part)."""
    return generate_pki()


def raw_signature(key: ec.EllipticCurvePrivateKey, signing_input: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign_jws(
    payload: Mapping[str, Any] | bytes,
    key: ec.EllipticCurvePrivateKey,
    *,
    x5c: list[Any] | None = None,
    alg: str = "ES256",
    header: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS: header ``{"alg", "x5c"}`` (+ ``header``), ES256 raw ``r || s`` signature."""
    head: dict[str, Any] = {"alg": alg}
    if x5c is not None:
        head["x5c"] = x5c
    head.update(header or {})
    body = (
        payload
        if isinstance(payload, bytes)
        else json.dumps(payload, separators=(",", ":")).encode()
    )
    signing_input = f"{b64url(json.dumps(head, separators=(',', ':')).encode())}.{b64url(body)}"
    return f"{signing_input}.{b64url(raw_signature(key, signing_input.encode()))}"


# --------------------------------------------------------------------------- payloads


def transaction_payload(
    *,
    original_transaction_id: str = "2000000000000001",
    transaction_id: str | None = None,
    product_id: str = "com.example.refundguard.pro",
    bundle_id: str = BUNDLE_ID,
    environment: str = "Sandbox",
    app_account_token: str | None = "5b1f6a0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
    signed_date: int = SIGNED_DATE_MS,
    product_type: str = "Non-Consumable",
    **extra: Any,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "transactionId": transaction_id or original_transaction_id,
        "originalTransactionId": original_transaction_id,
        "bundleId": bundle_id,
        "productId": product_id,
        "purchaseDate": signed_date - 60_000,
        "originalPurchaseDate": signed_date - 60_000,
        "quantity": 1,
        "type": product_type,
        "inAppOwnershipType": "PURCHASED",
        "signedDate": signed_date,
        "environment": environment,
        "transactionReason": "PURCHASE",
        "storefront": "USA",
        "storefrontId": "143441",
        "price": 4990,
        "currency": "USD",
    }
    if app_account_token:
        payload["appAccountToken"] = app_account_token
    payload.update(extra)
    return payload


def renewal_payload(
    *,
    original_transaction_id: str = "2000000000000001",
    environment: str = "Sandbox",
    signed_date: int = SIGNED_DATE_MS,
    **extra: Any,
) -> dict[str, Any]:
    payload = {
        "originalTransactionId": original_transaction_id,
        "autoRenewProductId": "com.example.refundguard.monthly",
        "productId": "com.example.refundguard.monthly",
        "autoRenewStatus": 1,
        "signedDate": signed_date,
        "environment": environment,
        "recentSubscriptionStartDate": signed_date - 86_400_000,
        "renewalDate": signed_date + 30 * 86_400_000,
    }
    payload.update(extra)
    return payload


def notification_payload(
    notification_type: str,
    subtype: str | None = None,
    *,
    signed_transaction: str | None = None,
    signed_renewal: str | None = None,
    environment: str = "Sandbox",
    bundle_id: str = BUNDLE_ID,
    app_apple_id: int | None = APP_APPLE_ID,
    signed_date: int = SIGNED_DATE_MS,
    notification_uuid: str | None = None,
    status: int | None = None,
    data: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if data is None:
        data = {"bundleId": bundle_id, "bundleVersion": "42", "environment": environment}
        if app_apple_id is not None:
            data["appAppleId"] = app_apple_id
        if signed_transaction is not None:
            data["signedTransactionInfo"] = signed_transaction
        if signed_renewal is not None:
            data["signedRenewalInfo"] = signed_renewal
        if status is not None:
            data["status"] = status
    payload: dict[str, Any] = {
        "notificationType": notification_type,
        "notificationUUID": notification_uuid or str(uuid.uuid4()),
        "version": "2.0",
        "signedDate": signed_date,
        "data": data,
    }
    if subtype:
        payload["subtype"] = subtype
    payload.update(extra)
    return payload


def sign_notification(
    notification_type: str,
    subtype: str | None = None,
    *,
    pki: ApplePKI | None = None,
    transaction: Mapping[str, Any] | None = None,
    renewal: Mapping[str, Any] | None = None,
    environment: str = "Sandbox",
    with_transaction: bool = True,
    **kw: Any,
) -> str:
    """A signed ``signedPayload`` (the test counterpart of what Apple POSTs).

    ``transaction`` overrides fields of the default signed transaction (its environment follows the
    notification's); ``with_transaction=False`` sends none (e.g. TEST).
    """
    pki = pki or default_pki()
    signed_date = kw.get("signed_date", SIGNED_DATE_MS)
    signed_transaction = None
    if with_transaction and notification_type != "TEST":
        fields: dict[str, Any] = {"environment": environment, "signed_date": signed_date}
        fields.update(transaction or {})
        signed_transaction = pki.sign(transaction_payload(**fields))
    signed_renewal = None
    if renewal is not None:
        fields = {"environment": environment, "signed_date": signed_date}
        fields.update(renewal)
        signed_renewal = pki.sign(renewal_payload(**fields))
    payload = notification_payload(
        notification_type,
        subtype,
        signed_transaction=signed_transaction,
        signed_renewal=signed_renewal,
        environment=environment,
        **kw,
    )
    if notification_type == "TEST":
        payload["data"].pop("signedTransactionInfo", None)
    return pki.sign(payload)
