"""The backfill listing (``GET /tenants/{id}/entitlements``) paged while entitlements change and
appear, and the upgrade's migration (``POST /migrations/tenant-field:run``) over documents written
the way refundguard wrote them before tenants (no ``tenant`` field): idempotent and resumable."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard.model import Entitlement, Status
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner
from tenant_fixtures import (
    ACME_ADMIN,
    ADMIN,
    SERVICE,
    call,
    now_ms,
    old_entitlement,
    old_request,
    purchase,
    seed,
)


@pytest.fixture
def client(make_client: Any, emulator_env: dict[str, str], certs: CertServer) -> Any:
    return make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )


def page_through(
    client: Any, signer: TestSigner, path: str, *, between: Any = None
) -> list[dict[str, Any]]:
    """Every entitlement of the listing, page after page (``between(n)`` after page n)."""
    seen: list[dict[str, Any]] = []
    token = None
    for n in range(1000):
        query = path + (f"&page_token={token}" if token else "")
        answer = call(client, SERVICE, signer, "GET", query)
        assert answer.status_code == 200, answer.get_json()
        seen += answer.get_json()["entitlements"]
        token = answer.get_json()["next_page_token"]
        if token is None:
            return seen
        if between is not None:
            between(n)
    raise AssertionError("the listing never ended")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    page=st.integers(min_value=1, max_value=9),
    changes=st.lists(st.tuples(st.integers(0, 39), st.booleans()), max_size=12),
    seed_value=st.integers(0, 2**16),
)
def test_backfill_pages_with_concurrent_writes_miss_nothing_and_repeat_no_version(
    client: Any,
    signer: TestSigner,
    store: Any,
    emulator_env: dict[str, str],
    page: int,
    changes: list[tuple[int, bool]],
    seed_value: int,
) -> None:
    """Entitlements change (revoked, re-bought) and appear while a platform pages through a
    tenant: every entitlement there at the start is seen, none of another tenant, no version
    twice, and an entitlement changed during the listing is seen in its newest state."""
    if call(client, SERVICE, signer, "GET", "/me").status_code == 403:
        seed(client, signer, store)
    tenant = f"bf-{uuid.uuid4().hex[:8]}"  # a tenant of its own per example
    rng = random.Random(seed_value)
    tokens = [f"{tenant}-{i:02d}" for i in range(40)]
    base = now_ms() - 3_600_000
    for i, tok in enumerate(tokens):
        purchase(store, tenant, tok, at_ms=base + i)
        if i % 5 == 0:
            purchase(store, "globex", f"{tenant}-globex-{i:02d}", at_ms=base + i)
    start = {e.purchase_id for e in _all(store, tenant)}
    assert len(start) == 40
    pending = list(changes)
    created: list[str] = []

    def between(n: int) -> None:
        if not pending:
            return
        index, revoke = pending.pop(0)
        tok = tokens[index]
        effect = Status.REVOKED if revoke else Status.ACTIVE
        purchase(store, tenant, tok, effect=effect, event_id=f"chg-{n}-{rng.random()}")
        if rng.random() < 0.3:
            new = f"{tenant}-new-{n}"
            purchase(store, tenant, new)
            created.append(new)

    seen = page_through(
        client, signer, f"/tenants/{tenant}/entitlements?limit={page}", between=between
    )
    assert {e["tenant"] for e in seen} == {tenant}
    versions = [(e["purchase_id"], e["updated_ms"]) for e in seen]
    assert len(versions) == len(set(versions)), "a version was listed twice"
    ids = {e["purchase_id"] for e in seen}
    assert start <= ids, f"missed {sorted(start - ids)}"
    assert set(created) <= ids
    newest: dict[str, dict[str, Any]] = {}
    for e in seen:
        newest[e["purchase_id"]] = e
    for e in _all(store, tenant):
        assert newest[e.purchase_id]["updated_ms"] == e.updated_ms
        assert newest[e.purchase_id]["status"] == e.status.value
    assert "history" not in seen[0]


def _all(store: Any, tenant: str) -> list[Entitlement]:
    return [e for e in store.list_for_tenant(tenant, limit=10_000) if e.tenant == tenant]


def test_backfill_filters_and_its_token_belongs_to_its_listing(
    client: Any, signer: TestSigner, store: Any
) -> None:
    seed(client, signer, store)
    t0 = now_ms()
    for i in range(5):
        purchase(store, "acme", f"acme-f{i}", effect=Status.REVOKED if i % 2 else Status.ACTIVE)
    revoked = page_through(client, signer, "/tenants/acme/entitlements?status=revoked&limit=1")
    assert sorted(e["purchase_id"] for e in revoked) == ["acme-f1", "acme-f3"]
    since = f"{_iso(t0)}"
    recent = page_through(client, signer, f"/tenants/acme/entitlements?updated_since={since}")
    assert sorted(e["purchase_id"] for e in recent) == [f"acme-f{i}" for i in range(5)]
    first = call(client, SERVICE, signer, "GET", "/tenants/acme/entitlements?limit=1").get_json()
    other = f"/tenants/acme/entitlements?status=active&page_token={first['next_page_token']}"
    answer = call(client, SERVICE, signer, "GET", other)
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_page_token"
    for bad in ("status=gone", "updated_since=yesterday", "updated_since=2026-01-01T00:00:00"):
        answer = call(client, SERVICE, signer, "GET", f"/tenants/acme/entitlements?{bad}")
        assert answer.status_code == 400, bad
    # a tenant admin is not the platform's service: 403 on their own, 404 on another's
    assert call(client, ACME_ADMIN, signer, "GET", "/tenants/acme/entitlements").status_code == 403
    assert (
        call(client, ACME_ADMIN, signer, "GET", "/tenants/globex/entitlements").status_code == 404
    )


def _iso(ms: int) -> str:
    from refundguard.serializer import ms_to_iso

    return ms_to_iso(ms)


# ------------------------------------------------------------------------------- migration


def migrate_all(client: Any, signer: TestSigner, limit: int, token: str | None = None) -> Any:
    updated = scanned = pages = 0
    while True:
        body: dict[str, Any] = {"limit": limit}
        if token:
            body["page_token"] = token
        answer = call(client, ADMIN, signer, "POST", "/migrations/tenant-field:run", body)
        assert answer.status_code == 200, answer.get_json()
        got = answer.get_json()
        updated, scanned, pages = updated + got["updated"], scanned + got["scanned"], pages + 1
        token = got["next_page_token"]
        if token is None:
            return updated, scanned, pages


def test_migration_stamps_old_documents_idempotent_and_resumable(
    client: Any, signer: TestSigner, store: Any
) -> None:
    for i in range(7):
        old_entitlement(store, f"old-{i}")
    old_entitlement(store, "new-acme", tenant="acme")
    for i in range(3):
        old_request(store, f"google:req-{i}")
    listing = "/tenants/default/entitlements"
    before = call(client, ADMIN, signer, "GET", listing).get_json()["entitlements"]
    assert before == []  # invisible to tenant == default until migrated
    shown = call(client, ADMIN, signer, "GET", "/entitlements/google/old-0").get_json()
    assert shown["entitlement"]["tenant"] == "default"  # though read back as default
    # one page, then "the process died": resume from its token
    first = call(
        client, ADMIN, signer, "POST", "/migrations/tenant-field:run", {"limit": 3}
    ).get_json()
    # document id order: google:new-acme (stamped already), google:old-0, google:old-1
    assert first["updated"] == 2 and first["scanned"] == 3
    rest = migrate_all(client, signer, 3, first["next_page_token"])
    assert rest[:2] == (5 + 3, 5 + 3)  # the other old entitlements, then the requests
    docs = store.client.collection("entitlements").stream()
    tenants = {d.id: d.to_dict().get("tenant") for d in docs}
    assert tenants == {
        **{f"google:old-{i}": "default" for i in range(7)},
        "google:new-acme": "acme",
    }
    requests = {
        d.id: d.to_dict().get("tenant") for d in store.client.collection("refund_requests").stream()
    }
    assert set(requests.values()) == {"default"}
    after = call(client, ADMIN, signer, "GET", listing).get_json()["entitlements"]
    assert sorted(e["purchase_id"] for e in after) == [f"old-{i}" for i in range(7)]
    assert migrate_all(client, signer, 4)[:2] == (0, 11)  # idempotent: nothing more to do
    answer = call(
        client, ADMIN, signer, "POST", "/migrations/tenant-field:run", {"page_token": "x"}
    )
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_page_token"
