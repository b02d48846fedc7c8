"""Offline check of infra/firestore_indexes.tf: every tenant-scoped query that Firestore cannot
answer from its automatic single-field indexes has its composite index declared, on the ledger
database, for one collection (query scope COLLECTION), ending with ``__name__``."""

from __future__ import annotations

from pathlib import Path

import pytest
from refundguard_dev.terraform_eval import Terraform, ref

INFRA = Path(__file__).resolve().parents[2] / "infra"
#: (collection, [(field, order), ...]) of each query: backfill (with and without ?status=) and
#: the refund requests of tenant staff.
QUERIES = [
    ("entitlements", [("tenant", "ASCENDING"), ("updated_ms", "ASCENDING")]),
    (
        "entitlements",
        [("tenant", "ASCENDING"), ("status", "ASCENDING"), ("updated_ms", "ASCENDING")],
    ),
    ("refund_requests", [("tenant", "ASCENDING"), ("received_ms", "DESCENDING")]),
]


@pytest.fixture(scope="module")
def indexes() -> list[dict]:
    return list(Terraform(INFRA).of_type("google_firestore_index").values())


def _fields(index: dict) -> list[tuple[str, str]]:
    return [(f["field_path"], f["order"]) for f in index["fields"]]


@pytest.mark.parametrize(("collection", "fields"), QUERIES)
def test_each_tenant_query_has_its_index(
    indexes: list[dict], collection: str, fields: list[tuple[str, str]]
) -> None:
    found = [i for i in indexes if i["collection"] == collection and _fields(i)[:-1] == fields]
    assert len(found) == 1, (collection, fields)
    (index,) = found
    assert index["database"] == ref("google_firestore_database.ledger.name")
    assert index["project"] == ref("var.project_id")
    assert index["query_scope"] == "COLLECTION"
    assert _fields(index)[-1] == ("__name__", fields[-1][1])


def test_no_index_is_declared_that_no_query_uses(indexes: list[dict]) -> None:
    """The tenant-scoped ones (other indexes serve other queries: alerts' deadlines, run
    records, each tested with its query)."""
    mine = {collection for collection, _ in QUERIES}
    declared = sorted(
        (i["collection"], _fields(i)[:-1])
        for i in indexes
        if i["collection"] in mine and _fields(i)[0][0] == "tenant"
    )
    assert declared == sorted(QUERIES)
