"""The one Play API service account (``PLAY_API_SERVICE_ACCOUNT``) through the functions'
production entry points (functions-framework's apps), against the Firestore emulator and the
Play Developer API's stand-in, which plays IAM's ``generateAccessToken`` too, all over real HTTP:
the function's own account (a key file) impersonates the Play API account, the only one invited.
The admin function names that account (``GET /play/service-account``, and the CLI) and checks
access as it; the Play function verifies purchases as it; IAM refusing or failing is answered as
the configuration error or the outage it is (503: Pub/Sub retries; nothing written), and the
redelivery after the fix applies it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from refundguard.adminapi import handler as admin_function
from refundguard.adminapi import tenant_keys as tenant_keys_routes
from refundguard.model import Status, StoreName
from refundguard.play import function as play_function
from refundguard.playstore import judge as play_judge
from refundguard.reconcile import function as reconcile_function
from refundguard.storeapi import CallPolicy
from refundguard.tenant_registry import TenantRegistry
from refundguard.tenants import Tenant
from refundguard_dev import play_api_data as data
from refundguard_dev.fake_play_api import DEFAULT_ACCOUNT, FakePlayApi, Fault
from refundguard_dev.id_tokens import AUDIENCE, CertServer
from refundguard_dev.play_messages import PACKAGE, play_request, post
from support import STORE_API_POLICY, served

pytestmark = pytest.mark.emulator

PLAY_ACCOUNT = "refundguard-play-api@demo-refundguard.iam.gserviceaccount.com"
ADMIN = "admin@example.com"
TENANT_PACKAGE = "com.example.creator"
ORDER = "GPA.3300-0000-0000-00001"
PERMISSIONS = ["View financial data", "Manage orders and subscriptions"]
FAST = CallPolicy(**{**STORE_API_POLICY.__dict__, "deadline_s": 3})


@pytest.fixture
def play_env(play_api: FakePlayApi, tmp_path: Path) -> dict[str, str]:
    """The function's own account (the key file's) may mint the Play API account's tokens; only
    the Play API account is invited in the Play Console."""
    key = play_api.write_service_account_key(tmp_path / "sa.json")
    play_api.add_service_account(PLAY_ACCOUNT, token_creators=[DEFAULT_ACCOUNT])
    play_api.invited = {PLAY_ACCOUNT}
    play_api.packages = {PACKAGE, TENANT_PACKAGE}
    return {
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play_api.url,
        "PLAY_API_SERVICE_ACCOUNT": PLAY_ACCOUNT,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
    }


@pytest.fixture
def admin_env(
    emulator_env: dict[str, str],
    certs: CertServer,
    play_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    monkeypatch.setattr(admin_function, "API_POLICY", FAST)
    return {
        **play_env,
        "ADMIN_AUDIENCES": AUDIENCE,
        "ADMIN_EMAILS": ADMIN,
        "ADMIN_CERTS_URL": certs.url,
        "PLAY_PACKAGE_NAMES": PACKAGE,
    }


@pytest.fixture
def registry(store: Any) -> TenantRegistry:
    return TenantRegistry(store.client, timeout_s=5)


def add_tenant(registry: TenantRegistry, tenant_id: str) -> Tenant:
    tenant = Tenant(
        id=tenant_id, display_name=tenant_id, play_packages=(TENANT_PACKAGE,), play_api=True
    )
    return registry.create(tenant, now_ms=1_700_000_000_000)


def check(client: Any, auth: dict[str, str], tenant_id: str) -> dict[str, Any]:
    response = client.post(f"/tenants/{tenant_id}:check-access", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["google"]


# ----------------------------------------------------------------------------- the admin function


def test_the_account_to_invite_is_the_one_every_function_calls_as(
    make_client: Any, admin_env: dict[str, str], auth: dict[str, str], play_api: FakePlayApi
) -> None:
    client = make_client("admin", **admin_env)
    response = client.get("/play/service-account", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"email": PLAY_ACCOUNT, "permissions": PERMISSIONS}
    assert play_api.iam_requests == []  # named from the setting: nothing asked of Google


def test_the_fallback_is_the_functions_own_account_with_a_note(
    make_client: Any, admin_env: dict[str, str], auth: dict[str, str]
) -> None:
    client = make_client("admin", **{**admin_env, "PLAY_API_SERVICE_ACCOUNT": ""})
    answer = client.get("/play/service-account", headers=auth).get_json()
    assert answer["email"] == DEFAULT_ACCOUNT and answer["permissions"] == PERMISSIONS
    assert answer["note"] == tenant_keys_routes.FALLBACK_NOTE
    assert "PLAY_API_SERVICE_ACCOUNT" in answer["note"]


def test_check_access_calls_as_the_account(
    make_client: Any,
    admin_env: dict[str, str],
    auth: dict[str, str],
    registry: TenantRegistry,
    play_api: FakePlayApi,
) -> None:
    add_tenant(registry, "creator-a")
    client = make_client("admin", **admin_env)
    google = check(client, auth, "creator-a")
    assert google["state"] == "ok", google
    assert play_api.api_callers() == [PLAY_ACCOUNT]
    assert play_api.iam_requests == [PLAY_ACCOUNT]
    # Not invited: the fix names the one account and its permissions.
    play_api.invited = {DEFAULT_ACCOUNT}
    google = check(client, auth, "creator-a")
    assert google["state"] == "not_invited", google
    assert PLAY_ACCOUNT in google["fix"] and "View financial data" in google["fix"]


@pytest.mark.parametrize("setup", ["no_token_creator", "unknown_account", "iam_api_off"])
def test_iam_refusing_is_key_refused_with_the_operators_fix_and_writes_nothing(
    make_client: Any,
    admin_env: dict[str, str],
    auth: dict[str, str],
    registry: TenantRegistry,
    play_api: FakePlayApi,
    setup: str,
) -> None:
    before = add_tenant(registry, "creator-a")
    if setup == "no_token_creator":
        play_api.token_creators[PLAY_ACCOUNT] = set()
    elif setup == "unknown_account":
        del play_api.token_creators[PLAY_ACCOUNT]
    else:
        play_api.iam_disabled = True
    client = make_client("admin", **admin_env)
    google = check(client, auth, "creator-a")
    assert google["state"] == "key_refused", google
    assert "Service Account Token Creator" in google["fix"]
    assert "IAM Service Account Credentials API" in google["fix"]
    assert play_api.api_callers() == []
    assert registry.get("creator-a") == before


def test_iam_down_is_unreachable_then_ok(
    make_client: Any,
    admin_env: dict[str, str],
    auth: dict[str, str],
    registry: TenantRegistry,
    play_api: FakePlayApi,
) -> None:
    add_tenant(registry, "creator-a")
    client = make_client("admin", **admin_env)
    play_api.fail_next(*[Fault(status=503, target="iam") for _ in range(50)])
    assert check(client, auth, "creator-a")["state"] == "unreachable"
    play_api.faults.clear()
    assert check(client, auth, "creator-a")["state"] == "ok"


def test_the_cli_names_the_account_and_the_fallbacks_note(
    admin_env: dict[str, str],
    signer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from refundguard_admin import cli

    for setting, expected, note in (
        (PLAY_ACCOUNT, PLAY_ACCOUNT, False),
        ("", DEFAULT_ACCOUNT, True),
    ):
        env = {**admin_env, "PLAY_API_SERVICE_ACCOUNT": setting}
        with served("admin", env, monkeypatch) as url:
            out, err = io.StringIO(), io.StringIO()
            argv = ["--url", url, "--token", signer.token(ADMIN), "play-account"]
            assert cli.main(argv, out=out, err=err) == 0, err.getvalue()
        text = out.getvalue()
        assert f"Invite {expected} " in text and "Manage orders and subscriptions" in text
        assert ("Note: PLAY_API_SERVICE_ACCOUNT is not set" in text) is note, text


# ------------------------------------------------------------------------------ the Play function


@pytest.fixture
def play_client(
    emulator_env: dict[str, str],
    make_client: Any,
    play_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    monkeypatch.setattr(play_function, "API_POLICY", STORE_API_POLICY)
    monkeypatch.setattr(play_judge, "GRANT_API_DEADLINE_S", 3.0)
    return make_client("play_notifications", **play_env, PLAY_PACKAGE_NAMES=PACKAGE)


def send(client: Any, token: str) -> Any:
    return post(client, *play_request("one-time", token, time_ms=1_000, notification_type=1))


def test_a_purchase_is_verified_as_the_account(
    play_client: Any, store: Any, play_api: FakePlayApi
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-1", data.product_purchase(order_id=ORDER))
    response = send(play_client, "tok-1")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert store.get(StoreName.GOOGLE, "tok-1").status is Status.ACTIVE
    assert play_api.api_callers() == [PLAY_ACCOUNT]


@pytest.mark.parametrize("failure", ["no_token_creator", "iam_down"])
def test_iam_refusing_or_down_is_503_writes_nothing_and_the_redelivery_applies(
    play_client: Any,
    store: Any,
    play_api: FakePlayApi,
    failure: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    play_api.add_product_purchase(PACKAGE, "tok-2", data.product_purchase(order_id=ORDER))
    if failure == "no_token_creator":
        play_api.token_creators[PLAY_ACCOUNT] = set()
    else:
        play_api.fail_next(*[Fault(status=503, target="iam") for _ in range(50)])
    capsys.readouterr()
    response = send(play_client, "tok-2")
    assert response.status_code == 503, response.get_data(as_text=True)
    assert store.get(StoreName.GOOGLE, "tok-2") is None
    assert play_api.api_callers() == []
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    text = json.dumps(lines)
    assert "ya29." not in text and "BEGIN PRIVATE KEY" not in text  # no credential logged
    # The operator fixes it; Pub/Sub redelivers.
    play_api.faults.clear()
    play_api.token_creators[PLAY_ACCOUNT] = {DEFAULT_ACCOUNT}
    assert send(play_client, "tok-2").status_code == 200
    assert store.get(StoreName.GOOGLE, "tok-2").status is Status.ACTIVE
    assert play_api.api_callers() == [PLAY_ACCOUNT]


# ------------------------------------------------------------------------------- the reconciler


def test_the_reconciler_lists_voids_as_the_account(
    emulator_env: dict[str, str],
    make_client: Any,
    play_env: dict[str, str],
    store: Any,
    play_api: FakePlayApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconcile_function, "API_POLICY", STORE_API_POLICY)
    now_ms = int(time.time() * 1000)
    play_api.add_product_purchase(PACKAGE, "tok-v", data.product_purchase(order_id=ORDER))
    play_api.add_voided(PACKAGE, data.voided("tok-v", ORDER, voided_ms=now_ms - 3_600_000))
    env = {**play_env, "PLAY_PACKAGE_NAMES": PACKAGE, "RECONCILE_BUDGET_SECONDS": "30"}
    reconciler = make_client("reconcile", **env)
    response = reconciler.post("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert store.get(StoreName.GOOGLE, "tok-v").status is Status.REVOKED
    assert play_api.api_callers() and set(play_api.api_callers()) == {PLAY_ACCOUNT}
