"""The one exception: ``RefundGuardError``, whose ``Kind`` is the HTTP status and whether a retry
can help. ``refundguard.http.serve`` turns it into the response and the request's one log line."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class Kind(enum.Enum):
    """What went wrong, as the caller needs to know it: the HTTP status and whether to retry."""

    REJECTED = (400, False)
    UNAUTHENTICATED = (401, False)
    FORBIDDEN = (403, False)
    NOT_FOUND = (404, False)
    METHOD_NOT_ALLOWED = (405, False)
    CONFLICT = (409, False)
    UNPROCESSABLE = (422, False)
    TRANSIENT = (503, True)

    def __init__(self, http_status: int, retryable: bool) -> None:
        self.http_status = http_status
        self.retryable = retryable


class RefundGuardError(Exception):
    """A failure with a machine-readable ``code``, a human ``message`` and a ``kind``.

    ``details`` go to the caller and the log line; ``headers`` to the response only.
    """

    def __init__(
        self,
        kind: Kind,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})

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
    return RefundGuardError(Kind.REJECTED, code, message, details=details)


def transient(code: str, message: str, **details: Any) -> RefundGuardError:
    return RefundGuardError(Kind.TRANSIENT, code, message, details=details)


def not_found(code: str, message: str, **details: Any) -> RefundGuardError:
    return RefundGuardError(Kind.NOT_FOUND, code, message, details=details)


def method_not_allowed(allowed: str, method: str) -> RefundGuardError:
    return RefundGuardError(
        Kind.METHOD_NOT_ALLOWED,
        "method_not_allowed",
        f"use {allowed}, not {method[:20]}",
        headers={"Allow": allowed},
    )
