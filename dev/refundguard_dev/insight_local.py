"""The local stand-in of the insight warehouse: an embedded DuckDB holding the BigQuery table
``events`` with the same schema (infra/insight/events_schema.json), filled with rows in the format
the Pub/Sub BigQuery subscription writes (``insight_rows``), and the SAME view SQL as
Terraform deploys (infra/insight/*.sql), transpiled from BigQuery's dialect to DuckDB's by sqlglot
(``transpile``; tests check that the transpiled text is what runs). Development and tests only:
never deployed (duckdb and sqlglot are in requirements.txt, not functions/requirements.txt)."""

from __future__ import annotations

import json
import string
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .insight_rows import SQL_DIR, row_of_pubsub_message, schema

#: The views, each over the ones before it (infra/insight.tf creates them in this order too).
VIEWS = ("events_unique", "facts", "figures")
#: DuckDB's catalog of an in-memory database: ``project`` in the views' ``project.dataset.name``.
CATALOG = "memory"
DATASET = "refundguard_insight"
_BQ_TO_DUCKDB = {
    "STRING": "VARCHAR",
    "TIMESTAMP": "TIMESTAMP",
    "INT64": "BIGINT",
    "BOOL": "BOOLEAN",
    "FLOAT64": "DOUBLE",
}


def duckdb_type(field: Mapping[str, Any]) -> str:
    if field["type"] == "RECORD":
        inner = ", ".join(f'"{f["name"]}" {duckdb_type(f)}' for f in field["fields"])
        return f"STRUCT({inner})"
    return _BQ_TO_DUCKDB[field["type"]]


def view_sql(name: str, *, project: str, dataset: str) -> str:
    """A view's BigQuery SQL with Terraform's ``templatefile`` variables filled in."""
    text = (SQL_DIR / f"{name}.sql").read_text()
    return string.Template(text).substitute(project=project, dataset=dataset)


def transpile(bigquery_sql: str) -> str:
    """BigQuery SQL -> DuckDB SQL (one statement). Every CTE is marked NOT MATERIALIZED: DuckDB
    materializes a CTE read twice, which stops a view's WHERE tenant = ... at it (BigQuery inlines
    them; the results are the same, only DuckDB's plan changes)."""
    import sqlglot
    from sqlglot import exp

    (tree,) = sqlglot.parse(bigquery_sql, read="bigquery")
    for cte in tree.find_all(exp.CTE):
        cte.set("materialized", False)
    return tree.sql(dialect="duckdb")


class LocalWarehouse:
    """One in-memory DuckDB: the ``events`` table and the views. Thread-safe (one lock)."""

    def __init__(self, *, dataset: str = DATASET) -> None:
        import duckdb

        self.dataset = dataset
        self._db = duckdb.connect(":memory:")
        self._db.execute("SET enable_progress_bar = false")
        self._lock = threading.Lock()
        fields = schema()
        self._columns = {f["name"]: duckdb_type(f) for f in fields}
        columns = ", ".join(f'"{name}" {kind}' for name, kind in self._columns.items())
        self._db.execute(f'CREATE SCHEMA "{dataset}"')
        self._db.execute(f'CREATE TABLE "{dataset}".events ({columns})')
        #: The DuckDB text of each view, as run (tests compare it with ``transpile``).
        self.views: dict[str, str] = {}
        for name in VIEWS:
            body = transpile(view_sql(name, project=CATALOG, dataset=dataset))
            self.views[name] = body
            self._db.execute(f'CREATE VIEW "{dataset}"."{name}" AS {body}')

    def insert(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append subscription rows (``subscription_row``); how many."""
        rows = list(rows)
        if not rows:
            return 0
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")
            path = out.name
        columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in self._columns.items()) + "}"
        try:
            with self._lock:
                self._db.execute(
                    f'INSERT INTO "{self.dataset}".events SELECT * FROM read_json(?, '
                    f"columns={columns}, format='newline_delimited')",
                    [path],
                )
        finally:
            Path(path).unlink(missing_ok=True)
        return len(rows)

    def execute(self, duckdb_sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        with self._lock:
            self._db.execute(duckdb_sql, params)

    def query(self, bigquery_sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run a BigQuery-dialect query (named parameters ``@name``) here, transpiled."""
        sql = transpile(bigquery_sql)
        with self._lock:
            cursor = self._db.execute(sql, dict(params))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute(f'SELECT COUNT(*) FROM "{self.dataset}".events').fetchone()
        return int(n)


# ---------------------------------------------------------------------------- make run's warehouse

_shared: dict[str, LocalWarehouse] = {}  # "" -> this process's warehouse
_shared_lock = threading.Lock()


class EmulatorFeed:
    """The BigQuery subscription's stand-in on the Pub/Sub emulator: a pull subscription on the
    events topic whose messages become rows (``subscription_row``) before each query."""

    def __init__(self, host: str, subscription: str) -> None:
        import requests

        self.url = f"http://{host}/v1/{subscription}"
        self.subscription = subscription
        self._http = requests.Session()

    def pull(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for _ in range(100):  # at most 100 pulls of 1,000 per query
            response = self._http.post(
                f"{self.url}:pull", json={"maxMessages": 1000, "returnImmediately": True}, timeout=5
            )
            response.raise_for_status()
            received = response.json().get("receivedMessages", [])
            if not received:
                break
            rows += [row_of_pubsub_message(r["message"], self.subscription) for r in received]
            ack = {"ackIds": [r["ackId"] for r in received]}
            self._http.post(f"{self.url}:acknowledge", json=ack, timeout=5).raise_for_status()
        return rows


class FollowingWarehouse(LocalWarehouse):
    """A warehouse that takes what its feed holds before each query."""

    def __init__(self, feed: EmulatorFeed | None, **kw: Any) -> None:
        super().__init__(**kw)
        self.feed = feed

    def query(self, bigquery_sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.feed is not None:
            self.insert(self.feed.pull())
        return super().query(bigquery_sql, params)


def shared_warehouse() -> LocalWarehouse:
    """This process's warehouse (``INSIGHT_ENGINE=local``): fed by the emulator subscription
    ``INSIGHT_LOCAL_SUBSCRIPTION`` (projects/P/subscriptions/S, on ``PUBSUB_EMULATOR_HOST``)
    when set, and seeded with demo data (``demo.demo_rows``) when ``INSIGHT_LOCAL_DEMO=1``: of
    the tenants ``INSIGHT_LOCAL_DEMO_TENANTS`` names (comma-separated; unset: ``default``)."""
    import os

    with _shared_lock:
        if "" not in _shared:
            host = os.environ.get("PUBSUB_EMULATOR_HOST")
            name = os.environ.get("INSIGHT_LOCAL_SUBSCRIPTION")
            feed = EmulatorFeed(host, name) if host and name else None
            warehouse = FollowingWarehouse(feed)
            if os.environ.get("INSIGHT_LOCAL_DEMO") == "1":
                from .insight_demo import demo_rows

                named = os.environ.get("INSIGHT_LOCAL_DEMO_TENANTS", "")
                tenants = tuple(t.strip() for t in named.split(",") if t.strip())
                warehouse.insert(demo_rows(tenants=tenants or ("default",)))
            _shared[""] = warehouse
        return _shared[""]


def reset_shared() -> None:
    """Forget this process's warehouse (tests: the next ``shared_warehouse`` reads the
    environment again)."""
    with _shared_lock:
        _shared.clear()
