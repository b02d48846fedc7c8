"""The Apple verifier's one exception, ``AppleVerificationError``, and its ``VerificationStatus``.

Shared by ``chain`` (the x5c chain check) and ``verifier`` (JWS and notification checks), which
re-exports both.
"""

from __future__ import annotations

import enum

from ..errors import Kind, RefundGuardError


class VerificationStatus(enum.Enum):
    """What failed. ``retryable``: whether the same input could verify later (none can today:
    every check is offline; a future OCSP check would add a retryable status)."""

    MALFORMED = ("malformed", False)  # not a compact JWS PyJWT decodes; payload field types
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
    """The one exception of the Apple verifier. ``status`` says what failed; a non-retryable status
    is a ``REJECTED`` RefundGuardError (HTTP 400), a retryable one ``TRANSIENT`` (503)."""

    def __init__(self, status: VerificationStatus, message: str) -> None:
        kind = Kind.TRANSIENT if status.retryable else Kind.REJECTED
        super().__init__(kind, f"apple_{status.code}", message)
        self.status = status
