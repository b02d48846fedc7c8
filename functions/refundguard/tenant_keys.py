"""Tenants' App Store Server API keys, sealed with Cloud KMS (``kms``): ``TenantKeys.seal`` checks
a ``.p8`` and encrypts it, bound to the tenant and key id (the additional authenticated data, so
a ciphertext copied to another tenant or key never opens); ``open`` decrypts it in memory (the
``tenant_apis.KeyOpener``). The key itself is never logged, stored in clear or answered.
``read_tenant_keys`` reads the settings (``TENANT_KEYS_KMS_KEY``, ``TENANT_KEYS_KMS_BASE_URL``,
and what every tenant's Apple access shares: base URLs and pinned roots)."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import logs
from .config import Settings, is_local_url
from .errors import Kind, RefundGuardError, rejected, transient
from .storeapi import (
    CallPolicy,
    StoreApiError,
    StoreAuthError,
    StoreNotFoundError,
    StoreRequestError,
    check_base_url,
)
from .tenants import AppleKey

if TYPE_CHECKING:
    from .appstore.credentials import AppleApiAccess
    from .kms import KmsClient, KmsSettings
    from .playstore.credentials import PlayApiSettings
    from .tenant_apis import AppleBase, TenantApis

#: The prefix of a sealed key: KMS ciphertext, AAD ``AAD_PREFIX`` + tenant + key id.
SEALED_PREFIX = "kms1:"
AAD_PREFIX = "refundguard/apple-key/v1"
MAX_PEM_CHARS = 8 * 1024
_KEY_ID = re.compile(r"[A-Za-z0-9]{1,64}")
ROLES = {
    "encrypt": "roles/cloudkms.cryptoKeyEncrypter",
    "decrypt": "roles/cloudkms.cryptoKeyDecrypter",
}
#: Timeouts and retries of one KMS call (an admin request or a worker's page waits for it).
KMS_POLICY = CallPolicy(deadline_s=10.0)


def aad(tenant_id: str, key_id: str) -> bytes:
    """The additional authenticated data a tenant's key is sealed with."""
    return f"{AAD_PREFIX}\n{tenant_id}\n{key_id}".encode()


def check_key_fields(key_id: object, issuer_id: object) -> tuple[str, str]:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise rejected("bad_key_id", "key_id must be the key's id from App Store Connect")
    try:
        issuer = str(uuid.UUID(str(issuer_id))) if isinstance(issuer_id, str) else None
    except ValueError:
        issuer = None
    if issuer is None:
        raise rejected(
            "bad_issuer_id", "issuer_id must be the issuer id (a UUID) from App Store Connect"
        )
    return key_id, issuer


