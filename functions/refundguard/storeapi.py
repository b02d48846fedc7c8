"""The vocabulary the Google Play and App Store API clients share: their errors (``StoreApiError``
and one subclass per way a call fails), ``CallPolicy`` (timeouts, bounded retries, a deadline per
call), ``Retry-After`` parsing, base-URL settings checks, what a store said (``Answer``,
``Refusal``), and the checks of a call's arguments before it is sent (``bad_argument``,
``path_segment``, ``is_milliunits``). ``storehttp.Transport`` makes the calls."""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from . import logs
from .config import ConfigError, is_local_url
from .errors import Kind, RefundGuardError

GOOGLE = "google"
APPLE = "apple"
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # a 1,000-order batchGet is a few MB at most
MAX_MESSAGE_CHARS = 300


# ---------------------------------------------------------------------------------------- errors


class StoreApiError(RefundGuardError):
    """A store API call that failed. ``details`` name the store, the operation and the store's
    HTTP status (``upstream_status``); never a bearer token, a key or a raw purchase token."""

    code = "store_error"
    kind = Kind.TRANSIENT

    def __init__(
        self,
        message: str,
        *,
        store: str,
        operation: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        code: str | None = None,
        kind: Kind | None = None,
        **details: Any,
    ) -> None:
        kind = kind or type(self).kind
        facts = {"store": store, "operation": operation, "upstream_status": status, **details}
        headers = None
        if retry_after_s is not None and kind.retryable:
            headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}
        super().__init__(
            kind,
            code or type(self).code,
            message,
            details={k: v for k, v in facts.items() if v is not None},
            headers=headers,
        )
        self.store = store
        self.operation = operation
        self.upstream_status = status
        self.retry_after_s = retry_after_s


class StoreAuthError(StoreApiError):
    """401/403, or credentials the token endpoint refuses: a configuration to fix, not to retry."""

    code, kind = "store_auth", Kind.FORBIDDEN


class StoreNotFoundError(StoreApiError):
    """404: the store does not know the id (or not yet: then TRANSIENT, ``store_not_found_yet``)."""

    code, kind = "store_not_found", Kind.NOT_FOUND


class StoreRequestError(StoreApiError):
    """400 and other 4xx: the store refuses the request as it is; the same request never works."""

    code, kind = "store_bad_request", Kind.REJECTED


class StoreConflictError(StoreApiError):
    """409: the store already has what this request tries to do (e.g. a second refund review)."""

    code, kind = "store_conflict", Kind.CONFLICT


class StoreQuotaError(StoreApiError):
    """429 after the retries this call could afford: TRANSIENT, with the store's Retry-After."""

    code, kind = "store_quota", Kind.TRANSIENT


class StoreUnavailableError(StoreApiError):
    """5xx, a timeout or a network error after the retries: TRANSIENT."""

    code, kind = "store_unavailable", Kind.TRANSIENT


class StoreBadAnswerError(StoreApiError):
    """A 2xx answer we cannot use: not JSON, missing fields, too large, or signed data that does
    not verify. TRANSIENT: the request was right and nothing was trusted or written, so the event
    that needed the answer must be retried later, not dropped as invalid."""

    code, kind = "store_bad_answer", Kind.TRANSIENT


class MalformedAnswer(ValueError):
    """Raised by the pure parsers; the clients turn it into ``StoreBadAnswerError``."""


# -------------------------------------------------------------------- reading the stores' JSON

_DECIMAL = re.compile(r"-?[0-9]{1,19}")


def answer_object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedAnswer(f"{what} must be an object")
    return value


