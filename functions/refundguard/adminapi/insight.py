"""``GET /insight?tenant=&period=day|week|month&from=YYYY-MM-DD&to=YYYY-MM-DD[&format=csv]``: the
figures of docs/insight.md per tenant, product and period. Platform admins may name any tenant,
or none (every tenant's rows); tenant admins their own tenant (another's is the 404 of a tenant
that does not exist; one who administers a single tenant may leave it out). The tenant becomes
a query parameter of the per-tenant row filter (``insight.figures_sql``), never query text."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .. import logs
from ..access import Act
from ..errors import not_found, rejected
from ..http import Reply
from ..insight import FigureQuery, Insight, InsightSettings, parse_range, to_csv
from ..tenants import check_tenant_id

if TYPE_CHECKING:
    from .scope import Scope

ROUTES = frozenset({"insight"})


_readers: dict[InsightSettings, Insight] = {}
_lock = threading.Lock()


def reader(settings: InsightSettings | None) -> Insight | None:
    """The figures' reader of these settings, built at the first request (None: insight off):
    an instance that never serves ``/insight`` connects nothing; one reader (and cache) each."""
    if settings is None:
        return None
    with _lock:
        if settings not in _readers:
            from ..insight import connect

            _readers[settings] = Insight(connect(settings), cache_s=settings.cache_s)
        return _readers[settings]


def _no_such_tenant() -> Exception:
    return not_found("no_such_tenant", "no such tenant")


def dispatch(
    settings: InsightSettings | None, args: Mapping[str, str], scope: Scope, *, now_ms: int
) -> Reply:
    """The figures the caller may see (403 before anything is read when they may see none)."""
    scope.ever(Act.REFUNDS)
    insight = reader(settings)
    if insight is None:
        raise not_found("insight_off", "refund insight is off here (INSIGHT_ENGINE)")
    fmt = args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise rejected("bad_format", "format must be json or csv")
    today = datetime.fromtimestamp(now_ms / 1000, UTC).date()
    granularity, start, end = parse_range(args, today=today)
    tenant = _tenant(args.get("tenant"), scope)
    logs.bind(tenant=tenant or "*", period=granularity, start=str(start), end=str(end))
    rows = insight.figures(FigureQuery(tenant, granularity, start, end))
    if fmt == "csv":
        name = f"refundguard-insight-{tenant or 'all'}-{granularity}-{start}-{end}.csv"
        return Reply(
            {},
            "admin action",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
            content=to_csv(rows).encode(),
            content_type="text/csv",
        )
    return Reply(
        {
            "tenant": tenant,
            "period": granularity,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "rows": rows,
        },
        "admin action",
    )


def _tenant(named: str | None, scope: Scope) -> str | None:
    """The tenant whose figures: the one named (checked), else every tenant for the platform's
    admins, else the caller's only tenant."""
    if named:
        tenant = check_tenant_id(named)  # 400 when it cannot be a tenant id
        scope.require(Act.REFUNDS, tenant, _no_such_tenant)
        return tenant
    tenants = scope.tenants_for(Act.REFUNDS)
    if tenants is None:
        return None
    if len(tenants) == 1:
        return tenants[0]
    raise rejected("tenant_required", f"name one tenant ({', '.join(tenants)})")
