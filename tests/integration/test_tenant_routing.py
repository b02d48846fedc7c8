"""Tenants on the Firestore emulator: one claim per app whatever races; the directory's cache;
and notifications routed to the tenant whose app they are for, through the Play and Apple
functions' apps (production's entry points), while tenants are registered and changed."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import flask
import pytest
from refundguard.apple.function import create_handler as apple_handler
from refundguard.apple.settings import load_settings
from refundguard.appstore.config import fingerprint
from refundguard.errors import Kind, RefundGuardError
from refundguard.model import StoreName
from refundguard.tenant_registry import TenantDirectory, TenantRegistry
from refundguard.tenants import AppleApp, Tenant, TenantStatus, parse_tenant
from refundguard_dev.apple_pki import default_pki, sign_notification
from refundguard_dev.play_messages import play_request, post

pytestmark = pytest.mark.emulator

NOW = 1_780_000_000_000
A_PACKAGE, B_PACKAGE = "com.creator.a", "com.creator.b"
A_BUNDLE, B_BUNDLE = "com.creator.a.ios", "com.creator.b.ios"
A_APPLE_ID, B_APPLE_ID = 111111, 222222


def tenant(tid: str, *, packages: tuple[str, ...] = (), bundles: tuple[str, ...] = ()) -> Tenant:
    apple_id = A_APPLE_ID if tid.endswith("a") else B_APPLE_ID
    apps = tuple(AppleApp(b, apple_id, ("Production", "Sandbox")) for b in bundles)
    return Tenant(tid, f"Creator {tid}", play_packages=packages, apple_apps=apps)


@pytest.fixture
def registry(store: Any) -> TenantRegistry:
    return TenantRegistry(store.client, timeout_s=10, reserved={"google:com.env.app"})


def refused(call: Any) -> RefundGuardError:
    with pytest.raises(RefundGuardError) as info:
        call()
    return info.value


def claims(store: Any) -> dict[str, str]:
    return {d.id: d.to_dict()["tenant"] for d in store.client.collection("tenant_apps").stream()}


# ------------------------------------------------------------------ the registry


def test_an_app_is_claimed_by_one_tenant_and_released_when_it_leaves(
    registry: TenantRegistry, store: Any
) -> None:
    a = registry.create(tenant("creator-a", packages=(A_PACKAGE,)), now_ms=NOW)
    assert a.version == 1 and claims(store) == {f"google:{A_PACKAGE}": "creator-a"}
    # Another tenant cannot take it, nor the environment's app; nothing of theirs is written.
    for app in (A_PACKAGE, "com.env.app"):
        err = refused(
            lambda app=app: registry.create(tenant("creator-b", packages=(app,)), now_ms=NOW)
        )
        assert (err.kind, err.code) == (Kind.CONFLICT, "app_claimed")
    assert registry.get("creator-b") is None
    assert refused(lambda: registry.create(a, now_ms=NOW)).code == "tenant_exists"
    # Moving the app: A lets it go, then B takes it.
    registry.update("creator-a", lambda t: replace(t, play_packages=(B_PACKAGE,)), now_ms=NOW + 1)
    registry.create(tenant("creator-b", packages=(A_PACKAGE,)), now_ms=NOW + 2)
    assert claims(store) == {f"google:{B_PACKAGE}": "creator-a", f"google:{A_PACKAGE}": "creator-b"}
    registry.delete("creator-a")
    assert claims(store) == {f"google:{A_PACKAGE}": "creator-b"}
    assert registry.get("creator-a") is None
    assert refused(lambda: registry.delete("creator-a")).kind is Kind.NOT_FOUND


def test_a_change_on_a_stale_read_is_refused(registry: TenantRegistry) -> None:
    created = registry.create(tenant("creator-a"), now_ms=NOW)
    registry.update(
        "creator-a", lambda t: replace(t, display_name="One"), now_ms=NOW, expected_version=1
    )
    err = refused(
        lambda: registry.update(
            "creator-a", lambda t: replace(t, display_name="Two"), now_ms=NOW, expected_version=1
        )
    )
    assert (err.kind, err.code) == (Kind.CONFLICT, "tenant_changed")
    now = registry.get("creator-a")
    assert now is not None and now.display_name == "One" and now.version == 2
    assert now.created_ms == created.created_ms


def test_racing_tenants_never_both_claim_an_app(registry: TenantRegistry, store: Any) -> None:
    outcomes: list[str] = []

    def claim(i: int) -> None:
        try:
            registry.create(tenant(f"racer-{i}", packages=(A_PACKAGE,)), now_ms=NOW)
            outcomes.append("won")
        except RefundGuardError as err:
            outcomes.append(err.code)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1, outcomes
    assert set(outcomes) <= {"won", "app_claimed", "firestore_unavailable"}
    winner = claims(store)[f"google:{A_PACKAGE}"]
    assert [t.id for t in registry.all()] == [winner]


def test_the_directory_sees_a_change_within_its_cache_time(registry: TenantRegistry) -> None:
    clock = [0.0]
    directory = TenantDirectory(registry, ttl_s=60, clock=lambda: clock[0])
    assert directory.for_app(StoreName.GOOGLE, A_PACKAGE) is None
    registry.create(tenant("creator-a", packages=(A_PACKAGE,)), now_ms=NOW)
    assert directory.for_app(StoreName.GOOGLE, A_PACKAGE) is None  # still cached: nobody's
    clock[0] = 61
    found = directory.for_app(StoreName.GOOGLE, A_PACKAGE)
    assert found is not None and found.id == "creator-a"
    registry.update("creator-a", lambda t: replace(t, play_packages=()), now_ms=NOW)
    clock[0] = 200
    assert directory.for_app(StoreName.GOOGLE, A_PACKAGE) is None
    # Not an app id at all: never looked up.
    assert directory.for_app(StoreName.GOOGLE, "\ud800") is None


def test_the_registry_unreachable_is_a_retry_not_an_answer(
    emulator_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import firestore
    from refundguard_dev.emulator import free_port

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing there
    directory = TenantDirectory(TenantRegistry(firestore.Client(project="demo-x"), timeout_s=0.5))
    err = refused(lambda: directory.for_app(StoreName.GOOGLE, A_PACKAGE))
    assert err.kind is Kind.TRANSIENT


# ------------------------------------------------------------------ Play routing


@pytest.fixture
def play(emulator_env: dict[str, str], make_client: Any) -> Any:
    # Only registered tenants' apps (no PLAY_PACKAGE_NAMES); tenants seen at once (no cache).
    return make_client("play_notifications", PLAY_PACKAGE_NAMES="", TENANT_CACHE_SECONDS="0")


def test_play_notifications_go_to_the_tenant_whose_package_it_is(
    play: Any, registry: TenantRegistry, store: Any
) -> None:
    # Before the creator is onboarded: quarantined (acknowledged), nothing applied.
    early = post(play, *play_request("voided", "tok-early", package=A_PACKAGE))
    assert early.status_code == 200 and early.get_json()["effect"] == "quarantined"
    assert early.get_json()["code"] == "unknown_package"
    registry.create(tenant("creator-a", packages=(A_PACKAGE,)), now_ms=NOW)
    registry.create(tenant("creator-b", packages=(B_PACKAGE,)), now_ms=NOW)
    for token, package, owner in (
        ("tok-a", A_PACKAGE, "creator-a"),
        ("tok-b", B_PACKAGE, "creator-b"),
    ):
        reply = post(play, *play_request("one-time", token, package=package, notification_type=1))
        assert reply.status_code == 200 and reply.get_json()["effect"] == "applied"
        ent = store.get(StoreName.GOOGLE, token)
        assert ent is not None and ent.tenant == owner
    # A suspended tenant's refunds still revoke.
    registry.update("creator-a", lambda t: replace(t, status=TenantStatus.SUSPENDED), now_ms=NOW)
    reply = post(
        play, *play_request("voided", "tok-a", time_ms=1_800_000_000_000, package=A_PACKAGE)
    )
    assert reply.get_json()["status"] == "revoked"
    # A removed tenant's app is nobody's again.
    registry.delete("creator-b")
    gone = post(play, *play_request("voided", "tok-b", package=B_PACKAGE))
    assert gone.get_json()["effect"] == "quarantined"
    assert store.get(StoreName.GOOGLE, "tok-b").status.value == "active"


def test_the_environment_apps_stay_the_default_tenant(
    emulator_env: dict[str, str], make_client: Any, store: Any
) -> None:
    client = make_client("play_notifications", PLAY_PACKAGE_NAMES="com.env.app")
    reply = post(
        client, *play_request("one-time", "tok-env", package="com.env.app", notification_type=1)
    )
    assert reply.get_json()["effect"] == "applied"
    assert store.get(StoreName.GOOGLE, "tok-env").tenant == "default"


# ------------------------------------------------------------------ Apple routing


@pytest.fixture
def apple(emulator_env: dict[str, str], store: Any, tmp_path: Path) -> Any:
    """The Apple function with no environment apps, trusting the test root as Production's
    (what ``trusted_production_fingerprints`` exists for), tenants seen at once."""
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    env = {
        **emulator_env,
        "APPLE_BUNDLE_IDS": "",
        "APPLE_ENVIRONMENTS": "Production,Sandbox",
        "APPLE_ROOT_CERTS": str(root),
        "TENANT_CACHE_SECONDS": "0",
    }
    settings = load_settings(
        env, trusted_production_fingerprints={fingerprint(default_pki().root.cert)}
    )
    handler = apple_handler(env, settings=settings, entitlements=store)
    app = flask.Flask("apple")
    app.add_url_rule("/", view_func=lambda: handler(flask.request), methods=["POST", "GET"])
    return app.test_client()


def send(client: Any, token: str) -> Any:
    return client.post(
        "/", data=json.dumps({"signedPayload": token}), content_type="application/json"
    )


def signed(bundle: str, app_apple_id: int | None, environment: str, tx: str) -> str:
    return sign_notification(
        "ONE_TIME_CHARGE",
        environment=environment,
        bundle_id=bundle,
        app_apple_id=app_apple_id,
        transaction={"bundle_id": bundle, "transaction_id": tx, "original_transaction_id": tx},
    )


def test_apple_notifications_go_to_the_tenant_whose_verified_bundle_it_is(
    apple: Any, registry: TenantRegistry, store: Any
) -> None:
    registry.create(tenant("creator-a", bundles=(A_BUNDLE,)), now_ms=NOW)
    registry.create(
        replace(tenant("creator-b"), apple_apps=(AppleApp(B_BUNDLE, B_APPLE_ID, ("Sandbox",)),)),
        now_ms=NOW,
    )
    ok = send(apple, signed(A_BUNDLE, A_APPLE_ID, "Production", "3000000000000001"))
    assert ok.status_code == 200, ok.get_json()
    assert store.get(StoreName.APPLE, "3000000000000001").tenant == "creator-a"
    ok_b = send(apple, signed(B_BUNDLE, None, "Sandbox", "3000000000000002"))
    assert ok_b.status_code == 200, ok_b.get_json()
    assert store.get(StoreName.APPLE, "3000000000000002", "Sandbox").tenant == "creator-b"
    # Genuine Apple data, but not ours as signed: refused (400), nothing written.
    for token, why in (
        (signed(A_BUNDLE, B_APPLE_ID, "Production", "3000000000000003"), "another app's Apple ID"),
        (
            signed(B_BUNDLE, B_APPLE_ID, "Production", "3000000000000004"),
            "an environment B has not",
        ),
        (signed("com.nobody.ios", 1, "Production", "3000000000000005"), "nobody's bundle"),
    ):
        reply = send(apple, token)
        assert reply.status_code == 400, why
        assert reply.get_json()["error"] in (
            "apple_invalid_app_identifier",
            "apple_invalid_environment",
        )
    for tx in ("3000000000000003", "3000000000000004", "3000000000000005"):
        assert store.get(StoreName.APPLE, tx) is None


def test_tenant_json_round_trips_through_the_registry(registry: TenantRegistry) -> None:
    body = {
        "id": "creator-a",
        "display_name": "Creator A",
        "play_packages": [A_PACKAGE],
        "apple_apps": [{"bundle_id": A_BUNDLE, "app_apple_id": A_APPLE_ID}],
        "policy": {"REFUND_REQUESTS": "answer"},
    }
    created = registry.create(parse_tenant(body), now_ms=NOW)
    assert registry.get("creator-a") == created


def test_onboarding_while_notifications_flow_loses_nothing(
    play: Any, registry: TenantRegistry, store: Any
) -> None:
    """A creator's notifications already flow when the tenant is registered: each one is either
    quarantined (before: kept whole, acknowledged) or applied to that tenant (after), never lost,
    and once the tenant is seen no later notification is quarantined."""
    outcomes: list[tuple[int, str]] = []
    registered = threading.Event()

    def flow() -> None:
        for i in range(60):
            if i == 20:
                registered.set()
            body, headers = play_request(
                "one-time", f"tok-flow-{i}", package=A_PACKAGE, notification_type=1
            )
            reply = play.post("/", data=body, headers=headers)
            assert reply.status_code == 200
            outcomes.append((i, reply.get_json()["effect"]))

    sender = threading.Thread(target=flow)
    sender.start()
    registered.wait(30)
    registry.create(tenant("creator-a", packages=(A_PACKAGE,)), now_ms=NOW)
    sender.join(60)
    effects = [effect for _, effect in sorted(outcomes)]
    assert len(effects) == 60 and set(effects) <= {"quarantined", "applied"}
    first_applied = effects.index("applied")
    assert all(e == "applied" for e in effects[first_applied:]), effects
    quarantine = list(store.client.collection("quarantine").stream())
    assert len(quarantine) == first_applied
    for i in range(first_applied, 60):
        assert store.get(StoreName.GOOGLE, f"tok-flow-{i}").tenant == "creator-a"