def answer_text(doc: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string field; absent or empty: None (MalformedAnswer when ``required``)."""
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise MalformedAnswer(f"{name} is missing")
        return None
    if not isinstance(value, str):
        raise MalformedAnswer(f"{name} must be a string")
    return value


def answer_int(
    doc: Mapping[str, Any], name: str, *, required: bool = False, decimal_strings: bool = False
) -> int | None:
    """An int64 field; with ``decimal_strings``, also as proto3 JSON writes it (a string)."""
    value = doc.get(name)
    if value is None:
        if required:
            raise MalformedAnswer(f"{name} is missing")
        return None
    if isinstance(value, bool):
        raise MalformedAnswer(f"{name} must be an integer")
    if isinstance(value, int):
        number = value
    elif decimal_strings and isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise MalformedAnswer(f"{name} must be an integer")
    if not -(2**63) <= number < 2**63:
        raise MalformedAnswer(f"{name} is out of range")
    return number


def answer_flag(doc: Mapping[str, Any], name: str) -> bool:
    """A boolean field; absent: False."""
    value = doc.get(name, False)
    if not isinstance(value, bool):
        raise MalformedAnswer(f"{name} must be a boolean")
    return value


# ---------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class CallPolicy:
    """Timeouts and retries of one call. ``attempts`` counts every try; a wait (backoff or the
    store's ``Retry-After``) longer than ``max_wait_s`` or past the deadline ends the call at once,
    passing the store's ``Retry-After`` on to whoever retries later."""

    connect_timeout_s: float = 3.05
    read_timeout_s: float = 10.0
    attempts: int = 4
    base_backoff_s: float = 0.5
    max_wait_s: float = 8.0
    deadline_s: float = 20.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_wait, base * 2**attempt)]."""
        return random.uniform(0, min(self.max_wait_s, self.base_backoff_s * 2**attempt))  # noqa: S311


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP-date; None when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(min(int(text[:10]), 10**9))
    import email.utils  # lazily: only an HTTP-date needs it

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_base_url(url: str, *, setting: str) -> str:
    """An API base URL: https, or http to this machine only (the local stand-ins); no path
    beyond ``/``, no query. Returned without its trailing slash."""
    parts = urlsplit(url)
    if not (parts.scheme == "https" and parts.hostname) and not is_local_url(url):
        raise ConfigError(f"{setting} must be an https:// URL (http:// only to localhost)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"{setting} must be a scheme and host only, e.g. https://host.example")
    return url.rstrip("/")


def redact(text: str, secrets: Iterable[str]) -> str:
    """A store's text for our messages: ``secrets`` (purchase tokens) replaced by their hash,
    credentials it may quote removed (``logs.scrub``), then cut."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, f"[{logs.token_hash(secret)}]")
    return logs.scrub(text)[:MAX_MESSAGE_CHARS]


# ---------------------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON; None for an empty body
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Refusal:
    """What a store said about a non-2xx answer, as the store-specific ``explain`` reads it."""

    message: str | None = None
    reason: str | None = None  # the store's machine-readable error (Google status, Apple code)
    retryable: bool = False  # a 4xx the store says to retry (Apple's *_RETRYABLE 404s)
    quota: bool = False  # a rate limit sent with another status (Google's 403 rateLimitExceeded)


def bad_answer(store: str, operation: str, problem: str) -> StoreBadAnswerError:
    return StoreBadAnswerError(
        f"{store} API {operation} answered an unusable document: {problem[:MAX_MESSAGE_CHARS]}",
        store=store,
        operation=operation,
    )


def bad_argument(store: str, operation: str, problem: str) -> StoreRequestError:
    """A call refused before it is sent: the caller's argument can never work."""
    return StoreRequestError(
        f"{store} API {operation}: {problem}",
        store=store,
        operation=operation,
        code="store_bad_argument",
    )


def path_segment(value: Any, what: str, *, store: str, operation: str, max_chars: int) -> str:
    """An id for one URL path segment, quoted (``/``, ``%``, ``?``, ``#`` included): a non-empty
    string without controls or spaces, and not made of dots only (``.`` and ``..`` are dot
    segments, which the HTTP stack resolves: ``orders/..`` would climb the API's path)."""
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise bad_argument(
            store, operation, f"{what} must be a non-empty string of <= {max_chars} characters"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise bad_argument(store, operation, f"{what} has spaces or control characters")
    if is_dots(value):
        raise bad_argument(store, operation, f"{what} cannot be made of dots only")
    return quote(value, safe="")


def is_dots(value: str) -> bool:
    """Whether ``value`` is made of dots only (``.``, ``..``: a URL's dot segments)."""
    return bool(value) and not value.strip(".")


def is_milliunits(value: Any) -> bool:
    """A share in thousandths of a percent, as both stores take consumption: an int 0..100,000."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100_000
