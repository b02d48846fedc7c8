"""The admin routes of the reconciler and the refund requests: ``GET /reconciliation/runs``,
``POST /reconciliation:run`` (the admin function calls the reconciler's URL, with an ID token for
it when deployed; none to a local ``http://`` reconciler), ``GET /refund-requests`` and
``POST /entitlements:consumption`` (what the platform reports for the refund-request policy).
Shapes: docs/admin.md."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import logs, outbound
from ..access import Act
from ..config import is_local_url
from ..errors import Kind, RefundGuardError, not_found, rejected, transient
from ..http import Reply
from .actions import parse_limit

if TYPE_CHECKING:
    from ..refund_answers import Policy
    from ..wiring import Wiring
    from .scope import Scope

# The reconciler's run records and the refund requests' rules are imported by the routes that use
# them (rare next to look-ups): the admin function's cold start does not pay for them.

DEFAULT_RUNS, MAX_RUNS = 20, 100
DEFAULT_REQUESTS, MAX_REQUESTS = 100, 500
#: How long ``POST /reconciliation:run`` waits for the run to finish before answering 202 with
#: the run still running (it goes on: the reconciler answers Cloud Run, not us).
TRIGGER_WAIT_S = 10.0
ID_TOKEN_DEADLINE_S = 10.0  # the metadata server's ID token, fetch included


ROUTES = frozenset({"runs", "run", "refund_requests", "refund_requests_dry_run", "consumption"})


def dispatch(
    name: str,
    wiring: Wiring,
    *,
    args: Mapping[str, str],
    body: Mapping[str, Any] | None,
    url: str | None,
    actor: str,
    scope: Scope,
    policy: Policy | None = None,
) -> Reply:
    """One of ``ROUTES``, for an authenticated admin (``body``: a POST's JSON object), within
    the tenants ``scope`` lets them see."""
    if name == "runs":
        return runs(wiring, args, scope.tenants_for(Act.RUNS))
    if name == "refund_requests":
        return refund_requests(wiring, args, scope.tenants_for(Act.REFUNDS))
    if name == "refund_requests_dry_run":
        return dry_run(wiring, body or {}, scope=scope, policy=policy)
    if name == "run":
        scope.tenants_for(Act.RUN)
        return trigger(wiring, url, actor=actor)
    return report_consumption(
        wiring, body or {}, actor=actor, now_ms=wiring.clock_ms(), scope=scope
    )


def runs(wiring: Wiring, args: Mapping[str, str], tenants: list[str] | None = None) -> Reply:
    """The newest runs; with ``tenants`` (tenant staff), only runs recorded for one of them."""
    limit = parse_limit(args.get("limit"), default=DEFAULT_RUNS, high=MAX_RUNS)
    from ..reconciliation.state import run_json

    records = wiring.runs.recent_runs(limit)
    if tenants is not None:
        records = [r for r in records if getattr(r, "tenant", None) in tenants]
    logs.bind(runs=len(records))
    return Reply({"runs": [run_json(r) for r in records]}, "admin action")


def refund_requests(
    wiring: Wiring, args: Mapping[str, str], tenants: list[str] | None = None
) -> Reply:
    limit = parse_limit(args.get("limit"), default=DEFAULT_REQUESTS, high=MAX_REQUESTS)
    state = args.get("state")
    from ..refunds import FINAL, PENDING

    if state is not None and state not in FINAL | {PENDING}:
        raise rejected("bad_state", "state must be pending, answered, unanswerable or expired")
    found = wiring.refunds.recent(limit=limit, tenants=tenants)
    if state is not None:
        found = [r for r in found if r.state == state]
    logs.bind(refund_requests=len(found))
    return Reply({"requests": [r.public() for r in found]}, "admin action")


MAX_DRY_RUN = 200


def dry_run(
    wiring: Wiring, body: Mapping[str, Any], *, scope: Scope, policy: Policy | None
) -> Reply:
    """What each pending request of a tenant would get now from its policy and rules, or from
    ``refund_rules`` / ``policy`` given in the body (checked like a tenant's, saved nowhere, sent
    nowhere), as if answering were on and the store's API configured (``answering`` says whether
    it is). Each answer names the rule that decided it."""
    from dataclasses import replace

    from ..reconciliation.answers import facts_of
    from ..refund_answers import Policy, judge
    from ..refund_policy import policies
    from ..refund_rules import parse_rules
    from ..tenants import DEFAULT_TENANT, Tenant, check_tenant_id, parse_policy_settings

    unknown = sorted(str(k)[:40] for k in set(body) - {"tenant", "refund_rules", "policy"})
    if unknown:
        raise rejected("unknown_field", f"unknown field(s): {', '.join(unknown)[:200]}")
    tenant_id = check_tenant_id(body.get("tenant", DEFAULT_TENANT))

    def absent() -> RefundGuardError:
        return not_found("no_such_tenant", f"no tenant {tenant_id}")

    scope.require(Act.REFUNDS, tenant_id, absent)
    tenant = wiring.tenants.tenant(tenant_id)
    if tenant is None and tenant_id == DEFAULT_TENANT:
        tenant = Tenant(DEFAULT_TENANT, "Apps set in the environment")
    if tenant is None:
        raise absent()
    if "refund_rules" in body:
        tenant = replace(tenant, refund_rules=parse_rules(body["refund_rules"]))
    base = policy or Policy()
    if "policy" in body:
        if tenant.id == DEFAULT_TENANT:  # the default tenant's policy is the environment's
            from ..config import Settings
            from ..refund_policy import read_policy

            settings = Settings(parse_policy_settings(body["policy"]))
            base = read_policy(settings)
            if settings.problems:
                raise rejected("bad_policy", "; ".join(settings.problems)[:400])
        else:
            tenant = replace(tenant, policy=parse_policy_settings(body["policy"]))
    chosen = policies(base)(tenant)
    if "refund_rules" in body and tenant.id == DEFAULT_TENANT:
        chosen = replace(chosen, rules=tenant.refund_rules)
    answering = chosen.answer
    chosen = replace(chosen, answer=True)  # what it would answer once REFUND_REQUESTS=answer
    now = wiring.clock_ms()
    results = []
    for request in wiring.refunds.pending(tenant=tenant.id, limit=MAX_DRY_RUN):
        consumption = wiring.refunds.consumption(request.entitlement_id)
        facts = facts_of(request, wiring.entitlements)
        verdict = judge(request, consumption, chosen, api_on=True, now_ms=now, facts=facts)
        results.append(
            {
                "request": request.public(),
                "action": verdict.action,
                "rule": verdict.rule,
                "reason": verdict.reason,
                "answer": dict(verdict.body) or None,
            }
        )
    logs.bind(tenant=tenant.id, dry_run=len(results))
    return Reply({"tenant": tenant.id, "answering": answering, "results": results}, "admin action")


def report_consumption(
    wiring: Wiring, body: Mapping[str, Any], *, actor: str, now_ms: int, scope: Scope
) -> Reply:
    """What the platform knows about a purchase's use, for the refund-request policy."""
    from ..refunds import parse_consumption_report

    report = parse_consumption_report(body)  # every field checked before anything is read
    logs.bind(
        store=str(body["store"])[:40], purchase_token_hash=logs.token_hash(report.purchase_id)
    )
    entitlement = wiring.entitlements.get(report.store, report.purchase_id, report.environment)

    def absent() -> RefundGuardError:
        return not_found("not_found", f"no entitlement for this {body['store']} purchase id")

    if entitlement is None:
        raise absent()
    scope.require(Act.CONSUMPTION, entitlement.tenant, absent)
    consumption = report.consumption(actor=actor, now_ms=now_ms)
    wiring.refunds.report(consumption)
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
    from ..reconciliation.state import run_json

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
