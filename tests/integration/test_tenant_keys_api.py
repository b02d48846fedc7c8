"""A tenant's store access through the admin function (functions-framework's app loaded as
production does, a platform admin from ``ADMIN_EMAILS``), against the Firestore emulator and the
stand-ins of Cloud KMS, the Play Developer API and the App Store Server API, all over real HTTP:
uploading, rotating and deleting a tenant's Apple key (never in clear in Firestore, a log line or
an answer; KMS down or refusing: 503 and nothing written); a ciphertext moved to another tenant
does not open; look-ups keep working through a rotation; check access answers each state with its
fix; the Play service account to invite."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import tenant_fixtures as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard.adminapi import handler as admin_function
from refundguard.adminapi import tenant_keys as tenant_keys_routes
from refundguard.serializer import to_firestore
from refundguard.storeapi import CallPolicy
from refundguard.tenant_registry import TenantRegistry
from refundguard.tenants import AppleApp, Tenant
from refundguard_dev import play_api_data as data
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki
from refundguard_dev.fake_appstore_api import ApiKey, FakeAppStoreApi, new_api_key
from refundguard_dev.fake_kms import DEFAULT_KEY, FakeKms
from refundguard_dev.fake_play_api import DEFAULT_ACCOUNT, FakePlayApi, Fault
from refundguard_dev.id_tokens import AUDIENCE, CertServer
from support import STORE_API_POLICY, served

pytestmark = pytest.mark.emulator

ADMIN = "admin@example.com"
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
OTHER_BUNDLE = "com.example.unclaimed"
TENANT_PACKAGE = "com.example.creator"
FAST = CallPolicy(**{**STORE_API_POLICY.__dict__, "deadline_s": 3})


@pytest.fixture
def kms() -> Iterator[FakeKms]:
    with FakeKms() as server:
        yield server


@pytest.fixture
def key_file(play_api: FakePlayApi, kms: FakeKms, tmp_path: Path) -> Path:
    path = play_api.write_service_account_key(tmp_path / "sa.json")
    kms.trust_key_file(path)  # the deployment's one account: Play and KMS
    return path


@pytest.fixture
def env(
    emulator_env: dict[str, str],
    certs: CertServer,
    play_api: FakePlayApi,
    appstore_production: FakeAppStoreApi,
    kms: FakeKms,
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    monkeypatch.setattr(admin_function, "API_POLICY", FAST)
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    play_api.packages = {data.PACKAGE, TENANT_PACKAGE}
    return {
        "ADMIN_AUDIENCES": AUDIENCE,
        "ADMIN_EMAILS": ADMIN,
        "ADMIN_CERTS_URL": certs.url,
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play_api.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "APPLE_API_BASE_URL": appstore_production.url,
        "APPLE_API_SANDBOX_BASE_URL": appstore_production.url,
        "APPLE_ROOT_CERTS": str(root),
        "TENANT_KEYS_KMS_KEY": DEFAULT_KEY,
        "TENANT_KEYS_KMS_BASE_URL": kms.url,
    }


@pytest.fixture
def client(make_client: Any, env: dict[str, str]) -> Any:
    return make_client("admin", **env)


@pytest.fixture
def registry(store: Any) -> TenantRegistry:
    return TenantRegistry(store.client, timeout_s=5)


def add_tenant(
    registry: TenantRegistry,
    tenant_id: str,
    *,
    bundles: tuple[str, ...] = (),
    packages: tuple[str, ...] = (),
    play_api: bool = True,
) -> Tenant:
    apps = tuple(AppleApp(b, APP_APPLE_ID, ("Production",)) for b in bundles)
    tenant = Tenant(
        id=tenant_id,
        display_name=tenant_id,
        apple_apps=apps,
        play_packages=packages,
        play_api=play_api,
    )
    return registry.create(tenant, now_ms=1_700_000_000_000)


def put_key(client: Any, auth: dict[str, str], tenant_id: str, key: ApiKey, **extra: Any) -> Any:
    body = {"key_id": key.key_id, "issuer_id": key.issuer_id, "private_key": key.pem, **extra}
    return client.put(f"/tenants/{tenant_id}/apple-key", json=body, headers=auth)


def doc(registry: TenantRegistry, tenant_id: str) -> dict[str, Any]:
    return registry._tenant_ref(tenant_id).get().to_dict() or {}


def secret_parts(key: ApiKey) -> list[str]:
    """Pieces of the .p8 that must never appear anywhere: each line of its base64 body."""
    return [line for line in key.pem.strip().splitlines()[1:-1] if len(line) > 20]


def assert_nowhere(text: str, key: ApiKey) -> None:
    for part in secret_parts(key):
        assert part not in text
    assert "PRIVATE KEY-----\n" not in text


def check(client: Any, auth: dict[str, str], tenant_id: str) -> dict[str, Any]:
    response = client.post(f"/tenants/{tenant_id}:check-access", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# ---------------------------------------------------------------------------------- the key


def test_an_uploaded_key_is_sealed_never_shown_nor_logged_and_used_for_apple(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    appstore_production: FakeAppStoreApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,))
    key = appstore_production.register_key(new_api_key("CREATORA01", ISSUER))
    capsys.readouterr()
    response = put_key(client, auth, "creator-a", key)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_data(as_text=True)
    tenant = response.get_json()["tenant"]
    assert [k["key_id"] for k in tenant["apple_keys"]] == ["CREATORA01"]
    assert set(tenant["apple_keys"][0]) == {"key_id", "issuer_id", "added_at"}
    assert "sealed" not in answer and "kms1:" not in answer
    stored = doc(registry, "creator-a")
    assert stored["apple_keys"][0]["sealed"].startswith("kms1:")
    for text in (answer, json.dumps(stored, default=str), capsys.readouterr().out):
        assert_nowhere(text, key)
    # The key works: Apple's test notification is sent with it (its kid), and a look-up finds
    # the tenant's order, stamped with the tenant.
    test = client.post(
        "/apple/notifications:test",
        json={"tenant": "creator-a", "environment": "Production"},
        headers=auth,
    )
    assert test.status_code == 200, test.get_data(as_text=True)
    assert jwt.get_unverified_header(appstore_production.tokens_seen[-1])["kid"] == "CREATORA01"
    appstore_production.add_transaction(original_transaction_id="2000000000000901")
    appstore_production.add_order("ORDERA0001", "2000000000000901")
    found = client.get("/orders/ORDERA0001", headers=auth)
    assert found.status_code == 200, found.get_data(as_text=True)
    assert found.get_json()["results"][0]["entitlement"]["tenant"] == "creator-a"
    assert_nowhere(capsys.readouterr().out, key)


def test_a_ciphertext_copied_to_another_tenant_never_opens(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    appstore_production: FakeAppStoreApi,
) -> None:
    add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,))
    add_tenant(registry, "creator-b", bundles=(OTHER_BUNDLE,))
    key = appstore_production.register_key(new_api_key("CREATORA01", ISSUER))
    assert put_key(client, auth, "creator-a", key).status_code == 200
    sealed_a = doc(registry, "creator-a")["apple_keys"]
    b = registry.get("creator-b")
    assert b is not None
    stolen = {**to_firestore(b), "apple_keys": sealed_a}  # what an attacker with Firestore could do
    registry._tenant_ref("creator-b").set(stolen)
    result = check(client, auth, "creator-b")["apple"]
    assert result["state"] == "no_key" and "upload the key again" in result["fix"]
    assert check(client, auth, "creator-a")["apple"]["state"] == "ok"


def test_kms_down_is_503_and_nothing_is_written(
    client: Any, auth: dict[str, str], registry: TenantRegistry, kms: FakeKms
) -> None:
    before = add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,))
    kms.fail_next(*[Fault(status=503) for _ in range(20)])
    response = put_key(client, auth, "creator-a", new_api_key("CREATORA01", ISSUER))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"] == "kms_unavailable"
    assert registry.get("creator-a") == before


@pytest.mark.parametrize(
    ("action", "role"),
    [
        ("encrypt", "roles/cloudkms.cryptoKeyEncrypter"),
        ("decrypt", "roles/cloudkms.cryptoKeyDecrypter"),
    ],
)
def test_a_missing_kms_role_is_named(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    kms: FakeKms,
    appstore_production: FakeAppStoreApi,
    action: str,
    role: str,
) -> None:
    before = add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,))
    key = appstore_production.register_key(new_api_key("CREATORA01", ISSUER))
    if action == "decrypt":
        assert put_key(client, auth, "creator-a", key).status_code == 200
        before = registry.get("creator-a")
    kms.deny(DEFAULT_ACCOUNT, action)
    if action == "encrypt":
        response = put_key(client, auth, "creator-a", key)
        assert response.status_code == 503
        assert role in response.get_json()["message"]
    else:
        result = check(client, auth, "creator-a")["apple"]
        assert result["state"] == "unreachable" and role in result["fix"]
    assert registry.get("creator-a") == before


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.dictionaries(
            st.sampled_from(["key_id", "issuer_id", "private_key", "version", "extra"]),
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30)),
        ),
        st.builds(
            lambda kid, pem: {"key_id": kid, "issuer_id": ISSUER, "private_key": pem},
            st.text(max_size=12),
            st.text(max_size=200),
        ),
    )
)
def test_any_bad_upload_is_400_and_changes_nothing(
    client: Any, auth: dict[str, str], registry: TenantRegistry, kms: FakeKms, body: Any
) -> None:
    tenant = registry.get("creator-h") or add_tenant(registry, "creator-h", bundles=(BUNDLE_ID,))
    asked = kms.count(":encrypt")
    response = client.put("/tenants/creator-h/apple-key", json=body, headers=auth)
    assert response.status_code in (400, 409), response.get_data(as_text=True)
    assert registry.get("creator-h") == tenant and kms.count(":encrypt") == asked


def test_unknown_tenant_unknown_key_stale_version_and_too_many_keys(
    client: Any, auth: dict[str, str], registry: TenantRegistry
) -> None:
    key = new_api_key("CREATORA01", ISSUER)
    assert put_key(client, auth, "nobody", key).status_code == 404
    assert client.post("/tenants/nobody:check-access", headers=auth).status_code == 404
    tenant = add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,))
    stale = put_key(client, auth, "creator-a", key, version=tenant.version - 1)
    assert stale.status_code == 409 and stale.get_json()["error"] == "tenant_changed"
    gone = client.delete("/tenants/creator-a/apple-key/NOSUCHKEY1", headers=auth)
    assert gone.status_code == 404
    for n in range(3):
        added = put_key(client, auth, "creator-a", new_api_key(f"KEY000000{n}", ISSUER))
        assert added.status_code == 200
    full = put_key(client, auth, "creator-a", new_api_key("KEY0000009", ISSUER))
    assert full.status_code == 409 and full.get_json()["error"] == "too_many_keys"
    again = put_key(client, auth, "creator-a", new_api_key("KEY0000000", ISSUER))
    assert again.status_code == 200  # the same key id again replaces it, and it comes first
    assert [k["key_id"] for k in again.get_json()["tenant"]["apple_keys"]] == [
        "KEY0000000",
        "KEY0000002",
        "KEY0000001",
    ]


def test_rotation_while_look_ups_flow_has_no_failure_window(
    env: dict[str, str],
    auth: dict[str, str],
    registry: TenantRegistry,
    appstore_production: FakeAppStoreApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new key is uploaded and the old one deleted (then revoked at Apple) while look-ups by
    order id, each asking Apple, run in parallel: every one of them finds its order."""
    add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,))
    old = appstore_production.register_key(new_api_key("OLDKEY0001", ISSUER))
    new = appstore_production.register_key(new_api_key("NEWKEY0001", ISSUER))
    orders = [f"ROT{n:07d}" for n in range(40)]
    for n, order in enumerate(orders):
        tx = str(3_000_000_000_000_000 + n)
        appstore_production.add_transaction(original_transaction_id=tx)
        appstore_production.add_order(order, tx)
    with served("admin", env, monkeypatch) as url:
        session = requests.Session()
        headers = dict(auth)

        def call(method: str, path: str, **kw: Any) -> requests.Response:
            return session.request(method, url + path, headers=headers, timeout=20, **kw)

        body = {"key_id": old.key_id, "issuer_id": ISSUER, "private_key": old.pem}
        assert call("PUT", "/tenants/creator-a/apple-key", json=body).ok
        failures: list[str] = []
        done = threading.Event()

        def look_ups() -> None:
            own = requests.Session()
            for order in orders:
                response = own.get(f"{url}/orders/{order}", headers=headers, timeout=20)
                if response.status_code != 200:
                    failures.append(f"{order}: {response.status_code} {response.text[:200]}")
            done.set()

        worker = threading.Thread(target=look_ups)
        worker.start()
        body = {"key_id": new.key_id, "issuer_id": ISSUER, "private_key": new.pem}
        assert call("PUT", "/tenants/creator-a/apple-key", json=body).ok
        assert call("DELETE", "/tenants/creator-a/apple-key/OLDKEY0001").ok
        with appstore_production.lock:  # Apple: the old key is revoked once no longer used
            del appstore_production.keys[old.key_id]
        worker.join(60)
        assert done.is_set() and failures == []
    kids = {
        __import__("jwt").get_unverified_header(t)["kid"] for t in appstore_production.tokens_seen
    }
    assert kids == {"OLDKEY0001", "NEWKEY0001"} or kids == {"NEWKEY0001"}
    tenant = registry.get("creator-a")
    assert tenant is not None and [k.key_id for k in tenant.apple_keys] == ["NEWKEY0001"]


