"""Refund insight (docs/insight.md): the figures per tenant, product and period, read from the
warehouse's ``figures`` view. In Google Cloud the warehouse is BigQuery, fed by a Pub/Sub BigQuery
subscription on the events topic (infra/insight.tf), queried here through its REST API
(``jobs.query`` with named query parameters: the tenant is a parameter of a WHERE clause, the
per-tenant row filter, never text of the query); locally (``make run``, tests) it is the embedded
DuckDB stand-in of ``refundguard_dev.insight_local``, which runs the same view SQL. Answers are
cached in-process for ``INSIGHT_CACHE_SECONDS``.

Settings: ``INSIGHT_ENGINE`` (``off`` by default, ``bigquery``, or ``local``), ``INSIGHT_DATASET``
(``project.dataset``), ``INSIGHT_LOCATION`` (the dataset's location), ``INSIGHT_API_BASE_URL``
(BigQuery's; a local http URL only for the tests' stand-in), ``INSIGHT_CACHE_SECONDS``."""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from . import logs, outbound
from .errors import rejected, transient

if TYPE_CHECKING:
    import requests

    from .config import Settings

ENGINES = ("off", "bigquery", "local")
GRANULARITIES = ("day", "week", "month")
#: The figures, in the view's column order (docs/insight.md defines each).
FIGURES = (
    "purchases",
    "refunds",
    "refunds_of_purchases",
    "refund_rate",
    "partial_refunds",
    "reversals",
    "admin_regrants",
    "requests_received",
    "requests_answered",
    "requests_expired",
    "requests_unanswerable",
    "requests_refunded",
    "revoke_p50_ms",
    "revoke_p95_ms",
)
COLUMNS = ("tenant", "product_id", "granularity", "period_start", *FIGURES)
#: The longest range one request may ask for, in periods of its granularity.
MAX_PERIODS = 400
DEFAULT_PERIODS = {"day": 30, "week": 12, "month": 12}
MAX_ROWS = 20_000
BIGQUERY_URL = "https://bigquery.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/bigquery.readonly"
DEFAULT_CACHE_SECONDS = 60.0
#: (connect, read) seconds of one REST call; ``QUERY_DEADLINE_S`` bounds the whole query.
TIMEOUT_S = (3.0, 20.0)
QUERY_DEADLINE_S = 25.0
MAX_CACHED = 256
_IDENT = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
_DATASET = re.compile(r"^([a-z][a-z0-9:.-]{4,62}[a-z0-9])\.([A-Za-z0-9_]{1,1024})$")


def unavailable(message: str = "the figures are unavailable; retry later") -> Exception:
    return transient("insight_unavailable", message)


# ---------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class InsightSettings:
    engine: str  # bigquery | local
    project: str
    dataset: str
    location: str | None = None
    api_base_url: str = BIGQUERY_URL
    cache_s: float = DEFAULT_CACHE_SECONDS

    @classmethod
    def read(cls, settings: Settings) -> InsightSettings | None:
        """None when ``INSIGHT_ENGINE`` is ``off`` (or unset); problems recorded on
        ``settings``."""
        engine = (settings.raw("INSIGHT_ENGINE") or "off").strip().lower()
        if engine not in ENGINES:
            settings.problem(f"INSIGHT_ENGINE must be one of {', '.join(ENGINES)}")
            return None
        cache_s = DEFAULT_CACHE_SECONDS
        raw_cache = settings.raw("INSIGHT_CACHE_SECONDS")
        if raw_cache:
            try:
                cache_s = float(raw_cache)
            except ValueError:
                cache_s = -1.0
            if not 0 <= cache_s <= 3600:
                settings.problem("INSIGHT_CACHE_SECONDS must be a number of seconds, 0-3600")
        if engine == "off":
            return None
        if engine == "local":
            from_dev = _local_names()
            if from_dev is None:
                settings.problem(
                    "INSIGHT_ENGINE=local needs the development environment (make setup): "
                    "deployments use bigquery"
                )
                return None
            return cls("local", *from_dev, cache_s=cache_s)
        match = _DATASET.match(settings.raw("INSIGHT_DATASET") or "")
        if match is None:
            settings.problem("INSIGHT_DATASET must be PROJECT.DATASET (INSIGHT_ENGINE=bigquery)")
            return None
        base = settings.raw("INSIGHT_API_BASE_URL") or BIGQUERY_URL
        from .config import is_local_url

        if base.rstrip("/") != BIGQUERY_URL and not is_local_url(base):
            settings.problem(f"INSIGHT_API_BASE_URL must be {BIGQUERY_URL} (or a local stand-in)")
        return cls(
            "bigquery",
            match.group(1),
            match.group(2),
            location=settings.raw("INSIGHT_LOCATION") or None,
            api_base_url=base.rstrip("/"),
            cache_s=cache_s,
        )


def _local_names() -> tuple[str, str] | None:
    try:
        from refundguard_dev import insight_local  # type: ignore[import-not-found]
    except ImportError:
        return None
    return insight_local.CATALOG, insight_local.DATASET


