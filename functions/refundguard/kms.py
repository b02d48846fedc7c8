"""Cloud KMS, the two calls refundguard makes (REST v1, ``cryptoKeys.encrypt`` and ``decrypt``)
through ``storehttp.Transport`` (timeouts, bounded retries, a deadline), with the integrity checks
Google documents: CRC32C of what we send (``plaintextCrc32c``, ``ciphertextCrc32c``,
``additionalAuthenticatedDataCrc32c``), checked by KMS, and of what it answers
(``verifiedPlaintextCrc32c``, ``ciphertextCrc32c``, ``plaintextCrc32c``), checked here; a
mismatch is retried a few times, then a TRANSIENT bad answer. Settings: ``TENANT_KEYS_KMS_KEY``
and ``TENANT_KEYS_KMS_BASE_URL`` (``read_kms_settings``)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import outbound
from .config import Settings, is_local_url
from .storeapi import (
    CallPolicy,
    Refusal,
    StoreApiError,
    StoreBadAnswerError,
    check_base_url,
)
from .storehttp import Transport

KMS = "kms"
SCOPE = "https://www.googleapis.com/auth/cloudkms"
DEFAULT_BASE_URL = "https://cloudkms.googleapis.com"
#: KMS encrypts at most 64 KiB directly (SOFTWARE keys); a .p8 is a few hundred bytes.
MAX_PLAINTEXT_BYTES = 64 * 1024
#: Answers whose checksums do not match are asked again this many times in all.
CHECKSUM_ATTEMPTS = 3
KEY_NAME = re.compile(r"projects/[^/\s]+/locations/[^/\s]+/keyRings/[^/\s]+/cryptoKeys/[^/\s]+")
AUTH_HINT = (
    "grant the function's service account the Cloud KMS role on TENANT_KEYS_KMS_KEY "
    "(infra/tenant_keys.tf)"
)

# ---------------------------------------------------------------------------------- CRC32C

_CASTAGNOLI = 0x82F63B78  # reversed polynomial of CRC-32C (RFC 3720)


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as KMS's ``*Crc32c`` fields carry it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class KmsSettings:
    #: projects/P/locations/L/keyRings/R/cryptoKeys/K
    key: str
    base_url: str = DEFAULT_BASE_URL
    #: None: the runtime's service account; against a local stand-in, its key file's.
    credentials: Any = field(default=None, repr=False, compare=False)


def read_kms_settings(settings: Settings) -> KmsSettings | None:
    """``TENANT_KEYS_KMS_KEY`` (unset: tenants' Apple keys cannot be stored or opened here) and
    ``TENANT_KEYS_KMS_BASE_URL`` (Google's; http://127.0.0.1 only for a local stand-in). Against
    a local stand-in, the credentials are ``GOOGLE_APPLICATION_CREDENTIALS``' key file, whose
    grant goes to the stand-in's own ``/token``: a local run never reaches Google."""
    key = settings.raw("TENANT_KEYS_KMS_KEY")
    url = settings.check(
        lambda: check_base_url(
            settings.text("TENANT_KEYS_KMS_BASE_URL", default=DEFAULT_BASE_URL),
            setting="TENANT_KEYS_KMS_BASE_URL",
        )
    )
    if not key:
        return None
    if not KEY_NAME.fullmatch(key):
        settings.problem(
            "TENANT_KEYS_KMS_KEY must be a crypto key's full name, "
            "projects/P/locations/L/keyRings/R/cryptoKeys/K"
        )
        return None
    if url is None:
        return None
    credentials = _local_credentials(settings, url) if is_local_url(url) else None
    if is_local_url(url) and credentials is None:
        return None
    return KmsSettings(key, url, credentials)


def _local_credentials(settings: Settings, url: str) -> Any:
    path = settings.raw("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        settings.problem(
            "TENANT_KEYS_KMS_BASE_URL is a local stand-in, so GOOGLE_APPLICATION_CREDENTIALS must "
            "name a service-account key file (make run writes one under .run/)"
        )
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        from google.oauth2 import service_account

        document = {**document, "token_uri": f"{url}/token"}
        return service_account.Credentials.from_service_account_info(document, scopes=[SCOPE])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        settings.problem(f"GOOGLE_APPLICATION_CREDENTIALS: {path} is not a key file: {exc}")
        return None


# ---------------------------------------------------------------------------------- client


def explain(status: int, document: Any) -> Refusal:
    """Google's error body: ``{"error": {"code", "message", "status"}}``."""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return Refusal()
    message = error.get("message") if isinstance(error.get("message"), str) else None
    reason = error.get("status") if isinstance(error.get("status"), str) else None
    return Refusal(message=message, reason=reason, quota=reason == "RESOURCE_EXHAUSTED")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _bad(what, f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(what, f"{what} is not base64") from None


def _int64(value: Any) -> int | None:
    """A proto3 JSON int64 (a decimal string, or a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _bad(operation: str, problem: str) -> StoreBadAnswerError:
    return StoreBadAnswerError(
        f"kms API {operation} answered an unusable document: {problem}",
        store=KMS,
        operation=operation,
    )


class _Mismatch(Exception):
    pass


class KmsClient:
    """``encrypt`` and ``decrypt`` with one crypto key; both raise ``storeapi.StoreApiError``
    (``StoreAuthError``: permission denied; ``StoreNotFoundError``: no such key;
    ``StoreRequestError``: refused, e.g. a ciphertext that does not open with this AAD;
    ``StoreUnavailableError``/``StoreBadAnswerError``: retry later)."""

    def __init__(self, settings: KmsSettings, *, policy: CallPolicy | None = None) -> None:
        import google.auth
        from google.auth.credentials import with_scopes_if_required
        from google.auth.transport.requests import AuthorizedSession

        policy = policy or CallPolicy()
        credentials = settings.credentials
        if credentials is None:
            credentials, _ = google.auth.default(scopes=[SCOPE])
        credentials = with_scopes_if_required(credentials, [SCOPE])
        session = AuthorizedSession(
            credentials,
            refresh_timeout=policy.read_timeout_s,
            auth_request=outbound.google_auth_request(),
        )
        self.key = settings.key
        self.transport = Transport(
            KMS,
            settings.base_url,
            session,
            explain=explain,
            auth_hint=AUTH_HINT,
            policy=policy,
            max_response_bytes=4 * MAX_PLAINTEXT_BYTES,
        )

    def encrypt(self, plaintext: bytes, aad: bytes, *, deadline_s: float | None = None) -> bytes:
        """The ciphertext of ``plaintext`` bound to ``aad`` (needed again to decrypt)."""
        if not 0 < len(plaintext) <= MAX_PLAINTEXT_BYTES:
            raise ValueError(f"KMS encrypts 1 to {MAX_PLAINTEXT_BYTES} bytes directly")
        body = {
            "plaintext": _b64(plaintext),
            "plaintextCrc32c": str(crc32c(plaintext)),
            "additionalAuthenticatedData": _b64(aad),
            "additionalAuthenticatedDataCrc32c": str(crc32c(aad)),
        }

        def check(answer: Any) -> bytes:
            if not isinstance(answer, dict):
                raise _bad("encrypt", "not an object")
            if answer.get("verifiedPlaintextCrc32c") is not True or (
                answer.get("verifiedAdditionalAuthenticatedDataCrc32c") is not True
            ):
                raise _Mismatch  # KMS did not confirm it received what we sent
            name = answer.get("name")
            if not isinstance(name, str) or not (
                name == self.key or name.startswith(self.key + "/cryptoKeyVersions/")
            ):
                raise _bad("encrypt", "name is not a version of the key asked for")
            ciphertext = _unb64(answer.get("ciphertext"), "encrypt")
            if _int64(answer.get("ciphertextCrc32c")) != crc32c(ciphertext):
                raise _Mismatch
            return ciphertext

        # An error that quotes the request (as INVALID_ARGUMENT can) never carries the key.
        return self._call("encrypt", body, check, deadline_s, secrets=(body["plaintext"],))

    def decrypt(self, ciphertext: bytes, aad: bytes, *, deadline_s: float | None = None) -> bytes:
        """The plaintext of ``ciphertext``, given the ``aad`` it was encrypted with."""
        body = {
            "ciphertext": _b64(ciphertext),
            "ciphertextCrc32c": str(crc32c(ciphertext)),
            "additionalAuthenticatedData": _b64(aad),
            "additionalAuthenticatedDataCrc32c": str(crc32c(aad)),
        }

        def check(answer: Any) -> bytes:
            if not isinstance(answer, dict):
                raise _bad("decrypt", "not an object")
            plaintext = _unb64(answer.get("plaintext"), "decrypt")
            if _int64(answer.get("plaintextCrc32c")) != crc32c(plaintext):
                raise _Mismatch
            return plaintext

        return self._call("decrypt", body, check, deadline_s)

    def _call(
        self,
        operation: str,
        body: dict[str, str],
        check: Callable[[Any], bytes],
        deadline_s: float | None,
        *,
        secrets: tuple[str, ...] = (),
    ) -> bytes:
        for _ in range(CHECKSUM_ATTEMPTS):
            answer = self.transport.call(
                operation,
                "POST",
                f"/v1/{self.key}:{operation}",
                json_body=body,
                deadline_s=deadline_s,
                secrets=secrets,
            )
            try:
                return check(answer.body)
            except _Mismatch:
                continue
        raise _bad(operation, "its CRC32C checksums do not match what was sent or answered")


__all__ = ["KmsClient", "KmsSettings", "StoreApiError", "crc32c", "read_kms_settings"]
