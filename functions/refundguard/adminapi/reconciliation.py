"""The admin routes of the reconciler and the refund requests: ``GET /reconciliation/runs``,
``POST /reconciliation:run`` (the admin function calls the reconciler's URL, with an ID token for
it when deployed; none to a local ``http://`` reconciler), ``GET /refund-requests`` and
``POST /entitlements:consumption`` (what the platform reports for the refund-request policy).
Shapes: docs/admin.md."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from .. import logs, outbound
from ..config import is_local_url
from ..errors import Kind, RefundGuardError, not_found, rejected, transient
from ..http import Reply
from ..model import check_purchase_id, document_id, parse_namespace
from ..reconciliation.state import run_json
from ..refunds import DELIVERY_STATUSES, FINAL, PENDING, Consumption
from ..wiring import Wiring
from .actions import parse_limit

DEFAULT_RUNS, MAX_RUNS = 20, 100
DEFAULT_REQUESTS, MAX_REQUESTS = 100, 500
#: How long ``POST /reconciliation:run`` waits for the run to finish before answering 202 with
#: the run still running (it goes on: the reconciler answers Cloud Run, not us).
TRIGGER_WAIT_S = 10.0
ID_TOKEN_DEADLINE_S = 10.0  # the metadata server's ID token, fetch included
CONSUMPTION_FIELDS = {
    "store",
    "purchase_id",
    "customer_consented",
    "consumption_percentage",
    "delivery_status",
    "sample_content_provided",
}


ROUTES = frozenset({"runs", "run", "refund_requests", "consumption"})


def dispatch(
    name: str,
    wiring: Wiring,
    *,
    args: Mapping[str, str],
    body: Mapping[str, Any] | None,
    url: str | None,
    actor: str,
) -> Reply:
    """One of ``ROUTES``, for an authenticated admin (``body``: a POST's JSON object)."""
    if name == "runs":
        return runs(wiring, args)
    if name == "refund_requests":
        return refund_requests(wiring, args)
    if name == "run":
        return trigger(wiring, url, actor=actor)
    return report_consumption(wiring, body or {}, actor=actor, now_ms=wiring.clock_ms())


def runs(wiring: Wiring, args: Mapping[str, str]) -> Reply:
    limit = parse_limit(args.get("limit"), default=DEFAULT_RUNS, high=MAX_RUNS)
    records = wiring.runs.recent_runs(limit)
    logs.bind(runs=len(records))
    return Reply({"runs": [run_json(r) for r in records]}, "admin action")


def refund_requests(wiring: Wiring, args: Mapping[str, str]) -> Reply:
    limit = parse_limit(args.get("limit"), default=DEFAULT_REQUESTS, high=MAX_REQUESTS)
    state = args.get("state")
    if state is not None and state not in FINAL | {PENDING}:
        raise rejected("bad_state", "state must be pending, answered, unanswerable or expired")
    found = wiring.refunds.recent(limit=limit)
    if state is not None:
        found = [r for r in found if r.state == state]
    logs.bind(refund_requests=len(found))
    return Reply({"requests": [r.public() for r in found]}, "admin action")


def report_consumption(
    wiring: Wiring, body: Mapping[str, Any], *, actor: str, now_ms: int
) -> Reply:
    """What the platform knows about a purchase's use, for the refund-request policy."""
    unknown = sorted(set(body) - CONSUMPTION_FIELDS)
    if unknown:
        raise rejected("unknown_field", f"unknown field(s): {', '.join(unknown)[:200]}")
    store_ns, purchase_id = body.get("store"), body.get("purchase_id")
    if not isinstance(store_ns, str) or not isinstance(purchase_id, str):
        raise rejected("missing_target", '"store" and "purchase_id" are required strings')
    store_name, environment = parse_namespace(store_ns)
    check_purchase_id(purchase_id)
    logs.bind(store=store_ns[:40], purchase_token_hash=logs.token_hash(purchase_id))
    consented, sample = body.get("customer_consented"), body.get("sample_content_provided")
    if not isinstance(consented, bool) or not isinstance(sample, bool):
        raise rejected(
            "bad_consumption",
            '"customer_consented" and "sample_content_provided" are required booleans',
        )
    percent = body.get("consumption_percentage")
    if (
        isinstance(percent, bool)
        or not isinstance(percent, (int, float))
        or not 0 <= percent <= 100
    ):
        raise rejected("bad_consumption", '"consumption_percentage" must be a number 0-100')
    delivery = body.get("delivery_status", "DELIVERED")
    if delivery not in DELIVERY_STATUSES:
        raise rejected(
            "bad_consumption", f'"delivery_status" must be one of {sorted(DELIVERY_STATUSES)}'
        )
    if wiring.entitlements.get(store_name, purchase_id, environment) is None:
        raise not_found("not_found", f"no entitlement for this {store_ns} purchase id")
    consumption = Consumption(
        entitlement_id=document_id(store_name, purchase_id, environment),
        customer_consented=consented,
        delivery_status=str(delivery),
        sample_content_provided=sample,
        percentage_milliunits=round(percent * 1000),
        actor=actor,
        updated_ms=now_ms,
    )
    wiring.refunds.report(consumption)
    logs.bind(
        customer_consented=consented, consumption_milliunits=consumption.percentage_milliunits
    )
    return Reply(
        {
            "entitlement_id": consumption.entitlement_id,
            "customer_consented": consented,
            "consumption_percentage": percent,
            "delivery_status": delivery,
            "sample_content_provided": sample,
        },
        "admin action",
    )


def trigger(wiring: Wiring, url: str | None, *, actor: str) -> Reply:
    """Start a run now: POST to the reconciler (an ID token whose audience is its URL, deployed)
    with a nonce of ours (``request_id``: the reconciler makes the run id). 202 with the run id
    (and the run, when it finished within ``TRIGGER_WAIT_S``); 409 when one is running; 503 when
    the reconciler cannot be reached or is not configured."""
    import requests

    if not url:
        raise transient(
            "reconciler_not_configured", "RECONCILE_URL is not set: the admin cannot start a run"
        )
    request_id = uuid.uuid4().hex
    logs.bind(request_id=request_id)
    headers = {"Content-Type": "application/json"}
    if not is_local_url(url):
        headers["Authorization"] = f"Bearer {_id_token(url)}"
    body = {"request_id": request_id, "trigger": "admin", "actor": actor}
    guard = None
    try:
        with outbound.deadline(3.05 + TRIGGER_WAIT_S) as guard, outbound.session() as session:
            response = session.post(
                f"{url}/", json=body, headers=headers, timeout=(3.05, TRIGGER_WAIT_S)
            )
    except requests.Timeout:
        return _still_running(wiring, request_id)
    except requests.RequestException as exc:
        if guard is not None and guard.expired:
            return _still_running(wiring, request_id)
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
            request_id=request_id,
        )
    run_id = answer.get("run_id")
    logs.bind(run_id=run_id, run_state=answer.get("state"))
    return Reply(
        {"run_id": run_id, "state": answer.get("state"), "run": answer}, "admin action", 202
    )


def _still_running(wiring: Wiring, request_id: str) -> Reply:
    """The reconciler took longer than we wait: the run record it made for ``request_id`` says
    whether it runs."""
    for _ in range(10):
        record = wiring.runs.find_by_request(request_id)
        if record is not None:
            logs.bind(run_id=record.run_id, run_state=record.state)
            return Reply(
                {"run_id": record.run_id, "state": record.state, "run": run_json(record)},
                "admin action",
                202,
            )
        time.sleep(0.5)
    raise transient(
        "reconciler_failed", "the reconciler did not start the run", request_id=request_id
    )


def _id_token(audience: str) -> str:
    """An ID token of the admin function's service account for the reconciler (Terraform grants
    it run.invoker there)."""
    try:
        import google.oauth2.id_token

        with outbound.deadline(ID_TOKEN_DEADLINE_S):
            return str(
                google.oauth2.id_token.fetch_id_token(outbound.google_auth_request(), audience)
            )
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