# ---------------------------------------------------------------------------------- check access


def test_check_access_ok_for_both_stores(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    appstore_production: FakeAppStoreApi,
) -> None:
    add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,), packages=(TENANT_PACKAGE,))
    key = appstore_production.register_key(new_api_key("CREATORA01", ISSUER))
    assert put_key(client, auth, "creator-a", key).status_code == 200
    result = check(client, auth, "creator-a")
    assert result["google"]["state"] == "ok" and result["apple"]["state"] == "ok"
    assert result["google"]["details"]["packages"] == {TENANT_PACKAGE: "ok"}
    assert result["apple"]["details"]["apps"] == {f"{BUNDLE_ID} (Production)": "ok"}


def google_error(status: int, message: str, reason: str) -> Fault:
    errors = [{"message": message, "domain": "global", "reason": reason}]
    status_name = "PERMISSION_DENIED" if status == 403 else "NOT_FOUND"
    body = {"error": {"code": status, "message": message, "status": status_name, "errors": errors}}
    return Fault(status=status, body=json.dumps(body).encode())


@pytest.mark.parametrize(
    ("setup", "state", "fix_mentions"),
    [
        ("not_invited", "not_invited", "Invite new users"),
        ("api_off", "api_off", "enable the Google Play Android Developer API"),
        ("wrong_bundle", "wrong_bundle", "package name"),
        ("unreachable", "unreachable", "check again"),
        ("key_refused", "key_refused", "deployment's own credentials"),
        ("tenant_off", "api_off", "play_api"),
    ],
)
def test_check_access_google_states(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    play_api: FakePlayApi,
    setup: str,
    state: str,
    fix_mentions: str,
) -> None:
    add_tenant(registry, "creator-g", packages=(TENANT_PACKAGE,), play_api=setup != "tenant_off")
    if setup == "not_invited":
        play_api.packages = {data.PACKAGE}
    elif setup == "api_off":
        play_api.fail_next(
            google_error(
                403,
                "Google Play Android Developer API has not been used in project 1 before or it "
                "is disabled.",
                "accessNotConfigured",
            )
        )
    elif setup == "wrong_bundle":
        play_api.fail_next(google_error(404, f"Package not found: {TENANT_PACKAGE}.", "notFound"))
    elif setup == "unreachable":
        play_api.fail_next(*[Fault(status=503) for _ in range(10)])
    elif setup == "key_refused":
        play_api.fail_next(
            Fault(
                status=400,
                target="token",
                body=b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}',
            )
        )
    google = check(client, auth, "creator-g")["google"]
    assert google["state"] == state, google
    assert fix_mentions in google["fix"], google
    if setup == "not_invited":
        assert DEFAULT_ACCOUNT in google["fix"]  # the exact account to invite
    # Kept for the store-access alert (docs/alerts.md): the state the caller was shown.
    kept = registry._client.collection("access_checks").document("creator-g").get().to_dict()
    assert kept["google"]["state"] == state


