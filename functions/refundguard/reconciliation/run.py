"""One reconciliation run: one at a time (a lease in Firestore; an overlapping one is 409
``reconcile_running``), Google's voided purchases per package, Apple's notifications that never
reached us per bundle id and environment, then the pending refund requests. It writes a run record
and binds the run's summary to the log line; a source that fails leaves its cursor for the next
run. Run ids are made here (``new_run_id``), never taken from a caller."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import logs
from ..errors import Kind, RefundGuardError
from ..refund_answers import Policy
from ..serializer import ms_to_datetime
from . import plan
from .answers import Answerer
from .quota import PlayQuota
from .state import run_json

if TYPE_CHECKING:
    from ..appstore.api import AppStoreApiClient
    from ..appstore.credentials import AppleApiAccess
    from ..playstore.api import PlayApiClient
    from ..wiring import Wiring

#: The lease outlives the run's budget by this much (a stopped function's lease then expires).
LEASE_MARGIN_S = 120.0


def new_run_id(now: int) -> str:
    """Sortable: ``20261126T134500Z-1a2b3c``."""
    return ms_to_datetime(now).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Scope:
    """What a run walks, and how: the packages whose voids to list, the Apple apps and
    environments whose history to ask (with their verifier), the cursor overlap, the time budget
    and the refund-request policy."""

    packages: tuple[str, ...]
    apple: AppleApiAccess | None
    overlap_ms: int
    budget_s: float
    policy: Policy


class Reconciler:
    """One run: the lease, each source, the refund requests, the run record."""

    def __init__(
        self,
        scope: Scope,
        wiring: Wiring,
        play: PlayApiClient | None,
        apple: AppStoreApiClient | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.scope, self.wiring, self.play, self.apple = scope, wiring, play, apple
        self.clock_ms, self.sleep = wiring.clock_ms, sleep
        self.state = wiring.runs

    def run(
        self, *, trigger: str = "schedule", actor: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """Run once; the run as ``GET /reconciliation/runs`` shows it. CONFLICT when another run
        holds the lease; TRANSIENT when Firestore fails (the run record says how far it got)."""
        started = self.clock_ms()
        run_id = new_run_id(started)
        logs.bind(run_id=run_id, trigger=trigger)
        ttl_ms = int((self.scope.budget_s + LEASE_MARGIN_S) * 1000)
        taken, held = self.state.acquire(run_id, now_ms=started, ttl_ms=ttl_ms)
        if not taken:
            raise RefundGuardError(
                Kind.CONFLICT,
                "reconcile_running",
                "another reconciliation run is in progress; this one did nothing",
                details={"running_run_id": held.run_id if held else None},
            )
        record = plan.RunRecord(run_id, trigger, started, actor=actor, request_id=request_id)
        try:  # whatever happens from here, the lease is given back
            if held is not None and held.run_id != run_id:
                self.state.mark_abandoned(held.run_id, now_ms=started)
            self.state.save_run(record)
            record, failure = self._sources(record)
        finally:
            self.state.release(run_id)
        return self._finish(record, failure)

    def _sources(self, record: plan.RunRecord) -> tuple[plan.RunRecord, RefundGuardError | None]:
        scope, ingestion = self.scope, self.wiring.ingestion
        ends_at = time.monotonic() + scope.budget_s
        common: dict[str, Any] = {
            "overlap_ms": scope.overlap_ms,
            "ends_at": ends_at,
            "clock_ms": self.clock_ms,
            "sleep": self.sleep,
        }
        tallies: list[plan.SourceTally] = []
        failure = None
        answered: dict[str, Any] = {}
        try:
            if self.play is not None:
                quota = PlayQuota(
                    self.wiring.client,
                    timeout_s=self.wiring.deadline_s,
                    clock_ms=self.clock_ms,
                    sleep=self.sleep,
                )
                from .google import GoogleVoids  # each source imported when its API is on

                voids = GoogleVoids(self.play, ingestion, self.state, quota=quota, **common)
                tallies += [voids.run(package) for package in scope.packages]
            if self.apple is not None and scope.apple is not None:
                verifier = scope.apple.verifier
                from .apple import AppleHistory

                history = AppleHistory(self.apple, verifier, ingestion, self.state, **common)
                for bundle_id in scope.apple.bundle_ids:
                    for environment in scope.apple.environments:
                        tallies.append(history.run(bundle_id, environment))
            answerer = Answerer(
                self.wiring.refunds,
                self.wiring.entitlements,
                scope.policy,
                play=self.play,
                apple=self.apple,
                clock_ms=self.clock_ms,
                ends_at=ends_at + 10,
            )
            answered = answerer.run()
        except RefundGuardError as err:  # Firestore away: the run stops; cursors say where
            failure = err
        record = dataclasses.replace(record, sources=tuple(tallies), refund_requests=answered)
        return record, failure

    def _finish(self, record: plan.RunRecord, failure: RefundGuardError | None) -> dict[str, Any]:
        tallies = list(record.sources)
        record = dataclasses.replace(
            record,
            state=plan.run_state(tallies, failure=failure.message if failure else None),
            error=failure.message if failure else None,
            finished_ms=self.clock_ms(),
        )
        try:
            self.state.save_run(record)
        except RefundGuardError:
            if failure is None:
                raise
        totals = {
            key: sum(getattr(t, key) for t in tallies)
            for key in ("seen", "applied", "already_known", "rejected")
        }
        logs.bind(
            effect="reconciled",
            run_state=record.state,
            sources=len(tallies),
            errors=sum(len(t.errors or []) for t in tallies),
            refund_requests=dict(record.refund_requests),
            **totals,
        )
        if failure is not None:
            raise failure
        return run_json(record)
