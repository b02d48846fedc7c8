"""``Transport``: one store's HTTP calls for the API clients. Timeouts on every try, bounded
retries on 429, 5xx and network errors honouring ``Retry-After`` within a deadline that bounds the
call as a whole (connect, headers, body, token fetch: ``outbound.deadline``), a bounded answer
size, and errors as ``storeapi.StoreApiError`` whose messages never hold a token or a key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import logs, outbound
from .errors import Kind
from .storeapi import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Answer,
    CallPolicy,
    Refusal,
    StoreApiError,
    StoreAuthError,
    StoreBadAnswerError,
    StoreConflictError,
    StoreNotFoundError,
    StoreQuotaError,
    StoreRequestError,
    StoreUnavailableError,
    parse_retry_after,
    redact,
)

Explain = Callable[[int, Any], Refusal]
HeadersFactory = Callable[[], Mapping[str, str]]


class Transport:
    """One store's HTTP calls: ``call`` sends a request with timeouts, retries what a retry can
    fix within the policy and the deadline, and returns the parsed JSON or raises a
    ``StoreApiError``. ``explain`` reads the store's error bodies; ``auth_hint`` is the message of
    an auth failure (it names the fix)."""

    def __init__(
        self,
        store: str,
        base_url: str,
        session: Any,  # requests.Session or google-auth's AuthorizedSession
        *,
        explain: Explain,
        auth_hint: str,
        policy: CallPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.session = outbound.mount(session)  # its connections obey outbound.deadline
        self.policy = policy or CallPolicy()
        self.max_response_bytes = max_response_bytes
        self._explain = explain
        self._auth_hint = auth_hint
        self._sleep = sleep
        self.calls = 0  # HTTP requests sent, retries included

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        expect: tuple[int, ...] = (200,),
        idempotent: bool = True,
        deadline_s: float | None = None,
        headers: HeadersFactory | None = None,
        secrets: Iterable[str] = (),
    ) -> Answer:
        """``idempotent=False``: retried only when the request cannot have reached the store
        (connection refused) or the store refused it unprocessed (429)."""
        import requests

        policy = self.policy
        secrets = tuple(secrets)
        end = time.monotonic() + (policy.deadline_s if deadline_s is None else deadline_s)
        fail = _Failures(self.store, operation, secrets)
        for attempt in range(policy.attempts):
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            timeout = (
                min(policy.connect_timeout_s, remaining),
                min(policy.read_timeout_s, remaining),
            )
            self.calls += 1
            guard = None
            try:
                with outbound.deadline_at(end) as guard:
                    answer = self._send(
                        method,
                        path,
                        params=params,
                        json_body=json_body,
                        timeout=timeout,
                        headers=headers,
                        remaining=remaining,
                    )
            except requests.ConnectionError as exc:
                timed_out = isinstance(exc, requests.ConnectTimeout) or _read_timeout(exc)
                timed_out = timed_out or bool(guard and guard.expired)
                fail.network("store_timeout" if timed_out else "store_unreachable", exc)
                retry = idempotent or _never_sent(exc)
            except (requests.Timeout, TimeoutError) as exc:
                fail.network("store_timeout", exc)
                retry = idempotent
            except outbound.TooLarge:
                raise fail.bad_answer(
                    f"answered more than {self.max_response_bytes} bytes"
                ) from None
            except requests.RequestException as exc:
                expired = bool(guard and guard.expired)
                fail.network("store_timeout" if expired else "store_unreachable", exc)
                retry = idempotent
            except _AuthRefused as exc:
                raise fail.auth(exc.message, self._auth_hint) from None
            else:
                if answer.status in expect:
                    return self._parsed(answer, fail)
                retry = self._refused(answer, fail, idempotent)
            wait = policy.backoff(attempt) if fail.retry_after is None else fail.retry_after
            last = attempt + 1 >= policy.attempts
            if not retry or last or wait > policy.max_wait_s or time.monotonic() + wait >= end:
                break
            logs.warning(
                "store API call failed; retrying",
                store=self.store,
                operation=operation,
                attempt=attempt + 1,
                upstream_status=fail.status,
                error=fail.code or fail.error_type.code,
                wait_s=round(wait, 3),
            )
            self._sleep(wait)
        raise fail.final()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        timeout: tuple[float, float],
        headers: HeadersFactory | None,
        remaining: float,
    ) -> Answer:
        import requests

        kwargs: dict[str, Any] = {}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body, separators=(",", ":")).encode()
        request_headers = {"Accept": "application/json", **(headers() if headers else {})}
        if json_body is not None:
            request_headers["Content-Type"] = "application/json"
        if hasattr(self.session, "credentials"):  # google-auth: bound the token refresh too
            kwargs["max_allowed_time"] = remaining
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                params=params,
                headers=request_headers,
                timeout=timeout,
                stream=True,
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException:
            raise
        except Exception as exc:  # google.auth.exceptions.RefreshError / TransportError
            raise _auth_failure(exc) from None
        with response:
            body = outbound.read_body(response, self.max_response_bytes)
            return Answer(response.status_code, body, dict(response.headers))

    def _parsed(self, answer: Answer, fail: _Failures) -> Answer:
        raw: bytes = answer.body
        if not raw.strip():
            return Answer(answer.status, None, answer.headers)
        try:
            return Answer(answer.status, json.loads(raw), answer.headers)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise fail.bad_answer("answered something that is not JSON") from None

    def _refused(self, answer: Answer, fail: _Failures, idempotent: bool) -> bool:
        """Record a non-expected status; whether a retry can help."""
        status = answer.status
        try:
            document = json.loads(answer.body) if answer.body.strip() else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            document = None
        refusal = self._explain(status, document)
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if status == 429 or refusal.quota:
            fail.record(StoreQuotaError, status, refusal, retry_after)
            return True
        if status in (401, 403):
            raise fail.auth(refusal.message or f"HTTP {status}", self._auth_hint, status, refusal)
        if status == 404:
            if refusal.retryable:
                fail.record(StoreNotFoundError, status, refusal, retry_after, "store_not_found_yet")
                return idempotent
            raise fail.error(StoreNotFoundError, status, refusal)
        if status == 410:  # Google: "no longer available for query" (e.g. long expired)
            fail.record(StoreNotFoundError, status, refusal, None, "store_gone")
            raise fail.final(kind=StoreNotFoundError.kind)
        if status == 409:
            raise fail.error(StoreConflictError, status, refusal)
        if status == 408 or status >= 500 or refusal.retryable:
            fail.record(StoreUnavailableError, status, refusal, retry_after)
            return idempotent
        if 400 <= status < 500:
            raise fail.error(StoreRequestError, status, refusal)
        raise fail.bad_answer(f"answered HTTP {status}")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its args' exceptions and their ``reason``s (urllib3's MaxRetryError nesting)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(seen) < 8:
        item = todo.pop()
        if isinstance(item, BaseException) and item not in seen:
            seen.append(item)
            todo.extend(item.args)
            todo.append(getattr(item, "reason", None))
    return seen


def _never_sent(exc: BaseException) -> bool:
    """Whether the request cannot have reached the store (no connection was ever made)."""
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"NewConnectionError", "ConnectTimeoutError", "ConnectTimeout"})


def _read_timeout(exc: BaseException) -> bool:
    return any(type(e).__name__ == "ReadTimeoutError" for e in _chain(exc))


class _AuthRefused(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def _auth_failure(exc: Exception) -> Exception:
    """google-auth's refresh errors: retryable ones are network trouble, others a refused key.
    An impersonated token's refusal quotes IAM's answer (``_iam_answer``): 429 and 5xx retry."""
    name = type(exc).__name__
    if name not in ("RefreshError", "TransportError"):
        return exc
    retryable = name == "TransportError" or bool(getattr(exc, "retryable", False))
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else name
    iam = _iam_answer(exc.args[1] if len(exc.args) > 1 else None)
    if iam is not None:
        first = f"{first[:120]}; IAM answered {iam[0]} {iam[1]}"
        retryable = retryable or iam[0] == 429 or iam[0] >= 500
    if retryable:
        import requests

        return requests.ConnectionError(f"token endpoint unavailable ({first[:200]})")
    return _AuthRefused(f"the token endpoint refused the credentials ({first[:200]})", False)


def _iam_answer(body: Any) -> tuple[int, str] | None:
    """The code and status of the Google API error body google-auth's impersonated credentials
    quote (IAM Service Account Credentials' answer), else None (pure)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        return None
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(error, dict) or type(error.get("code")) is not int:
        return None
    status = error.get("status")
    return error["code"], status[:40] if isinstance(status, str) else ""


class _Failures:
    """The last failure of a call, turned into the right ``StoreApiError``."""

    def __init__(self, store: str, operation: str, secrets: tuple[str, ...]) -> None:
        self.store, self.operation, self.secrets = store, operation, secrets
        self.error_type: type[StoreApiError] = StoreUnavailableError
        self.code: str | None = None
        self.status: int | None = None
        self.reason: str | None = None
        self.message = "no attempt was made within the deadline"
        self.retry_after: float | None = None

    def _text(self, text: str) -> str:
        return redact(text, self.secrets)

    def network(self, code: str, exc: Exception) -> None:
        self.error_type, self.code, self.status, self.retry_after = (
            StoreUnavailableError,
            code,
            None,
            None,
        )
        self.reason = type(exc).__name__  # never str(exc): it holds the URL, so the token
        self.message = "timed out" if code == "store_timeout" else "could not be reached"

    def record(
        self,
        error_type: type[StoreApiError],
        status: int,
        refusal: Refusal,
        retry_after: float | None,
        code: str | None = None,
    ) -> None:
        self.error_type, self.code, self.status = error_type, code, status
        self.reason, self.retry_after = refusal.reason, retry_after
        self.message = f"answered HTTP {status}" + (
            f": {self._text(refusal.message)}" if refusal.message else ""
        )

    def error(
        self, error_type: type[StoreApiError], status: int, refusal: Refusal
    ) -> StoreApiError:
        self.record(error_type, status, refusal, None)
        return self.final(kind=error_type.kind)

    def final(self, kind: Kind | None = None) -> StoreApiError:
        kind = kind or (Kind.TRANSIENT if self.code == "store_not_found_yet" else None)
        return self.error_type(
            f"{self.store} API {self.operation} {self.message}",
            store=self.store,
            operation=self.operation,
            status=self.status,
            retry_after_s=self.retry_after,
            code=self.code,
            kind=kind,
            reason=self.reason,
        )

    def auth(
        self,
        message: str,
        hint: str,
        status: int | None = None,
        refusal: Refusal | None = None,
    ) -> StoreAuthError:
        return StoreAuthError(
            f"{self.store} API {self.operation}: {self._text(message)}; {hint}",
            store=self.store,
            operation=self.operation,
            status=status,
            reason=refusal.reason if refusal else None,
        )

    def bad_answer(self, what: str) -> StoreBadAnswerError:
        return StoreBadAnswerError(
            f"{self.store} API {self.operation} {what}", store=self.store, operation=self.operation
        )