@pytest.mark.parametrize(
    ("setup", "state", "fix_mentions"),
    [
        ("no_key", "no_key", "PUT /tenants/{id}/apple-key"),
        ("key_refused", "key_refused", "Apple refused key CREATORA01"),
        ("wrong_bundle", "wrong_bundle", OTHER_BUNDLE),
        ("unreachable", "unreachable", "check again"),
        ("kms_down", "unreachable", "Cloud KMS"),
        ("no_apps", "api_off", "apple_apps"),
    ],
)
def test_check_access_apple_states(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    appstore_production: FakeAppStoreApi,
    kms: FakeKms,
    setup: str,
    state: str,
    fix_mentions: str,
) -> None:
    bundles = {"no_apps": (), "wrong_bundle": (BUNDLE_ID, OTHER_BUNDLE)}.get(setup, (BUNDLE_ID,))
    add_tenant(registry, "creator-p", bundles=bundles)
    key = new_api_key("CREATORA01", ISSUER)
    if setup != "key_refused":
        appstore_production.register_key(key)
    if setup not in ("no_key", "no_apps"):
        assert put_key(client, auth, "creator-p", key).status_code == 200
    if setup == "unreachable":
        appstore_production.fail_next(*[Fault(status=503) for _ in range(10)])
    elif setup == "kms_down":
        kms.fail_next(*[Fault(status=503) for _ in range(20)])
    apple = check(client, auth, "creator-p")["apple"]
    assert apple["state"] == state, apple
    assert fix_mentions in apple["fix"], apple
    if setup == "wrong_bundle":
        assert apple["details"]["apps"] == {
            f"{BUNDLE_ID} (Production)": "ok",
            f"{OTHER_BUNDLE} (Production)": "refused",
        }


