"""Tenants in the admin API, through functions-framework's app against the Firestore emulator:
isolation as a property (every route that names an id x every tenant staff role: another
tenant's id is the 404 of an absent one, nothing is written, the log line audits it), the role
matrix, a suspended tenant, staff management and what the roles' lists show."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard.model import Status, StoreName
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner
from tenant_fixtures import (
    ACME_ADMIN,
    ACME_SUPPORT,
    ADMIN,
    GLOBEX_ADMIN,
    GOOD_REPORT,
    INITECH_SUPPORT,
    SERVICE,
    STRANGER,
    call,
    dump,
    log_lines,
    order_of,
    purchase,
    seed,
    token_of,
)


@pytest.fixture
def client(make_client: Any, emulator_env: dict[str, str], certs: CertServer) -> Any:
    return make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )


@pytest.fixture
def seeded(client: Any, signer: TestSigner, store: Any) -> Any:
    seed(client, signer, store)
    return client


def _id_routes(tenant: str) -> list[tuple[str, str, str, Any]]:
    """(name, method, path, body) of every route that names something of ``tenant``."""
    tok = token_of(tenant)
    target = {"store": "google", "purchase_id": tok}
    return [
        ("show", "GET", f"/entitlements/google/{tok}", None),
        ("lookup", "POST", "/entitlements:lookup", target),
        ("regrant", "POST", f"/entitlements/google/{tok}/regrant", {"reason": "goodwill"}),
        ("revoke", "POST", f"/entitlements/google/{tok}/revoke", {"reason": "fraud"}),
        ("regrant_body", "POST", "/entitlements:regrant", {**target, "reason": "goodwill"}),
        ("revoke_body", "POST", "/entitlements:revoke", {**target, "reason": "fraud"}),
        (
            "regrant_into",
            "POST",
            "/entitlements:regrant",
            {"store": "google", "purchase_id": "never-seen", "reason": "x", "tenant": tenant},
        ),
        ("order", "GET", f"/orders/{order_of(tenant)}", None),
        ("consumption", "POST", "/entitlements:consumption", {**GOOD_REPORT, **target}),
        ("tenant", "GET", f"/tenants/{tenant}", None),
        ("tenant_update", "PATCH", f"/tenants/{tenant}", {"version": 1, "policy": {}}),
        ("tenant_delete", "DELETE", f"/tenants/{tenant}", None),
        ("staff", "GET", f"/tenants/{tenant}/staff", None),
        ("staff_put", "PUT", f"/tenants/{tenant}/staff/eve@example.com", {"role": "admin"}),
        ("staff_delete", "DELETE", f"/tenants/{tenant}/staff/{GLOBEX_ADMIN}", None),
        ("backfill", "GET", f"/tenants/{tenant}/entitlements", None),
    ]


ROUTE_NAMES = [r[0] for r in _id_routes("globex")]
#: Tenant staff of acme or initech; globex is "another tenant" to each.
STAFF_ROLES = [ACME_ADMIN, ACME_SUPPORT, INITECH_SUPPORT]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(who=st.sampled_from(STAFF_ROLES), route=st.sampled_from(ROUTE_NAMES))
def test_another_tenants_ids_are_404_write_nothing_and_are_audited(
    seeded: Any,
    signer: TestSigner,
    store: Any,
    capsys: pytest.CaptureFixture[str],
    who: str,
    route: str,
) -> None:
    name, method, path, body = next(r for r in _id_routes("globex") if r[0] == route)
    before = dump(store.client)
    capsys.readouterr()
    answer = call(seeded, who, signer, method, path, body)
    assert answer.status_code == 404, (who, name, answer.get_json())
    assert answer.get_json()["error"] in {"not_found", "order_not_found", "no_such_tenant"}
    assert "globex" not in answer.get_data(as_text=True).replace("no tenant globex", "")
    assert dump(store.client) == before, (who, name)
    (line,) = [x for x in log_lines(capsys.readouterr().out) if x.get("action")]
    assert line["audit"] is True and line["denied"] == "other_tenant", line
    assert line["actor"] == who and line["http_status"] == 404


#: A re-grant or revoke of an absent purchase creates it: not comparable.
CREATING = {"regrant", "revoke", "regrant_body", "revoke_body"}


@pytest.mark.parametrize("route", [r for r in ROUTE_NAMES if r not in CREATING])
def test_another_tenants_id_answers_as_an_absent_one(
    seeded: Any, signer: TestSigner, route: str
) -> None:
    """The 404 of another tenant's id is the 404 of an id that exists nowhere: same status,
    same code (never a confirmation)."""
    theirs = next(r for r in _id_routes("globex") if r[0] == route)
    nowhere = next(r for r in _id_routes("nowhere-9") if r[0] == route)
    a = call(seeded, ACME_ADMIN, signer, theirs[1], theirs[2], theirs[3])
    b = call(seeded, ACME_ADMIN, signer, nowhere[1], nowhere[2], nowhere[3])
    assert (a.status_code, a.get_json()["error"]) == (b.status_code, b.get_json()["error"])


# ------------------------------------------------------------------------------- role matrix

#: route -> expected status for: platform admin, service, acme admin, acme support,
#: initech support (each on its own tenant's things; platform roles on acme's).
MATRIX: dict[str, tuple[int, int, int, int, int]] = {
    "show": (200, 200, 200, 200, 200),
    "regrant": (200, 403, 200, 403, 200),
    "consumption": (200, 200, 200, 403, 403),
    "tenant": (200, 200, 200, 200, 200),
    "staff": (200, 403, 200, 403, 403),
    "backfill": (200, 200, 403, 403, 403),
    "tenant_delete": (200, 403, 403, 403, 403),
}
WHO = [ADMIN, SERVICE, ACME_ADMIN, ACME_SUPPORT, INITECH_SUPPORT]


@pytest.mark.parametrize("route", sorted(MATRIX))
def test_role_matrix_on_own_tenant(seeded: Any, signer: TestSigner, route: str) -> None:
    for who, expected in zip(WHO, MATRIX[route], strict=True):
        tenant = "initech" if who == INITECH_SUPPORT else "acme"
        _, method, path, body = next(r for r in _id_routes(tenant) if r[0] == route)
        if route == "tenant_delete" and expected == 200:
            continue  # checked below, once the others were refused
        answer = call(seeded, who, signer, method, path, body)
        assert answer.status_code == expected, (who, route, answer.get_json())
        if expected == 403:
            assert answer.get_json()["error"] in {"not_allowed", "platform_admin_only"}


@pytest.mark.parametrize(
    ("who", "status"),
    [(ADMIN, 200), (SERVICE, 403), (ACME_ADMIN, 403), (ACME_SUPPORT, 403)],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/events/unpublished", None),
        ("POST", "/migrations/tenant-field:run", {}),
        ("POST", "/tenants", {"id": "newco", "display_name": "New"}),
        ("GET", "/staff", None),
        ("PUT", "/staff/x@example.com", {"platform": "service"}),
    ],
)
def test_platform_routes_are_platform_admins_only(
    seeded: Any, signer: TestSigner, who: str, status: int, method: str, path: str, body: Any
) -> None:
    answer = call(seeded, who, signer, method, path, body)
    expected = 201 if (status == 200 and method == "POST" and path == "/tenants") else status
    assert answer.status_code == expected, answer.get_json()
    if status == 403:
        assert answer.get_json()["error"] == "platform_admin_only"


def test_a_stranger_is_not_an_admin_and_learns_nothing(seeded: Any, signer: TestSigner) -> None:
    for _, method, path, body in _id_routes("acme"):
        answer = call(seeded, STRANGER, signer, method, path, body)
        assert answer.status_code == 403 and answer.get_json()["error"] == "not_an_admin"
    assert call(seeded, STRANGER, signer, "GET", "/me").status_code == 403


def test_tenant_admin_changes_policy_but_not_apps(
    seeded: Any, signer: TestSigner, store: Any
) -> None:
    changed = call(
        seeded,
        ACME_ADMIN,
        signer,
        "PATCH",
        "/tenants/acme",
        {"version": 1, "support_can_act": True},
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["tenant"]["support_can_act"] is True
    assert changed.get_json()["tenant"]["version"] == 2
    apps = {"version": 2, "play_packages": ["com.acme.other"]}
    refused = call(seeded, ACME_ADMIN, signer, "PATCH", "/tenants/acme", apps)
    assert refused.status_code == 403 and refused.get_json()["error"] == "platform_admin_only"
    stale = call(seeded, ADMIN, signer, "PATCH", "/tenants/acme", {"version": 1, "policy": {}})
    assert stale.status_code == 409 and stale.get_json()["error"] == "tenant_changed"
    # now acme's support may act (this instance forgot what it had cached)
    regrant = _id_routes("acme")[2]
    assert call(seeded, ACME_SUPPORT, signer, *regrant[1:]).status_code == 200


def test_regrant_of_an_unseen_purchase_takes_the_staffs_tenant(
    seeded: Any, signer: TestSigner, store: Any
) -> None:
    body = {"store": "google", "purchase_id": "fresh-1", "reason": "paid by invoice"}
    answer = call(seeded, ACME_ADMIN, signer, "POST", "/entitlements:regrant", body)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["entitlement"]["tenant"] == "acme"
    assert store.get(StoreName.GOOGLE, "fresh-1").tenant == "acme"
    # a platform admin names the tenant; unnamed: default
    named = {**body, "purchase_id": "fresh-2", "tenant": "initech"}
    assert call(seeded, ADMIN, signer, "POST", "/entitlements:regrant", named).status_code == 200
    assert store.get(StoreName.GOOGLE, "fresh-2").tenant == "initech"
    unnamed = {**body, "purchase_id": "fresh-3"}
    assert call(seeded, ADMIN, signer, "POST", "/entitlements:regrant", unnamed).status_code == 200
    assert store.get(StoreName.GOOGLE, "fresh-3").tenant == "default"
    # a store event later names the app's tenant: it wins
    purchase(store, "globex", "fresh-3", event_id="later")
    assert store.get(StoreName.GOOGLE, "fresh-3").tenant == "globex"
    # naming another tenant for an existing purchase is refused, nothing written
    wrong = {**body, "purchase_id": "fresh-2", "tenant": "acme"}
    answer = call(seeded, ADMIN, signer, "POST", "/entitlements:regrant", wrong)
    assert answer.status_code == 409 and answer.get_json()["error"] == "tenant_mismatch"
    missing = {**body, "purchase_id": "fresh-4", "tenant": "no-such"}
    answer = call(seeded, ADMIN, signer, "POST", "/entitlements:regrant", missing)
    assert answer.status_code == 404 and store.get(StoreName.GOOGLE, "fresh-4") is None


def test_staff_of_several_tenants_must_name_one(seeded: Any, signer: TestSigner) -> None:
    put = call(
        seeded, ADMIN, signer, "PUT", f"/tenants/initech/staff/{ACME_ADMIN}", {"role": "admin"}
    )
    assert put.status_code == 200
    body = {"store": "google", "purchase_id": "fresh-9", "reason": "x"}
    answer = call(seeded, ACME_ADMIN, signer, "POST", "/entitlements:regrant", body)
    assert answer.status_code == 400 and answer.get_json()["error"] == "tenant_required"
    body["tenant"] = "initech"
    answer = call(seeded, ACME_ADMIN, signer, "POST", "/entitlements:regrant", body)
    assert answer.status_code == 200 and answer.get_json()["entitlement"]["tenant"] == "initech"


# ------------------------------------------------------------------------------- lists


def test_lists_show_only_the_callers_tenants(seeded: Any, signer: TestSigner) -> None:
    requests = call(seeded, ACME_ADMIN, signer, "GET", "/refund-requests").get_json()["requests"]
    assert [r["tenant"] for r in requests] == ["acme"]
    every = call(seeded, ADMIN, signer, "GET", "/refund-requests").get_json()["requests"]
    assert sorted(r["tenant"] for r in every) == ["acme", "globex", "initech"]
    me = call(seeded, ACME_ADMIN, signer, "GET", "/me").get_json()
    assert me == {
        "email": ACME_ADMIN,
        "platform_role": None,
        "tenants": [{"id": "acme", "display_name": "Acme", "status": "active", "role": "admin"}],
    }
    mine = call(seeded, ACME_SUPPORT, signer, "GET", "/tenants").get_json()
    assert [t["id"] for t in mine["tenants"]] == ["acme"]
    admin_me = call(seeded, ADMIN, signer, "GET", "/me").get_json()
    assert admin_me["platform_role"] == "admin"
    assert {t["id"]: t["role"] for t in admin_me["tenants"]} == {
        "default": "platform_admin",
        "acme": "platform_admin",
        "globex": "platform_admin",
        "initech": "platform_admin",
    }
    assert call(seeded, ACME_SUPPORT, signer, "GET", "/refund-requests").status_code == 403


def test_tenants_page_with_a_stable_token(seeded: Any, signer: TestSigner) -> None:
    first = call(seeded, ADMIN, signer, "GET", "/tenants?limit=2").get_json()
    assert [t["id"] for t in first["tenants"]] == ["acme", "globex"]
    assert "sealed" not in str(first)
    rest = call(
        seeded, ADMIN, signer, "GET", f"/tenants?limit=2&page_token={first['next_page_token']}"
    )
    assert [t["id"] for t in rest.get_json()["tenants"]] == ["initech"]
    assert rest.get_json()["next_page_token"] is None
    bad = call(seeded, ADMIN, signer, "GET", "/tenants?page_token=bm9wZQ")
    assert bad.status_code == 400 and bad.get_json()["error"] == "bad_page_token"


# ------------------------------------------------------------------------------- suspended


def test_a_suspended_tenants_staff_cannot_act_its_refunds_still_apply(
    seeded: Any, signer: TestSigner, store: Any
) -> None:
    suspend = call(
        seeded, ADMIN, signer, "PATCH", "/tenants/acme", {"version": 1, "status": "suspended"}
    )
    assert suspend.status_code == 200 and suspend.get_json()["tenant"]["status"] == "suspended"
    for route in ("show", "regrant", "consumption", "tenant", "staff"):
        _, method, path, body = next(r for r in _id_routes("acme") if r[0] == route)
        answer = call(seeded, ACME_ADMIN, signer, method, path, body)
        assert answer.status_code == 403, (route, answer.get_json())
        assert answer.get_json()["error"] == "tenant_suspended"
        # another tenant's ids stay a plain 404
        _, method, path, body = next(r for r in _id_routes("globex") if r[0] == route)
        assert call(seeded, ACME_ADMIN, signer, method, path, body).status_code == 404
    answer = call(seeded, ACME_SUPPORT, signer, "GET", "/refund-requests")
    assert answer.status_code == 403 and answer.get_json()["error"] == "tenant_suspended"
    me = call(seeded, ACME_ADMIN, signer, "GET", "/me").get_json()
    assert me["tenants"][0]["status"] == "suspended"
    # a refund still revokes; platform roles still act
    purchase(store, "acme", token_of("acme"), effect=Status.REVOKED, event_id="refund")
    assert store.get(StoreName.GOOGLE, token_of("acme")).status is Status.REVOKED
    show = _id_routes("acme")[0]
    assert call(seeded, ADMIN, signer, *show[1:]).status_code == 200
    assert call(seeded, SERVICE, signer, *show[1:]).status_code == 200
    resume = call(
        seeded, ADMIN, signer, "PATCH", "/tenants/acme", {"version": 2, "status": "active"}
    )
    assert resume.status_code == 200
    assert call(seeded, ACME_ADMIN, signer, *show[1:]).status_code == 200


# ------------------------------------------------------------------------------- staff


def test_staff_management(seeded: Any, signer: TestSigner) -> None:
    newbie = "nina@acme.example"
    assert call(seeded, newbie, signer, "GET", "/me").status_code == 403
    put = call(
        seeded, ACME_ADMIN, signer, "PUT", f"/tenants/acme/staff/{newbie}", {"role": "support"}
    )
    assert put.status_code == 200 and put.get_json() == {"email": newbie, "role": "support"}
    listed = call(seeded, ACME_ADMIN, signer, "GET", "/tenants/acme/staff").get_json()["staff"]
    assert {s["email"]: s["role"] for s in listed} == {
        ACME_ADMIN: "admin",
        ACME_SUPPORT: "support",
        newbie: "support",
    }
    assert call(seeded, newbie, signer, "GET", _id_routes("acme")[0][2]).status_code == 200
    bad_role = call(
        seeded, ACME_ADMIN, signer, "PUT", f"/tenants/acme/staff/{newbie}", {"role": "owner"}
    )
    assert bad_role.status_code == 400 and bad_role.get_json()["error"] == "bad_role"
    bad_email = call(
        seeded, ACME_ADMIN, signer, "PUT", "/tenants/acme/staff/nobody", {"role": "admin"}
    )
    assert bad_email.status_code == 400 and bad_email.get_json()["error"] == "bad_email"
    gone = call(seeded, ACME_ADMIN, signer, "DELETE", f"/tenants/acme/staff/{newbie}")
    assert gone.status_code == 200
    assert call(seeded, newbie, signer, "GET", "/me").status_code == 403
    again = call(seeded, ACME_ADMIN, signer, "DELETE", f"/tenants/acme/staff/{newbie}")
    assert again.status_code == 404
    # platform roles: ADMIN_EMAILS are fixed
    fixed = call(seeded, ADMIN, signer, "PUT", f"/staff/{ADMIN}", {"platform": None})
    assert fixed.status_code == 409 and fixed.get_json()["error"] == "bootstrap_admin"
    listed = call(seeded, ADMIN, signer, "GET", "/staff").get_json()["staff"]
    assert listed == [{"email": SERVICE, "platform_role": "service"}]
    promoted = call(seeded, ADMIN, signer, "PUT", f"/staff/{ACME_SUPPORT}", {"platform": "admin"})
    assert promoted.status_code == 200 and promoted.get_json()["tenants"] == {"acme": "support"}
    assert call(seeded, ACME_SUPPORT, signer, "GET", "/events/unpublished").status_code == 200
    assert call(seeded, ADMIN, signer, "DELETE", f"/staff/{ACME_SUPPORT}").status_code == 200
    assert call(seeded, ACME_SUPPORT, signer, "GET", "/me").status_code == 403


def test_a_staff_change_reaches_other_instances_within_the_cache_time(
    seeded: Any, signer: TestSigner, make_client: Any, certs: CertServer
) -> None:
    """Another instance (a second app) reads ``staff/{email}`` itself; what it cached it keeps
    for at most STAFF_CACHE_SECONDS, what it never read it reads now."""
    other = make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )
    newbie = "olga@acme.example"
    assert call(other, newbie, signer, "GET", "/me").status_code == 403
    call(seeded, ADMIN, signer, "PUT", f"/tenants/acme/staff/{newbie}", {"role": "admin"})
    assert call(seeded, newbie, signer, "GET", "/me").status_code == 200
    assert call(other, newbie, signer, "GET", "/me").status_code == 403  # its cache, <= 60 s
    fresh = make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )
    assert call(fresh, newbie, signer, "GET", "/me").status_code == 200


def test_the_environments_apps_are_the_default_tenant_and_no_one_elses(
    make_client: Any, emulator_env: dict[str, str], certs: CertServer, signer: TestSigner
) -> None:
    """A deployment configured the old way: its apps are tenant ``default``, shown as such, and
    no registered tenant can claim them (nothing of the refused tenant is written)."""
    client = make_client(
        "admin",
        ADMIN_AUDIENCES=AUDIENCE,
        ADMIN_EMAILS=ADMIN,
        ADMIN_CERTS_URL=certs.url,
        PLAY_PACKAGE_NAMES="com.env.app",
        APPLE_BUNDLE_IDS="com.env.ios",
        APPLE_APP_APPLE_ID="123",
    )
    for apps in (
        {"play_packages": ["com.env.app"]},
        {"apple_apps": [{"bundle_id": "com.env.ios", "environments": ["Sandbox"]}]},
    ):
        body = {"id": "grabber", "display_name": "Grabber", **apps}
        refused = call(client, ADMIN, signer, "POST", "/tenants", body)
        assert refused.status_code == 409 and refused.get_json()["error"] == "app_claimed"
        assert call(client, ADMIN, signer, "GET", "/tenants/grabber").status_code == 404
    default = call(client, ADMIN, signer, "GET", "/tenants/default").get_json()["tenant"]
    assert default["play_packages"] == ["com.env.app"]
    assert [a["bundle_id"] for a in default["apple_apps"]] == ["com.env.ios"]


def test_a_dry_run_shows_what_each_pending_request_would_get_and_writes_nothing(
    seeded: Any, signer: TestSigner, store: Any
) -> None:
    """Proposed rules against acme's pending request: the answer and the rule that decided it,
    nothing written or sent; another tenant's is a 404; rules a store would refuse are a 400."""
    from refundguard.refund_store import RefundStore
    from refundguard.refunds import Consumption, RefundRequest
    from tenant_fixtures import now_ms

    refunds = RefundStore(store.client, timeout_s=store.deadline_s)
    entitlement = f"google:{token_of('acme')}"
    refunds.record(
        RefundRequest(
            "google:acme-review",
            "google_refund_review",
            store="google",
            environment="Production",
            entitlement_id=entitlement,
            purchase_id=token_of("acme"),
            app="com.acme.app",
            received_ms=now_ms(),
            deadline_ms=now_ms() + 3_600_000,
            pending_refund_token="prt-acme",
            tenant="acme",
        )
    )
    refunds.report(Consumption(entitlement, True, "DELIVERED", False, 70_000))
    rules = [
        {"name": "vip", "answer": "skip", "products": ["vip.*"]},
        {"name": "heavy", "answer": "decline", "min_consumed_percent": 60},
    ]
    before = dump(store.client)
    run = call(
        seeded, ACME_ADMIN, signer, "POST", "/refund-requests:dry-run",
        {"tenant": "acme", "refund_rules": rules},
    )  # fmt: skip
    assert run.status_code == 200, run.get_json()
    (result,) = [r for r in run.get_json()["results"] if r["request"]["id"] == "google:acme-review"]
    assert (result["action"], result["rule"]) == ("answer", "heavy")
    assert result["answer"]["refundPreference"] == "DECLINE"
    assert "prt-acme" not in run.get_data(as_text=True)  # the token is never shown
    assert dump(store.client) == before
    # Without proposed rules: the tenant's (none), so the thresholds decide.
    plain = call(seeded, ACME_ADMIN, signer, "POST", "/refund-requests:dry-run", {"tenant": "acme"})
    (result,) = [
        r for r in plain.get_json()["results"] if r["request"]["id"] == "google:acme-review"
    ]
    assert result["rule"] in (None, "thresholds")
    other = call(
        seeded, ACME_ADMIN, signer, "POST", "/refund-requests:dry-run", {"tenant": "globex"}
    )
    assert other.status_code == 404
    bad = [{"name": "x", "answer": "prorated"}]
    refused = call(
        seeded, ACME_ADMIN, signer, "POST", "/refund-requests:dry-run",
        {"tenant": "acme", "refund_rules": bad},
    )  # fmt: skip
    assert refused.status_code == 400 and refused.get_json()["error"] == "bad_rules"
