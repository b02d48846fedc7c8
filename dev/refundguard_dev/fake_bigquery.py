"""A local stand-in of BigQuery's REST API for refund insight: ``jobs.query`` (POST
/bigquery/v2/projects/{p}/queries) and ``jobs.getQueryResults`` (GET .../queries/{jobId}), as
documented: a ``QueryRequest`` with ``useLegacySql: false`` and NAMED ``queryParameters``, a
``QueryResponse`` with ``schema.fields``, ``rows`` of ``{"f": [{"v": text}]}`` (every value a
string or null), ``totalRows``, ``pageToken`` when more rows remain, ``jobComplete`` false while
the job runs (then the caller polls getQueryResults), and errors as ``{"error": {"code",
"message", "status", "errors": [{"reason"}]}}``. Queries run on a ``LocalWarehouse`` (the same
SQL). Test controls: ``pending_polls`` (answers with jobComplete false first), ``page_size``,
``fail_next`` faults (fake_http)."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from .fake_http import FakeServer, Reply, Request
from .insight_local import LocalWarehouse

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL"}
_TYPES = {"STRING": str, "DATE": date.fromisoformat, "INT64": int, "FLOAT64": float}


class FakeBigQuery(FakeServer):
    def __init__(self, warehouse: LocalWarehouse, *, project: str, port: int = 0) -> None:
        super().__init__(port)
        self.warehouse = warehouse
        self.project = project
        self.page_size = 10_000
        self.pending_polls = 0  # answers with jobComplete false before the rows
        self.jobs: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def error_reply(self, status: int, message: str, reason: str | None = None) -> Reply:
        error = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
        error["errors"] = [{"message": message, "domain": "global", "reason": reason or "error"}]
        return Reply(status, {"error": error})

    def target_of(self, request: Request) -> str:
        return "api"

    def handle(self, request: Request) -> Reply:
        prefix = f"/bigquery/v2/projects/{self.project}/queries"
        if request.path == prefix and request.method == "POST":
            return self._query(request)
        if request.path.startswith(prefix + "/") and request.method == "GET":
            return self._results(request.path.removeprefix(prefix + "/"), request)
        return self.error_reply(404, f"Not found: {request.path}", "notFound")

    def _query(self, request: Request) -> Reply:
        body = request.json() or {}
        if body.get("useLegacySql") is not False or body.get("parameterMode") != "NAMED":
            return self.error_reply(400, "named parameters need standard SQL", "invalid")
        params: dict[str, Any] = {}
        for p in body.get("queryParameters", []):
            kind = p["parameterType"]["type"]
            params[p["name"]] = _TYPES[kind](p["parameterValue"]["value"])
        # The project's dataset is the warehouse's (DuckDB's in-memory catalog).
        sql = str(body.get("query", "")).replace(f"`{self.project}.", "`memory.")
        try:
            rows = self.warehouse.query(sql, params)
        except Exception as exc:  # the engine refused the SQL: BigQuery's invalidQuery
            return self.error_reply(400, f"Syntax error: {type(exc).__name__}", "invalidQuery")
        job_id = f"job_{next(self._ids)}"
        self.jobs[job_id] = rows
        if self.pending_polls > 0:
            self.pending_polls -= 1
            return Reply(200, self._job(job_id, complete=False))
        return Reply(200, self._page(job_id, 0))

    def _results(self, job_id: str, request: Request) -> Reply:
        if job_id not in self.jobs:
            return self.error_reply(404, f"Not found: Job {job_id}", "notFound")
        if self.pending_polls > 0:
            self.pending_polls -= 1
            return Reply(200, self._job(job_id, complete=False))
        start = int(request.arg("pageToken") or 0)
        return Reply(200, self._page(job_id, start))

    def _job(self, job_id: str, *, complete: bool) -> dict[str, Any]:
        return {
            "kind": "bigquery#queryResponse",
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": "EU"},
            "jobComplete": complete,
        }

    def _page(self, job_id: str, start: int) -> dict[str, Any]:
        rows = self.jobs[job_id]
        names = list(rows[0]) if rows else []
        page = rows[start : start + self.page_size]
        answer = {
            **self._job(job_id, complete=True),
            "schema": {"fields": [{"name": n, "type": _type(rows, n)} for n in names]},
            "totalRows": str(len(rows)),
            "rows": [{"f": [{"v": _text(r[n])} for n in names]} for r in page],
        }
        if start + self.page_size < len(rows):
            answer["pageToken"] = str(start + self.page_size)
        return answer


def _type(rows: list[dict[str, Any]], name: str) -> str:
    for row in rows:
        value = row[name]
        if isinstance(value, bool):
            return "BOOLEAN"
        if isinstance(value, int):
            return "INTEGER"
        if isinstance(value, float):
            return "FLOAT"
        if isinstance(value, date):
            return "DATE"
        if value is not None:
            return "STRING"
    return "STRING"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()[:10]
    return str(value)