def test_check_access_is_read_only(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    play_api: FakePlayApi,
    appstore_production: FakeAppStoreApi,
) -> None:
    add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,), packages=(TENANT_PACKAGE,))
    key = appstore_production.register_key(new_api_key("CREATORA01", ISSUER))
    put_key(client, auth, "creator-a", key)
    play_before, apple_before = len(play_api.requests), len(appstore_production.requests)
    check(client, auth, "creator-a")
    asked = [(r.method, r.path) for r in play_api.requests[play_before:] if r.path != "/token"] + [
        (r.method, r.path) for r in appstore_production.requests[apple_before:]
    ]
    assert asked == [
        ("GET", f"/androidpublisher/v3/applications/{TENANT_PACKAGE}/purchases/voidedpurchases"),
        ("POST", "/inApps/v1/notifications/history"),
    ]
    voided = next(r for r in play_api.requests[play_before:] if "voided" in r.path)
    assert voided.arg("maxResults") == "1"
    assert appstore_production.test_notifications == {}


# ---------------------------------------------------------------------------------- Play


def test_the_play_service_account_and_its_permissions(client: Any, auth: dict[str, str]) -> None:
    """Without PLAY_API_SERVICE_ACCOUNT (the fallback): the function's own account, with a note
    (the shared account: test_play_api_account.py)."""
    response = client.get("/play/service-account", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "email": DEFAULT_ACCOUNT,
        "permissions": ["View financial data", "Manage orders and subscriptions"],
        "note": tenant_keys_routes.FALLBACK_NOTE,
    }


