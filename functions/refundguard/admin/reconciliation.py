"""The admin routes of the reconciler and the refund requests: ``GET /reconciliation/runs``,
``POST /reconciliation:run`` (the admin function calls the reconciler's URL, with an ID token for
it when deployed; none to a local ``http://`` reconciler), ``GET /refund-requests`` and
``POST /entitlements:consumption`` (what the platform reports for the refund-request policy).
Shapes: docs/admin.md."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import flask

from .. import logs
from ..config import is_local_url
from ..errors import Kind, RefundGuardError, not_found, rejected, transient
from ..http import Reply, parse_json_object, read_body
from ..reconcile.function import new_run_id
from ..reconcile.state import ReconcileState, run_json
from ..refund_store import RefundStore
from ..refunds import FINAL, PENDING, parse_consumption_report
from ..store import EntitlementStore
from .actions import parse_limit

DEFAULT_RUNS, MAX_RUNS = 20, 100
DEFAULT_REQUESTS, MAX_REQUESTS = 100, 500
#: How long ``POST /reconciliation:run`` waits for the run to finish before answering 202 with
#: the run still running (it goes on: the reconciler answers Cloud Run, not us).
TRIGGER_WAIT_S = 10.0


ROUTES = frozenset({"runs", "run", "refund_requests", "consumption"})
MAX_BODY_BYTES = 16 * 1024


def dispatch(
    name: str,
    request: flask.Request,
    store: EntitlementStore,
    *,
    url: str | None,
    actor: str,
    now_ms: int,
) -> Reply:
    """One of ``ROUTES``, for an authenticated admin."""
    if name == "runs":
        return runs(store, request.args)
    if name == "refund_requests":
        return refund_requests(store, request.args)
    if name == "run":
        return trigger(store, url, actor=actor, now_ms=now_ms)
    body = parse_json_object(read_body(request, max_bytes=MAX_BODY_BYTES))
    return report_consumption(store, body, actor=actor, now_ms=now_ms)


def runs(store: EntitlementStore, args: Mapping[str, str]) -> Reply:
    limit = parse_limit(args.get("limit"), default=DEFAULT_RUNS, high=MAX_RUNS)
    records = ReconcileState(store.client).recent_runs(limit)
    logs.bind(runs=len(records))
    return Reply({"runs": [run_json(r) for r in records]}, "admin action")


def refund_requests(store: EntitlementStore, args: Mapping[str, str]) -> Reply:
    limit = parse_limit(args.get("limit"), default=DEFAULT_REQUESTS, high=MAX_REQUESTS)
    state = args.get("state")
    if state is not None and state not in FINAL | {PENDING}:
        raise rejected("bad_state", "state must be pending, answered, unanswerable or expired")
    found = RefundStore(store.client).recent(limit=limit)
    if state is not None:
        found = [r for r in found if r.state == state]
    logs.bind(refund_requests=len(found))
    return Reply({"requests": [r.public() for r in found]}, "admin action")


def report_consumption(
    store: EntitlementStore, body: Mapping[str, Any], *, actor: str, now_ms: int
) -> Reply:
    """What the platform knows about a purchase's use, for the refund-request policy."""
    report = parse_consumption_report(body)  # every field checked before anything is read
    logs.bind(
        store=str(body["store"])[:40], purchase_token_hash=logs.token_hash(report.purchase_id)
    )
    if store.get(report.store, report.purchase_id, report.environment) is None:
        raise not_found("not_found", f"no entitlement for this {body['store']} purchase id")
    consumption = report.consumption(actor=actor, now_ms=now_ms)
    RefundStore(store.client).report(consumption)
    logs.bind(
        customer_consented=report.customer_consented,
        consumption_milliunits=consumption.percentage_milliunits,
    )
    return Reply(
        {
            "entitlement_id": consumption.entitlement_id,
            "customer_consented": report.customer_consented,
            "consumption_percentage": report.percent,
            "delivery_status": report.delivery_status,
            "sample_content_provided": report.sample_content_provided,
        },
        "admin action",
    )


def trigger(store: EntitlementStore, url: str | None, *, actor: str, now_ms: int) -> Reply:
    """Start a run now: POST to the reconciler (an ID token whose audience is its URL, deployed).
    202 with the run id (and the run, when it finished within ``TRIGGER_WAIT_S``); 409 when one
    is running; 503 when the reconciler cannot be reached or is not configured."""
    import requests

    if not url:
        raise transient(
            "reconciler_not_configured", "RECONCILE_URL is not set: the admin cannot start a run"
        )
    run_id = new_run_id(now_ms)
    logs.bind(run_id=run_id)
    headers = {"Content-Type": "application/json"}
    if not is_local_url(url):
        headers["Authorization"] = f"Bearer {_id_token(url)}"
    body = {"run_id": run_id, "trigger": "admin", "actor": actor}
    try:
        response = requests.post(
            f"{url}/", json=body, headers=headers, timeout=(3.05, TRIGGER_WAIT_S)
        )
    except requests.Timeout:
        return _still_running(store, run_id)
    except requests.RequestException as exc:
        raise transient("reconciler_unreachable", "the reconciler could not be reached") from exc
    answer = _json(response)
    if response.status_code == 409:
        running = (answer.get("details") or {}).get("running_run_id")
        raise RefundGuardError(
            Kind.CONFLICT,
            "reconcile_running",
            "a reconciliation run is in progress; try again when it has finished",
            details={"running_run_id": running},
        )
    if response.status_code != 200:
        raise transient(
            "reconciler_failed",
            f"the reconciler answered HTTP {response.status_code} ({answer.get('error', '?')})",
            run_id=run_id,
        )
    logs.bind(run_state=answer.get("state"))
    return Reply(
        {"run_id": run_id, "state": answer.get("state"), "run": answer}, "admin action", 202
    )


def _still_running(store: EntitlementStore, run_id: str) -> Reply:
    """The reconciler took longer than we wait: its run record says whether it runs."""
    state = ReconcileState(store.client)
    for _ in range(10):
        record = state.get_run(run_id)
        if record is not None:
            logs.bind(run_state=record.get("state"))
            return Reply(
                {"run_id": run_id, "state": record.get("state"), "run": run_json(record)},
                "admin action",
                202,
            )
        time.sleep(0.5)
    raise transient("reconciler_failed", "the reconciler did not start the run", run_id=run_id)


def _id_token(audience: str) -> str:
    """An ID token of the admin function's service account for the reconciler (Terraform grants
    it run.invoker there)."""
    try:
        import google.oauth2.id_token
        from google.auth.transport.requests import Request

        return str(google.oauth2.id_token.fetch_id_token(Request(), audience))
    except Exception as exc:
        raise transient(
            "reconciler_token", "no ID token for the reconciler could be obtained"
        ) from exc


def _json(response: Any) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