# ---------------------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class FigureQuery:
    """What one request asks: a tenant (None: every tenant, platform admins only), a granularity
    and the periods starting from ``start`` to ``end`` (UTC dates, both included)."""

    tenant: str | None
    granularity: str
    start: date
    end: date


def parse_range(args: Mapping[str, str], *, today: date) -> tuple[str, date, date]:
    """``period``, ``from`` and ``to`` of ``GET /insight``: REJECTED (400) when malformed."""
    granularity = args.get("period", "day")
    if granularity not in GRANULARITIES:
        raise rejected("bad_period", "period must be day, week or month")
    try:
        end = date.fromisoformat(args["to"]) if args.get("to") else today
        start = (
            date.fromisoformat(args["from"])
            if args.get("from")
            else end - timedelta(days=_days(granularity, DEFAULT_PERIODS[granularity]))
        )
    except ValueError:
        raise rejected("bad_date", "from and to must be dates, YYYY-MM-DD (UTC)") from None
    if start > end:
        raise rejected("bad_range", "from must not be after to")
    if (end - start).days > _days(granularity, MAX_PERIODS):
        raise rejected("range_too_long", f"at most {MAX_PERIODS} periods of a {granularity}")
    return granularity, period_start(start, granularity), end


def _days(granularity: str, periods: int) -> int:
    return periods * {"day": 1, "week": 7, "month": 31}[granularity]


def period_start(day: date, granularity: str) -> date:
    """The first day of ``day``'s period (weeks start on Monday, as the view's)."""
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def figures_sql(project: str, dataset: str, *, one_tenant: bool) -> str:
    """The query (BigQuery's dialect, named parameters): the tenant is ``@tenant``, never text."""
    if not (_IDENT.match(project.replace(".", "_").replace(":", "_")) and _IDENT.match(dataset)):
        raise ValueError("bad project or dataset name")
    tenant = "tenant = @tenant AND " if one_tenant else ""
    # Names from the settings, checked above; every value is a parameter.
    select = f"SELECT {', '.join(COLUMNS)} FROM `{project}.{dataset}.figures` "  # noqa: S608
    return (
        f"{select}WHERE {tenant}granularity = @granularity "
        "AND period_start BETWEEN @from_date AND @to_date "
        f"ORDER BY tenant, period_start, product_id LIMIT {MAX_ROWS}"
    )


def query_parameters(query: FigureQuery) -> list[tuple[str, str, Any]]:
    """(name, BigQuery type, value) of ``figures_sql``'s parameters."""
    params: list[tuple[str, str, Any]] = []
    if query.tenant is not None:
        params.append(("tenant", "STRING", query.tenant))
    params += [
        ("granularity", "STRING", query.granularity),
        ("from_date", "DATE", query.start),
        ("to_date", "DATE", query.end),
    ]
    return params


# ---------------------------------------------------------------------------------------- engines


class Engine(Protocol):
    project: str
    dataset: str

    def run(self, sql: str, params: Sequence[tuple[str, str, Any]]) -> list[dict[str, Any]]: ...


