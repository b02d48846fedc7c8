"""The Play Developer API's ``voidedpurchases.list`` quota, shared by every run and instance:
the times of the last queries of each package in ``reconcile_quota/{package}``, taken in a
Firestore transaction (``plan.quota_slot`` decides), so that no two runs together go past
Google's limit. TRANSIENT when Firestore fails."""

from __future__ import annotations

import time
from collections.abc import Callable

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ..errors import transient
from ..firestore_calls import CALL_ERRORS
from . import plan

QUOTA = "reconcile_quota"


class PlayQuota:
    """``wait(package)`` before each list query: returns once this query may go (it is then
    counted), sleeping while the package's window is full."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        timeout_s: float,
        clock_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
        limit: int = plan.QUOTA_QUERIES,
        window_ms: int = plan.QUOTA_WINDOW_MS,
    ) -> None:
        self._client, self._timeout_s = client, timeout_s
        self._clock_ms, self._sleep = clock_ms, sleep
        self.limit, self.window_ms = limit, window_ms
        self.waited_s = 0.0

    def wait(self, package: str) -> None:
        ref = self._client.collection(QUOTA).document(package.replace("/", "_"))
        while True:
            try:
                pause_ms = self._take(ref)
            except (gexc.Aborted, gexc.FailedPrecondition):  # another instance took one first
                pause_ms = 0
            except CALL_ERRORS as exc:
                raise transient(
                    "firestore_unavailable", "the Play quota is unavailable; retry later"
                ) from exc
            else:
                if pause_ms == 0:
                    return
            self.waited_s += pause_ms / 1000
            self._sleep(pause_ms / 1000)

    def _take(self, ref: firestore.DocumentReference) -> int:
        """One transaction: the slot taken (0), or how long to wait (nothing written)."""
        transaction = self._client.transaction()

        @firestore.transactional
        def take(transaction: firestore.Transaction) -> int:
            snapshot = ref.get(transaction=transaction, timeout=self._timeout_s)
            sent = (snapshot.to_dict() or {}).get("sent_ms") if snapshot.exists else None
            times = [t for t in sent if isinstance(t, int)] if isinstance(sent, list) else []
            now = self._clock_ms()
            kept, wait_ms = plan.quota_slot(times, now, limit=self.limit, window_ms=self.window_ms)
            if wait_ms == 0:
                transaction.set(ref, {"sent_ms": kept, "updated_ms": now})
            return wait_ms

        return int(take(transaction))
