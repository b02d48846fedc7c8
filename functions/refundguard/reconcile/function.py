"""``reconcile``: called by Cloud Scheduler (every 30 minutes by default) or by the admin function
(``POST /reconciliation:run``). One run at a time (a lease in Firestore; an overlapping call
answers 409 ``reconcile_running``): Google's voided purchases per package, Apple's notifications
that never reached us per bundle id and environment, then the pending refund requests. It writes
a run record and one summary log line; a source that fails leaves its cursor for the next run."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import flask

from .. import logs
from ..apple.api import AppStoreApiClient
from ..errors import Kind, RefundGuardError, method_not_allowed, rejected
from ..http import App, Reply, parse_json_object, read_body, serve
from ..play.api import PlayApiClient
from ..refund_store import RefundStore
from ..serializer import ms_to_datetime
from ..store import EntitlementStore, now_ms
from ..storeapi import CallPolicy
from . import plan
from .answers import Answerer
from .apple import AppleHistory
from .google import GoogleVoids
from .settings import ReconcileSettings
from .state import ReconcileState, run_json, tally_record

FUNCTION = "reconcile"
API_POLICY = CallPolicy(deadline_s=20.0)
#: The lease outlives the run's budget by this much (a stopped function's lease then expires).
LEASE_MARGIN_S = 120.0
_RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def new_run_id(now: int) -> str:
    """Sortable: ``20261126T134500Z-1a2b3c``."""
    return ms_to_datetime(now).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def create_handler(
    env: Mapping[str, str],
    *,
    store: EntitlementStore | None = None,
    play_api: PlayApiClient | None = None,
    apple_api: AppStoreApiClient | None = None,
    clock_ms: Callable[[], int] = now_ms,
    sleep: Callable[[float], None] = time.sleep,
) -> App:
    settings = ReconcileSettings.from_env(env)  # refuse to start if wrong
    entitlements = store or EntitlementStore.connect(
        settings.firestore, settings.events, function=FUNCTION
    )
    play = play_api
    if play is None and settings.play_api is not None:
        play = PlayApiClient(settings.play_api, policy=API_POLICY)
    apple = apple_api
    if apple is None and settings.apple is not None:
        apple = AppStoreApiClient(settings.apple.api, settings.apple.verifier, policy=API_POLICY)
    if play is None and apple is None:
        logs.warning(
            "neither the Play Developer API nor the App Store Server API is configured: the "
            "reconciler catches nothing and answers no refund request",
            function=FUNCTION,
        )
    reconciler = Reconciler(settings, entitlements, play, apple, clock_ms=clock_ms, sleep=sleep)

    def handle(request: flask.Request) -> Reply:
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        return reconciler.run(_asked(request))

    return serve(FUNCTION, handle)


class Reconciler:
    """One run: the lease, each source, the refund requests, the run record."""

    def __init__(
        self,
        settings: ReconcileSettings,
        store: EntitlementStore,
        play: PlayApiClient | None,
        apple: AppStoreApiClient | None,
        *,
        clock_ms: Callable[[], int],
        sleep: Callable[[float], None],
    ) -> None:
        self.settings, self.store, self.play, self.apple = settings, store, play, apple
        self.clock_ms, self.sleep = clock_ms, sleep
        self.state = ReconcileState(store.client)
        self.refunds = RefundStore(store.client)

    def run(self, asked: Mapping[str, str]) -> Reply:
        started = self.clock_ms()
        run_id = asked.get("run_id") or new_run_id(started)
        trigger = asked.get("trigger", "schedule")
        logs.bind(run_id=run_id, trigger=trigger)
        ttl_ms = int((self.settings.budget_s + LEASE_MARGIN_S) * 1000)
        taken, held = self.state.acquire(run_id, now_ms=started, ttl_ms=ttl_ms)
        if not taken:
            raise RefundGuardError(
                Kind.CONFLICT,
                "reconcile_running",
                "another reconciliation run is in progress; this one did nothing",
                details={"running_run_id": held.run_id if held else None},
            )
        if held is not None and held.run_id != run_id:
            self.state.mark_abandoned(held.run_id, now_ms=started)
        record: dict[str, Any] = {
            "run_id": run_id,
            "trigger": trigger,
            "actor": asked.get("actor"),
            "started_ms": started,
            "started_at": ms_to_datetime(started),
            "finished_ms": None,
            "state": "running",
            "sources": [],
            "refund_requests": {},
            "error": None,
        }
        self.state.save_run(record)
        try:
            failure = self._sources(record)
        finally:
            self.state.release(run_id)
        return self._finish(record, failure)

    def _sources(self, record: dict[str, Any]) -> RefundGuardError | None:
        settings = self.settings
        ends_at = time.monotonic() + settings.budget_s
        common: dict[str, Any] = {
            "overlap_ms": settings.overlap_ms,
            "ends_at": ends_at,
            "clock_ms": self.clock_ms,
            "sleep": self.sleep,
        }
        tallies: list[plan.SourceTally] = []
        try:
            if self.play is not None:
                voids = GoogleVoids(self.play, self.store, self.state, **common)
                tallies += [voids.run(package) for package in settings.packages]
            if self.apple is not None and settings.apple is not None:
                verifier = settings.apple.verifier
                history = AppleHistory(self.apple, verifier, self.store, self.state, **common)
                for bundle_id in settings.apple.bundle_ids:
                    for environment in settings.apple.environments:
                        tallies.append(history.run(bundle_id, environment))
            answerer = Answerer(
                self.refunds,
                self.store,
                settings.policy,
                play=self.play,
                apple=self.apple,
                clock_ms=self.clock_ms,
                ends_at=ends_at + 10,
            )
            record["refund_requests"] = answerer.run()
        except RefundGuardError as err:  # Firestore away: the run stops; cursors say where
            return err
        finally:
            record["sources"] = [tally_record(t) for t in tallies]
        return None

    def _finish(self, record: dict[str, Any], failure: RefundGuardError | None) -> Reply:
        tallies = [plan.SourceTally(**t) for t in record["sources"]]
        record["state"] = plan.run_state(tallies, failure=failure.message if failure else None)
        record["error"] = failure.message if failure else None
        finished = self.clock_ms()
        record["finished_ms"], record["finished_at"] = finished, ms_to_datetime(finished)
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
            run_state=record["state"],
            sources=len(tallies),
            errors=sum(len(t.errors or []) for t in tallies),
            refund_requests=record["refund_requests"],
            **totals,
        )
        if failure is not None:
            raise failure
        severity = "ERROR" if any(t.errors for t in tallies) else "INFO"
        return Reply(run_json(record), "reconciliation run", severity=severity)


def _asked(request: flask.Request) -> dict[str, str]:
    """The optional body the admin function sends: ``run_id``, ``trigger``, ``actor``."""
    body = read_body(request, max_bytes=4096)
    if not body.strip():
        return {}
    fields = parse_json_object(body)
    asked: dict[str, str] = {}
    for name in ("run_id", "trigger", "actor"):
        value = fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not _RUN_ID.fullmatch(value.replace("@", ".")):
            raise rejected("bad_field", f"{name} must be 1-100 letters, digits and . _ : - @")
        asked[name] = value
    return asked