class BigQueryEngine:
    """BigQuery's REST API: ``jobs.query``, then ``jobs.getQueryResults`` while the job runs or
    more pages remain. Any failure is TRANSIENT ``insight_unavailable`` (503): nothing a caller
    sent can make a well-formed query fail; the log line names BigQuery's status."""

    def __init__(
        self,
        settings: InsightSettings,
        *,
        session: requests.Session | None = None,
        timeout_s: tuple[float, float] = TIMEOUT_S,
        deadline_s: float = QUERY_DEADLINE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project, self.dataset = settings.project, settings.dataset
        self.location = settings.location
        self.base = f"{settings.api_base_url}/bigquery/v2/projects/{settings.project}"
        self._local = settings.api_base_url != BIGQUERY_URL
        self._session = session
        self._timeout_s = timeout_s
        self._deadline_s = deadline_s
        self._clock = clock

    def _http(self) -> requests.Session:
        if self._session is None:
            if self._local:
                self._session = outbound.session()
            else:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials, _ = google.auth.default(scopes=[SCOPE])
                self._session = outbound.mount(
                    AuthorizedSession(credentials, auth_request=outbound.google_auth_request())
                )
        return self._session

    def run(self, sql: str, params: Sequence[tuple[str, str, Any]]) -> list[dict[str, Any]]:
        ends = self._clock() + self._deadline_s
        body: dict[str, Any] = {
            "query": sql,
            "useLegacySql": False,
            "parameterMode": "NAMED",
            "queryParameters": [
                {
                    "name": name,
                    "parameterType": {"type": kind},
                    "parameterValue": {"value": str(value)},
                }
                for name, kind, value in params
            ],
            "timeoutMs": int(self._deadline_s * 1000),
            "maxResults": MAX_ROWS,
            "labels": {"refundguard": "insight"},
        }
        if self.location:
            body["location"] = self.location
        answer = self._call("POST", f"{self.base}/queries", ends, json=body)
        job = answer.get("jobReference") or {}
        rows: list[dict[str, Any]] = []
        while True:
            if answer.get("jobComplete") is True:
                rows.extend(_rows(answer))
                token = answer.get("pageToken")
                if not token or len(rows) >= MAX_ROWS:
                    return rows
                page: dict[str, Any] = {"pageToken": token}
            else:
                page = {}
            job_id = job.get("jobId")
            if not isinstance(job_id, str) or not _IDENT.match(job_id):
                raise unavailable("BigQuery answered without a job to wait for")
            remaining = ends - self._clock()
            if remaining <= 0:
                logs.warning("insight query timed out", job_id=job_id)
                raise unavailable("the figures took too long; retry later")
            query = {
                **page,
                "timeoutMs": str(int(remaining * 1000)),
                "maxResults": str(MAX_ROWS),
                **({"location": job.get("location")} if job.get("location") else {}),
            }
            answer = self._call("GET", f"{self.base}/queries/{job_id}", ends, params=query)

    def _call(self, method: str, url: str, ends: float, **kw: Any) -> dict[str, Any]:
        remaining = ends - self._clock()
        if remaining <= 0:
            raise unavailable("the figures took too long; retry later")
        timeout = (min(self._timeout_s[0], remaining), min(self._timeout_s[1], remaining))
        try:
            with outbound.deadline(sum(timeout)):
                response = self._http().request(method, url, timeout=timeout, **kw)
        except Exception as exc:  # network, credentials: the query may be asked again
            logs.warning("BigQuery unreachable", error=type(exc).__name__)
            raise unavailable() from exc
        if response.status_code != 200:
            status, reason = _error(response)
            logs.warning(
                "BigQuery refused the insight query",
                http_status=response.status_code,
                status=status,
                reason=reason,
            )
            raise unavailable()
        try:
            answer = response.json()
        except ValueError as exc:
            raise unavailable("BigQuery answered an unexpected body") from exc
        if not isinstance(answer, dict):
            raise unavailable("BigQuery answered an unexpected body")
        return answer


def _error(response: requests.Response) -> tuple[str, str]:
    """BigQuery's error status and first reason (``INVALID_ARGUMENT``, ``invalidQuery``)."""
    try:
        error = response.json()["error"]
        status = str(error.get("status", "?"))[:40]
        reasons = error.get("errors") or [{}]
        return status, str(reasons[0].get("reason", "?"))[:40]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return "?", "?"


_CONVERT: dict[str, Callable[[str], Any]] = {
    "INTEGER": int,
    "INT64": int,
    "FLOAT": float,
    "FLOAT64": float,
    "NUMERIC": float,
    "STRING": str,
    "DATE": str,
}


def _rows(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``rows`` (``{"f": [{"v": ...}]}``) by ``schema.fields``, values typed."""
    try:
        fields = answer["schema"]["fields"]
        names = [f["name"] for f in fields]
        kinds = [_CONVERT.get(f.get("type", "STRING"), str) for f in fields]
        out = []
        for row in answer.get("rows", []):
            cells = row["f"]
            if len(cells) != len(names):
                raise ValueError("a row of another width")
            out.append(
                {
                    name: None if cell.get("v") is None else kind(cell["v"])
                    for name, kind, cell in zip(names, kinds, cells, strict=True)
                }
            )
        return out
    except (KeyError, TypeError, ValueError) as exc:
        raise unavailable("BigQuery answered rows the figures cannot read") from exc


class LocalEngine:
    """The embedded stand-in (``refundguard_dev.insight_local``): same SQL, DuckDB."""

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse
        self.project, self.dataset = "memory", warehouse.dataset

    def run(self, sql: str, params: Sequence[tuple[str, str, Any]]) -> list[dict[str, Any]]:
        rows = self.warehouse.query(sql, {name: value for name, _, value in params})
        for row in rows:  # DuckDB hands dates as date objects; BigQuery's REST API as text
            for name, value in row.items():
                if isinstance(value, date):
                    row[name] = value.isoformat()[:10]
        return rows


def connect(settings: InsightSettings) -> Engine:
    if settings.engine == "local":
        from refundguard_dev import insight_local  # type: ignore[import-not-found]

        return LocalEngine(insight_local.shared_warehouse())
    return BigQueryEngine(settings)


# ---------------------------------------------------------------------------------------- reading


class Insight:
    """The figures through an engine, each answer cached ``cache_s`` seconds in-process."""

    def __init__(
        self, engine: Engine, *, cache_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.cache_s = cache_s
        self._clock = clock
        self._cache: dict[tuple[Any, ...], tuple[float, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def figures(self, query: FigureQuery) -> list[dict[str, Any]]:
        sql = figures_sql(
            self.engine.project, self.engine.dataset, one_tenant=query.tenant is not None
        )
        params = query_parameters(query)
        key = (sql, tuple(params))
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                logs.bind(insight_cache="hit")
                return hit[1]
        rows = [{c: row.get(c) for c in COLUMNS} for row in self.engine.run(sql, params)]
        logs.bind(insight_cache="miss", insight_rows=len(rows))
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            if self.cache_s > 0:
                self._cache[key] = (now + self.cache_s, rows)
        return rows


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV (RFC 4180, a header line; an empty cell for null)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _cell(row[c]) for c in COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = str(value)
    # A cell a spreadsheet would run as a formula is quoted as text (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