def test_a_google_order_is_looked_up_in_the_tenant_whose_package_it_is(
    client: Any, auth: dict[str, str], registry: TenantRegistry, play_api: FakePlayApi
) -> None:
    add_tenant(registry, "creator-off", packages=("com.example.off",), play_api=False)
    add_tenant(registry, "creator-g", packages=(TENANT_PACKAGE,))
    play_api.add_order(TENANT_PACKAGE, data.order("GPA.1234-5678-9012-34567", "tok-tenant"))
    response = client.get("/orders/GPA.1234-5678-9012-34567", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    entitlement = response.get_json()["results"][0]["entitlement"]
    assert entitlement["tenant"] == "creator-g" and entitlement["purchase_id"] == "tok-tenant"
    assert play_api.count("/com.example.off/") == 0  # play_api off: never asked


# ---------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("function", ["admin", "reconcile"])
@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"TENANT_KEYS_KMS_KEY": "projects/p/keyRings/r"}, "TENANT_KEYS_KMS_KEY must be"),
        ({"TENANT_KEYS_KMS_BASE_URL": "http://kms.example"}, "TENANT_KEYS_KMS_BASE_URL must"),
        ({"APPLE_ROOT_CERTS": ""}, "APPLE_ROOT_CERTS must be set"),
    ],
)
def test_the_functions_that_open_keys_refuse_to_start_with_bad_kms_settings(
    refused_start: Any,
    env: dict[str, str],
    function: str,
    changes: dict[str, str],
    problem: str,
) -> None:
    problems = refused_start(function, **{**env, **changes})
    assert any(p.startswith(problem) for p in problems), problems


