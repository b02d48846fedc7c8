"""One exception for every failure, whose kind says what the caller should do.

Entry points map a kind to a response in one place (``refundguard.http``): a rejected request will
never succeed (4xx, or acknowledge + quarantine for Pub/Sub), a transient failure is ours and may
succeed later (5xx, so the sender retries).
"""

from __future__ import annotations

import enum
from typing import Any


class Kind(enum.Enum):
    """What went wrong, as the caller needs to know it: the HTTP status and whether to retry."""

    REJECTED = (400, False)
    UNAUTHENTICATED = (401, False)
    FORBIDDEN = (403, False)
    NOT_FOUND = (404, False)
    METHOD_NOT_ALLOWED = (405, False)
    UNSUPPORTED_MEDIA_TYPE = (415, False)
    NOT_IMPLEMENTED = (501, False)
    TRANSIENT = (503, True)

    def __init__(self, http_status: int, retryable: bool) -> None:
        self.http_status = http_status
        self.retryable = retryable


class RefundGuardError(Exception):
    """A failure with a machine-readable ``code``, a human ``message`` and a ``kind``."""

    def __init__(
        self, kind: Kind, code: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def http_status(self) -> int:
        return self.kind.http_status

    @property
    def retryable(self) -> bool:
        return self.kind.retryable

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def rejected(code: str, message: str, **details: Any) -> RefundGuardError:
    return RefundGuardError(Kind.REJECTED, code, message, details=details or None)


def transient(code: str, message: str, **details: Any) -> RefundGuardError:
    return RefundGuardError(Kind.TRANSIENT, code, message, details=details or None)
