"""A local stand-in for Cloud KMS (REST v1) as refundguard calls it, for tests and ``make run``:
a real HTTP server on 127.0.0.1 with in-memory crypto keys.

- ``POST /token``: the JWT-bearer grant google-auth sends for a service-account key this stand-in
  trusts (``trust_key_file``), scope ``cloudkms`` or ``cloud-platform``; API requests without a
  live token get 401.
- ``POST /v1/{cryptoKey}:encrypt`` and ``:decrypt``: AES-256-GCM under the key's primary version
  (decrypt: the version the ciphertext names), bound to ``additionalAuthenticatedData``; the
  request's ``plaintextCrc32c`` / ``ciphertextCrc32c`` / ``additionalAuthenticatedDataCrc32c``
  checked (400 on a mismatch) and the answer's ``verified*Crc32c``, ``ciphertextCrc32c``,
  ``plaintextCrc32c`` set, as Google documents them.
- Google's errors ``{"error": {code, message, status}}``: INVALID_ARGUMENT (bad base64, too
  large, a checksum mismatch, a ciphertext that does not open: "Decryption failed"),
  PERMISSION_DENIED (``deny(email, "encrypt"|"decrypt")``: the role the account lacks),
  NOT_FOUND (an unknown key), FAILED_PRECONDITION (``disable``), UNAVAILABLE (``fail_next``).
- Switches: ``wrong_checksums`` (the next N answers carry a wrong checksum), ``unverified`` (the
  next N encrypt answers say the request's checksums were not verified).

Faults (``fail_next``) come from ``fake_http``.
Run alone: ``python -m refundguard_dev.fake_kms``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .fake_http import FakeServer, Fault, Reply, Request, bearer
from .google_oauth import ServiceAccounts, oauth_error

SCOPES = (
    "https://www.googleapis.com/auth/cloudkms",
    "https://www.googleapis.com/auth/cloud-platform",
)
DEFAULT_KEY = (
    "projects/demo-refundguard/locations/global/keyRings/refundguard/cryptoKeys/tenant-keys"
)
DEFAULT_ACCOUNT = "refundguard-test@demo-refundguard.iam.gserviceaccount.com"
MAX_BYTES = 64 * 1024
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_PERMISSION = {
    "encrypt": "cloudkms.cryptoKeyVersions.useToEncrypt",
    "decrypt": "cloudkms.cryptoKeyVersions.useToDecrypt",
}

__all__ = ["DEFAULT_KEY", "FakeKms", "Fault", "crc32c"]


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: this stand-in's own, independent of refundguard's."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


class FakeKms(FakeServer):
    def __init__(self, port: int = 0, *, keys: tuple[str, ...] = (DEFAULT_KEY,)) -> None:
        super().__init__(port)
        self.token_uri = f"{self.url}/token"
        self.service_accounts = ServiceAccounts(self.token_uri, client_id="100000000000000000002")
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (email, expiry)
        self.keys: dict[str, list[bytes]] = {}  # key name -> versions' AES keys (1-based ids)
        self.primary: dict[str, int] = {}
        self.disabled: set[str] = set()
        self.denied: set[tuple[str, str]] = set()  # (email, "encrypt"|"decrypt")
        self.wrong_checksums = 0
        self.unverified = 0
        for name in keys:
            self.add_key(name)

    # ------------------------------------------------------------------ controls

    def add_key(self, name: str) -> None:
        with self.lock:
            self.keys[name] = [AESGCM.generate_key(bit_length=256)]
            self.primary[name] = 1

    def rotate(self, name: str = DEFAULT_KEY) -> int:
        """A new primary version; the older ones still decrypt (as KMS's rotation does)."""
        with self.lock:
            self.keys[name].append(AESGCM.generate_key(bit_length=256))
            self.primary[name] = len(self.keys[name])
            return self.primary[name]

    def disable(self, name: str = DEFAULT_KEY) -> None:
        with self.lock:
            self.disabled.add(name)

    def deny(self, email: str, action: str) -> None:
        """``email`` lacks the role to ``action`` (encrypt or decrypt): PERMISSION_DENIED."""
        with self.lock:
            self.denied.add((email, action))

    def write_service_account_key(self, path: Path, email: str = DEFAULT_ACCOUNT) -> Path:
        """A service-account key file this stand-in trusts."""
        return self.service_accounts.write_key(path, email)

    def trust_key_file(self, path: Path) -> str:
        """Trust a service-account key file written for another stand-in (its private key
        signs the grant sent here); returns its email."""
        document = json.loads(Path(path).read_text())
        private = serialization.load_pem_private_key(document["private_key"].encode(), None)
        email = str(document["client_email"])
        with self.service_accounts._lock:
            self.service_accounts.keys[email] = (
                document["private_key_id"],
                private.public_key(),  # type: ignore[arg-type]
            )
        return email

    # ------------------------------------------------------------------ serving

    def target_of(self, request: Request) -> str:
        return "token" if request.path == "/token" else "api"

    def error_reply(self, status: int, message: str, reason: str | None = None) -> Reply:
        error = {"code": status, "message": message, "status": reason or _STATUS.get(status)}
        if error["status"] in (None, "injected"):
            error["status"] = _STATUS.get(status, "UNKNOWN")
        return Reply(status, {"error": error})

    def handle(self, request: Request) -> Reply:
        if request.path == "/token":
            return self._token(request)
        token = bearer(request)
        with self.lock:
            found = self.access_tokens.get(token or "")
        if found is None or found[1] <= time.time():
            return self.error_reply(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )
        email = found[0]
        path = request.path
        if request.method != "POST" or not path.startswith("/v1/") or ":" not in path:
            return self.error_reply(404, "Method not found.")
        name, _, verb = path[len("/v1/") :].rpartition(":")
        if verb not in _PERMISSION:
            return self.error_reply(404, "Method not found.")
        with self.lock:
            if (email, verb) in self.denied:
                return self.error_reply(
                    403,
                    f"Permission '{_PERMISSION[verb]}' denied on resource '{name}' "
                    "(or it may not exist).",
                )
            if name not in self.keys:
                return self.error_reply(404, f"CryptoKey {name} not found.")
            if name in self.disabled:
                return self.error_reply(
                    400,
                    f"{name}/cryptoKeyVersions/{self.primary[name]} is not enabled, current "
                    "state is: DISABLED.",
                    "FAILED_PRECONDITION",
                )
        try:
            body = request.json()
        except ValueError:
            return self.error_reply(400, "Invalid JSON payload received.")
        if not isinstance(body, dict):
            return self.error_reply(400, "Invalid JSON payload received.")
        with self.lock:
            if verb == "encrypt":
                return self._encrypt(name, body)
            return self._decrypt(name, body)

    def _token(self, request: Request) -> Reply:
        claims = self.service_accounts.grant(request)
        if isinstance(claims, Reply):
            return claims
        if not set(str(claims.get("scope", "")).split()) & set(SCOPES):
            return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience.")
        access_token = "ya29.fake-kms-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[access_token] = (str(claims["iss"]), time.time() + 3600)
        body = {"access_token": access_token, "expires_in": 3600, "token_type": "Bearer"}
        return Reply(200, body)

    def _field(self, body: dict[str, Any], name: str, *, required: bool) -> bytes | Reply:
        value = body.get(name)
        if value is None:
            if required:
                return self.error_reply(400, f"{name} is required.")
            return b""
        try:
            data = base64.b64decode(value, validate=True) if isinstance(value, str) else None
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            return self.error_reply(400, f"Invalid value at '{name}' (TYPE_BYTES).")
        if len(data) > MAX_BYTES:
            return self.error_reply(400, f"The {name} is too large.")
        checksum = body.get(name + "Crc32c")
        if checksum is not None and str(checksum) != str(crc32c(data)):
            return self.error_reply(
                400, f"The checksum in field {name}_crc32c did not match the data in field {name}."
            )
        return data

    def _checksum(self, data: bytes) -> str:
        if self.wrong_checksums > 0:
            self.wrong_checksums -= 1
            return str(crc32c(data) ^ 1)
        return str(crc32c(data))

    def _encrypt(self, name: str, body: dict[str, Any]) -> Reply:
        plaintext = self._field(body, "plaintext", required=True)
        aad = self._field(body, "additionalAuthenticatedData", required=False)
        if isinstance(plaintext, Reply):
            return plaintext
        if isinstance(aad, Reply):
            return aad
        version = self.primary[name]
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[name][version - 1]).encrypt(nonce, plaintext, aad)
        ciphertext = version.to_bytes(4, "big") + nonce + sealed
        verified = self.unverified <= 0
        if not verified:
            self.unverified -= 1
        return Reply(
            200,
            {
                "name": f"{name}/cryptoKeyVersions/{version}",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "ciphertextCrc32c": self._checksum(ciphertext),
                "verifiedPlaintextCrc32c": verified and "plaintextCrc32c" in body,
                "verifiedAdditionalAuthenticatedDataCrc32c": verified
                and "additionalAuthenticatedDataCrc32c" in body,
                "protectionLevel": "SOFTWARE",
            },
        )

    def _decrypt(self, name: str, body: dict[str, Any]) -> Reply:
        ciphertext = self._field(body, "ciphertext", required=True)
        aad = self._field(body, "additionalAuthenticatedData", required=False)
        if isinstance(ciphertext, Reply):
            return ciphertext
        if isinstance(aad, Reply):
            return aad
        version = int.from_bytes(ciphertext[:4], "big") if len(ciphertext) > 16 else 0
        try:
            if not 0 < version <= len(self.keys[name]):
                raise InvalidTag
            key = AESGCM(self.keys[name][version - 1])
            plaintext = key.decrypt(ciphertext[4:16], ciphertext[16:], aad)
        except InvalidTag:
            return self.error_reply(400, "Decryption failed: the ciphertext is invalid.")
        return Reply(
            200,
            {
                "plaintext": base64.b64encode(plaintext).decode(),
                "plaintextCrc32c": self._checksum(plaintext),
                "usedPrimary": version == self.primary[name],
                "protectionLevel": "SOFTWARE",
            },
        )


def main() -> None:  # pragma: no cover - a manual tool
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8086)
    parser.add_argument("--trust", type=Path, help="a service-account key file to trust")
    args = parser.parse_args()
    kms = FakeKms(args.port)
    if args.trust:
        kms.trust_key_file(args.trust)
    kms.start()
    print(f"fake Cloud KMS on {kms.url} (TENANT_KEYS_KMS_BASE_URL); key {DEFAULT_KEY}")
    kms.serve_until_interrupted()


if __name__ == "__main__":  # pragma: no cover
    main()
