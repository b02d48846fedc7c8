"""How refundguard makes a single Firestore call (a get, a set, a query, a batch of deletes):
which errors mean Firestore could not be reached in time (``CALL_ERRORS``), which are worth
another try (``RETRYABLE``), and the bounded ``Retry`` of one call. The ledger's own
read-decide-commit loop (``store.EntitlementStore.apply``) never lets the client retry."""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry

#: What a single (retried) call raises when Firestore cannot be reached in time.
CALL_ERRORS = (gexc.GoogleAPICallError, gexc.RetryError)

#: Firestore unreachable, overloaded or too slow, or contention: worth another attempt.
RETRYABLE = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.Unknown,
    gexc.Aborted,
)


def retry(timeout_s: float) -> gretry.Retry:
    """Retries of ``RETRYABLE`` with backoff (0.1 s doubling to 2 s), for ``timeout_s`` at most."""
    return gretry.Retry(
        predicate=gretry.if_exception_type(*RETRYABLE),
        initial=0.1,
        maximum=2.0,
        multiplier=2.0,
        timeout=timeout_s,
    )