def canonical_pem(pem: object) -> bytes:
    """The ``.p8`` as PKCS#8 PEM, checked (a P-256 private key); REJECTED otherwise, never
    quoting it."""
    from cryptography.hazmat.primitives import serialization

    from .appstore.credentials import load_private_key

    if not isinstance(pem, str) or not pem.strip() or len(pem) > MAX_PEM_CHARS:
        raise rejected("bad_private_key", "private_key must be the .p8 file's text")
    try:
        key = load_private_key(pem)
    except ValueError as err:
        raise rejected("bad_private_key", f"private_key {err}") from None
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TenantKeys:
    """Seal and open tenants' Apple keys with one KMS crypto key (thread-safe)."""

    def __init__(self, kms: KmsClient, *, clock_ms: Callable[[], int] | None = None) -> None:
        from .store import now_ms

        self.kms = kms
        self._clock_ms = clock_ms or now_ms

    def seal(self, tenant_id: str, key_id: str, issuer_id: str, pem: str) -> AppleKey:
        """``pem`` checked and encrypted for ``tenant_id`` / ``key_id``: REJECTED for a key that
        is not a .p8; TRANSIENT when KMS cannot answer (nothing is stored then)."""
        key_id, issuer_id = check_key_fields(key_id, issuer_id)
        plaintext = canonical_pem(pem)
        try:
            ciphertext = self.kms.encrypt(plaintext, aad(tenant_id, key_id))
        except StoreApiError as err:
            raise _kms_failure(err, "encrypt", self.kms.key) from None
        logs.bind(kms_key=self.kms.key, sealed_bytes=len(ciphertext))
        sealed = SEALED_PREFIX + base64.b64encode(ciphertext).decode()
        return AppleKey(key_id, issuer_id, sealed=sealed, added_ms=self._clock_ms())

    def open(self, tenant_id: str, key: AppleKey) -> str:
        """The ``.p8`` text of ``key``, for ``tenant_id`` only (in memory, never kept here)."""
        if not key.sealed.startswith(SEALED_PREFIX):
            raise _unopenable(tenant_id, key, "it is not a sealed key")
        try:
            ciphertext = base64.b64decode(key.sealed[len(SEALED_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise _unopenable(tenant_id, key, "it is not base64") from None
        try:
            plaintext = self.kms.decrypt(ciphertext, aad(tenant_id, key.key_id))
        except StoreRequestError:  # INVALID_ARGUMENT: not this tenant's, key's, or altered
            raise _unopenable(tenant_id, key, "Cloud KMS refused its ciphertext") from None
        except StoreApiError as err:
            raise _kms_failure(err, "decrypt", self.kms.key) from None
        try:
            return plaintext.decode()
        except UnicodeDecodeError:
            raise _unopenable(tenant_id, key, "it does not hold a .p8") from None


def _unopenable(tenant_id: str, key: AppleKey, why: str) -> RefundGuardError:
    return RefundGuardError(
        Kind.UNPROCESSABLE,
        "apple_key_unreadable",
        f"tenant {tenant_id}'s Apple key {key.key_id} cannot be opened ({why}: it was sealed for "
        "another tenant or key, or altered); upload the key again",
        details={"tenant": tenant_id, "key_id": key.key_id},
    )


def _kms_failure(err: StoreApiError, action: str, key: str) -> RefundGuardError:
    """A KMS call's failure as the admin API and the workers answer it; always retryable."""
    details = {"kms_status": err.upstream_status, "operation": action}
    if isinstance(err, StoreAuthError):
        return transient(
            "kms_permission_denied",
            f"Cloud KMS refused to {action} with {key}: grant this function's service account "
            f"{ROLES[action]} on that key (infra/tenant_keys.tf), then retry",
            missing_role=ROLES[action],
            **details,
        )
    if isinstance(err, StoreNotFoundError):
        return transient(
            "kms_key_not_found",
            f"Cloud KMS has no key {key}: check TENANT_KEYS_KMS_KEY and that "
            "infra/tenant_keys.tf was applied",
            **details,
        )
    if isinstance(err, StoreRequestError):  # encrypt: FAILED_PRECONDITION (a disabled version)
        return transient(
            "kms_refused",
            f"Cloud KMS refused to {action} with {key} ({err.message[:200]}); enable the key's "
            "primary version",
            **details,
        )
    return transient(
        "kms_unavailable", f"Cloud KMS could not {action} (unreachable); retry later", **details
    )


# ---------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TenantKeysSettings:
    """What opening and using tenants' Apple keys takes: the KMS key, and what every tenant's
    App Store Server API access shares (``tenant_apis.AppleBase``)."""

    kms: KmsSettings
    apple_base: AppleBase

    def keys(self, *, policy: CallPolicy = KMS_POLICY) -> TenantKeys:
        from .kms import KmsClient

        return TenantKeys(KmsClient(self.kms, policy=policy))

    def tenant_apis(
        self,
        *,
        policy: CallPolicy,
        play: PlayApiSettings | None = None,
        default_apple: AppleApiAccess | None = None,
        keys: TenantKeys | None = None,
    ) -> TenantApis:
        """Store API clients per tenant, their Apple keys opened with this KMS key."""
        from .tenant_apis import TenantApis

        return TenantApis(
            policy=policy,
            play=play,
            default_apple=default_apple,
            apple_base=self.apple_base,
            keys=keys or self.keys(),
        )


def read_tenant_keys(settings: Settings) -> TenantKeysSettings | None:
    """None when ``TENANT_KEYS_KMS_KEY`` is unset (tenants' Apple keys are off here); else the
    KMS key and ``APPLE_API_BASE_URL``, ``APPLE_API_SANDBOX_BASE_URL``, ``APPLE_ROOT_CERTS``
    (Apple Root CA - G3 required unless the API is a local stand-in). Problems recorded."""
    from .kms import read_kms_settings

    kms = read_kms_settings(settings)
    if kms is None:
        return None
    from .appstore.config import read_roots
    from .appstore.credentials import DEFAULT_BASE_URL, DEFAULT_SANDBOX_BASE_URL
    from .tenant_apis import AppleBase

    urls = [
        settings.check(
            lambda n=name, d=default: check_base_url(settings.text(n, default=d), setting=n)
        )
        for name, default in (
            ("APPLE_API_BASE_URL", DEFAULT_BASE_URL),
            ("APPLE_API_SANDBOX_BASE_URL", DEFAULT_SANDBOX_BASE_URL),
        )
    ]
    if urls[0] is None or urls[1] is None:
        return None
    roots, _ = read_roots(settings, production=not is_local_url(urls[0]))
    if not roots:
        return None
    return TenantKeysSettings(kms, AppleBase(urls[0], urls[1], roots))