def test_check_access_stays_within_its_budget_when_a_store_is_slow(
    client: Any,
    auth: dict[str, str],
    registry: TenantRegistry,
    play_api: FakePlayApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from refundguard import store_access

    monkeypatch.setattr(store_access, "CHECK_BUDGET_S", 1.0)
    packages = (TENANT_PACKAGE, "com.example.second", "com.example.third")
    add_tenant(registry, "creator-s", packages=packages)
    play_api.fail_next(*[Fault(delay_s=1.5, path="voidedpurchases") for _ in range(3)])
    started = time.monotonic()
    google = check(client, auth, "creator-s")["google"]
    assert time.monotonic() - started < 5
    assert google["state"] == "unreachable", google["details"]
    assert set(google["details"]["packages"].values()) == {"unreachable"}
    assert "not checked: out of time" in google["details"]["store_said"].values()


# ---------------------------------------------------------------------------------- roles


ROUTES_OF = {
    "put": ("PUT", "/tenants/{t}/apple-key"),
    "delete": ("DELETE", "/tenants/{t}/apple-key/CREATORA01"),
    "check": ("POST", "/tenants/{t}:check-access"),
}


@pytest.mark.parametrize("route", sorted(ROUTES_OF))
@pytest.mark.parametrize(
    ("who", "tenant", "status"),
    [
        (tf.ACME_ADMIN, "acme", 200),
        (tf.ACME_ADMIN, "globex", 404),  # another tenant's: as if it did not exist
        (tf.ACME_ADMIN, "nosuch", 404),
        (tf.ACME_SUPPORT, "acme", 403),  # a tenant's support never touches its key
        (tf.SERVICE, "acme", 403),
        (tf.GLOBEX_ADMIN, "acme", 404),
    ],
)
def test_only_a_tenants_admins_and_platform_admins_reach_its_key_and_check(
    client: Any,
    store: Any,
    signer: Any,
    appstore_production: FakeAppStoreApi,
    capsys: pytest.CaptureFixture[str],
    route: str,
    who: str,
    tenant: str,
    status: int,
) -> None:
    tf.seed(client, signer, store)
    key = appstore_production.register_key(new_api_key("CREATORA01", ISSUER))
    body = {"key_id": key.key_id, "issuer_id": ISSUER, "private_key": key.pem}
    if route == "delete":  # a key to delete, put by the platform admin
        for t in ("acme", "globex"):
            added = tf.call(client, ADMIN, signer, "PUT", f"/tenants/{t}/apple-key", body)
            assert added.status_code == 200, added.get_json()
    before = tf.dump(store.client)
    capsys.readouterr()
    method, path = ROUTES_OF[route]
    answer = tf.call(
        client, who, signer, method, path.format(t=tenant), body if route == "put" else None
    )
    assert answer.status_code == status, answer.get_json()
    lines = tf.log_lines(capsys.readouterr().out)
    after = tf.dump(store.client)
    if status != 200:
        assert after == before  # nothing written
    elif route == "check":  # only the result, kept for the store-access alert
        assert {k: v for k, v in after.items() if not k.startswith("access_checks/")} == before
        assert f"access_checks/{tenant}" in after
    if status == 404:
        assert answer.get_json()["error"] == "no_such_tenant"
        if tenant != "nosuch":
            assert lines[-1]["audit"] is True and lines[-1]["denied"] == "other_tenant"
    for line in lines:
        assert_nowhere(json.dumps(line), key)


def test_a_suspended_tenants_admin_cannot_touch_its_key_but_a_platform_admin_can(
    client: Any, store: Any, signer: Any
) -> None:
    tf.seed(client, signer, store)
    tenant = tf.call(client, ADMIN, signer, "GET", "/tenants/acme").get_json()["tenant"]
    suspended = tf.call(
        client,
        ADMIN,
        signer,
        "PATCH",
        "/tenants/acme",
        {"version": tenant["version"], "status": "suspended"},
    )
    assert suspended.status_code == 200, suspended.get_json()
    key = new_api_key("CREATORA01", ISSUER)
    body = {"key_id": key.key_id, "issuer_id": ISSUER, "private_key": key.pem}
    refused = tf.call(client, tf.ACME_ADMIN, signer, "PUT", "/tenants/acme/apple-key", body)
    assert refused.status_code == 403 and refused.get_json()["error"] == "tenant_suspended"
    allowed = tf.call(client, ADMIN, signer, "PUT", "/tenants/acme/apple-key", body)
    assert allowed.status_code == 200, allowed.get_json()


@pytest.mark.parametrize(("who", "status"), [(tf.ACME_ADMIN, 200), (tf.ACME_SUPPORT, 403)])
def test_the_play_account_is_shown_to_whoever_onboards_a_tenant(
    client: Any, store: Any, signer: Any, who: str, status: int
) -> None:
    tf.seed(client, signer, store)
    answer = tf.call(client, who, signer, "GET", "/play/service-account")
    assert answer.status_code == status, answer.get_json()


# ---------------------------------------------------------------------------------- the CLI


def test_the_cli_uploads_a_key_from_its_file_checks_access_and_names_the_play_account(
    env: dict[str, str],
    registry: TenantRegistry,
    signer: Any,
    appstore_production: FakeAppStoreApi,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    from refundguard_admin import cli

    add_tenant(registry, "creator-a", bundles=(BUNDLE_ID,), packages=(TENANT_PACKAGE,))
    key = appstore_production.register_key(new_api_key("CREATORA01", ISSUER))
    p8 = key.write_p8(tmp_path / "SubscriptionKey_CREATORA01.p8")
    with served("admin", env, monkeypatch) as url:

        def admin(*argv: str) -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            code = cli.main(["--url", url, "--token", signer.token(ADMIN), *argv], out=out, err=err)
            return code, out.getvalue(), err.getvalue()

        code, out, err = admin(
            "apple-key", "put", "creator-a", "--key-id", key.key_id, "--issuer-id", ISSUER,
            "--p8", str(p8),
        )  # fmt: skip
        assert code == 0, err
        assert "Apple keys CREATORA01" in out and "in use: CREATORA01" in out
        code, out, err = admin("check-access", "creator-a")
        assert code == 0, err
        assert "google ok: nothing to do" in out and "apple  ok: nothing to do" in out
        assert f"{TENANT_PACKAGE}: ok" in out
        code, out, err = admin("play-account")
        assert code == 0 and DEFAULT_ACCOUNT in out and "View financial data" in out, err
        assert admin("apple-key", "put", "creator-a", "--key-id", "K")[0] == cli.EXIT_USAGE
        code, _, err = admin(
            "apple-key", "put", "creator-a", "--key-id", "K2", "--issuer-id", ISSUER,
            "--p8", str(tmp_path / "missing.p8"),
        )  # fmt: skip
        assert code == cli.EXIT_API_ERROR and "cannot read" in err
        code, out, err = admin("apple-key", "delete", "creator-a", "CREATORA01")
        assert code == 0 and "Apple keys -" in out, err
    assert_nowhere(capsys.readouterr().out, key)


def test_the_default_tenant_is_checked_with_the_environments_key_and_never_given_one(
    make_client: Any, env: dict[str, str], auth: dict[str, str], apple_api_key: ApiKey
) -> None:
    client = make_client(
        "admin",
        **env,
        PLAY_PACKAGE_NAMES=data.PACKAGE,
        APPLE_API_KEY_ID=apple_api_key.key_id,
        APPLE_API_ISSUER_ID=apple_api_key.issuer_id,
        APPLE_API_PRIVATE_KEY=apple_api_key.pem,
        APPLE_BUNDLE_IDS=BUNDLE_ID,
        APPLE_APP_APPLE_ID=str(APP_APPLE_ID),
    )
    result = check(client, auth, "default")
    assert result["google"]["state"] == "ok" and result["apple"]["state"] == "ok", result
    refused = put_key(client, auth, "default", new_api_key("CREATORA01", ISSUER))
    assert refused.status_code == 409 and refused.get_json()["error"] == "default_tenant_key"
