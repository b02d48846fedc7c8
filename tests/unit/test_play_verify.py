"""The pure rules of ``play.verify`` (what the Play API's answer means for an event), the settings
each function reads for the store APIs, and their agreement with ``config.FUNCTION_ENV``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from refundguard import config
from refundguard.adminapi.settings import AdminSettings
from refundguard.errors import Kind, RefundGuardError
from refundguard.model import LedgerEvent, Source, Status, StoreName
from refundguard.playstore import verify
from refundguard.playstore.resources import parse_product_purchase, parse_subscription_purchase
from refundguard_dev import play_api_data as data
from refundguard_dev.apple_pki import default_pki
from refundguard_dev.fake_appstore_api import new_api_key

LATEST = "GPA.1..1"


def event(effect: Status | None, type_: str = "X", order_id: str | None = None, **kw: Any) -> Any:
    return LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id="tok",
        event_id="m-1",
        source=Source.GOOGLE,
        type=type_,
        event_time_ms=1_000,
        effect=effect,
        order_id=order_id,
        details=kw,
    )


def sub(state: str = "SUBSCRIPTION_STATE_ACTIVE", latest: str | None = LATEST) -> Any:
    return parse_subscription_purchase(data.subscription(state=state, latest_order_id=latest))


def error(code: str) -> RefundGuardError:
    return RefundGuardError(Kind.TRANSIENT, code, "x")


@pytest.mark.parametrize(
    ("kind", "effect", "details", "check"),
    [
        ("oneTimeProductNotification", Status.ACTIVE, {}, verify.Check.PRODUCT_GRANT),
        ("oneTimeProductNotification", Status.CANCELED, {}, verify.Check.NONE),
        ("subscriptionNotification", Status.ACTIVE, {}, verify.Check.SUBSCRIPTION_GRANT),
        ("subscriptionNotification", Status.REVOKED, {}, verify.Check.SUBSCRIPTION_ENRICH),
        ("subscriptionNotification", Status.EXPIRED, {}, verify.Check.NONE),
        ("subscriptionNotification", None, {}, verify.Check.NONE),
        (
            "voidedPurchaseNotification",
            Status.REVOKED,
            {"productType": "subscription"},
            verify.Check.SUBSCRIPTION_VOID,
        ),
        (
            "voidedPurchaseNotification",
            Status.REVOKED,
            {"productType": "one_time"},
            verify.Check.PRODUCT_ENRICH,
        ),
        ("voidedPurchaseNotification", Status.REVOKED, {}, verify.Check.PRODUCT_ENRICH),
        ("voidedPurchaseNotification", None, {}, verify.Check.NONE),  # partial refund
        ("pendingRefundReviewNotification", None, {}, verify.Check.NONE),
    ],
)
def test_which_call_each_event_needs(
    kind: str, effect: Status | None, details: dict[str, Any], check: verify.Check
) -> None:
    assert verify.check_for(kind, event(effect, **details)) is check


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("PURCHASED", Status.ACTIVE),
        ("PENDING", Status.PENDING),
        ("CANCELLED", Status.CANCELED),
        ("PURCHASE_STATE_UNSPECIFIED", None),
        ("SOMETHING_NEWER", None),
    ],
)
def test_a_one_time_purchase_grants_only_when_purchased(state: str, status: Status | None) -> None:
    purchase = parse_product_purchase(data.product_purchase(state=state, order_id="GPA.9"))
    out = verify.product_grant(event(Status.ACTIVE), purchase)
    assert out.effect is status
    assert (out.order_id, out.user_id, out.product_id) == ("GPA.9", data.ACCOUNT, data.PRODUCT)
    assert out.details["api.purchaseState"] == state
    assert (out.reason is None) is (status is Status.ACTIVE)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("SUBSCRIPTION_STATE_ACTIVE", Status.ACTIVE),
        ("SUBSCRIPTION_STATE_IN_GRACE_PERIOD", Status.ACTIVE),
        ("SUBSCRIPTION_STATE_CANCELED", Status.ACTIVE),  # access until expiry
        ("SUBSCRIPTION_STATE_PENDING", Status.PENDING),
        ("SUBSCRIPTION_STATE_ON_HOLD", Status.ON_HOLD),
        ("SUBSCRIPTION_STATE_PAUSED", Status.PAUSED),
        ("SUBSCRIPTION_STATE_EXPIRED", Status.EXPIRED),
        ("SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED", Status.CANCELED),
        ("SUBSCRIPTION_STATE_NEWER", None),
    ],
)
def test_a_subscription_grants_only_while_it_entitles(state: str, status: Status | None) -> None:
    out = verify.subscription_grant(event(Status.ACTIVE), sub(state))
    assert out.effect is status and out.order_id == LATEST


@pytest.mark.parametrize(
    ("voided", "state", "latest", "effect", "judgement"),
    [
        (LATEST, "SUBSCRIPTION_STATE_ACTIVE", LATEST, Status.REVOKED, "latest_order"),
        ("GPA.1..0", "SUBSCRIPTION_STATE_ACTIVE", LATEST, None, "earlier_order"),
        ("GPA.1..0", "SUBSCRIPTION_STATE_EXPIRED", LATEST, Status.REVOKED, "not_entitled"),
        ("GPA.1..0", "SUBSCRIPTION_STATE_ACTIVE", None, Status.REVOKED, "latest_unknown"),
        (None, "SUBSCRIPTION_STATE_ACTIVE", LATEST, Status.REVOKED, "no_order"),
    ],
)
def test_a_subscription_void_is_judged(
    voided: str | None, state: str, latest: str | None, effect: Status | None, judgement: str
) -> None:
    out = verify.subscription_void(event(Status.REVOKED, order_id=voided), sub(state, latest))
    assert out.effect is effect and out.details["judgement"] == judgement
    assert out.order_id == voided  # the voided order, never the latest
    assert out.reason


def test_failures_never_hold_a_revocation_back() -> None:
    void = event(Status.REVOKED, order_id="GPA.1..0")
    unjudged = verify.unjudged_void(void, error("store_timeout"))
    assert unjudged.effect is Status.REVOKED and unjudged.details["judgement"] == "unjudged"
    assert "store_timeout" in (unjudged.reason or "")
    plain = verify.not_enriched(void, error("store_unreachable"))
    assert plain.effect is Status.REVOKED and plain.details["api.error"] == "store_unreachable"
    enriched = verify.enriched(void, sub())
    assert enriched.effect is Status.REVOKED and enriched.order_id == "GPA.1..0"
    assert enriched.user_id == data.ACCOUNT


@pytest.mark.parametrize("state", ["PURCHASED", "PENDING", "CANCELLED"])
def test_an_unstorable_answer_is_left_out_but_its_decision_kept(state: str) -> None:
    doc = data.product_purchase(order_id="GPA.9", state=state)
    doc["obfuscatedExternalAccountId"] = "\ud800 lone surrogate"
    out = verify.product_grant(event(Status.ACTIVE), parse_product_purchase(doc))
    assert out.details["api"] == "answer not storable" and out.user_id is None
    expected = verify.product_grant(
        event(Status.ACTIVE), parse_product_purchase({**doc, "obfuscatedExternalAccountId": "u"})
    )
    assert out.effect is expected.effect
    doc = data.subscription(state="SUBSCRIPTION_STATE_\ud800")
    out = verify.subscription_grant(event(Status.ACTIVE), parse_subscription_purchase(doc))
    assert out.effect is None and "cannot be stored" in (out.reason or "")


# ---------------------------------------------------------------------------------------- settings


def test_function_env_names_the_clients_settings() -> None:
    PLAY_API_ENV, APPLE_API_ENV = config.PLAY_API_ENV, config.APPLE_API_ENV
    assert set(PLAY_API_ENV) <= set(config.FUNCTION_ENV["play_notifications"])
    assert set(PLAY_API_ENV + APPLE_API_ENV) <= set(config.FUNCTION_ENV["admin"])
    assert not set(PLAY_API_ENV + APPLE_API_ENV) & set(config.FUNCTION_ENV["apple_notifications"])
    assert set(config.SECRET_ENV) == {"APPLE_API_PRIVATE_KEY"}


def _admin_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    key = new_api_key()
    return {
        "ADMIN_EMAILS": "a@example.com",
        "ADMIN_AUDIENCES": "https://admin",
        "APPLE_API_KEY_ID": key.key_id,
        "APPLE_API_ISSUER_ID": key.issuer_id,
        "APPLE_API_PRIVATE_KEY": key.pem,
        "APPLE_BUNDLE_IDS": "com.example.refundguard",
        "APPLE_APP_APPLE_ID": "1234567890",
        "APPLE_ROOT_CERTS": str(root),
        **extra,
    }


def test_admin_trusts_a_test_root_only_for_a_local_stand_in(tmp_path: Path) -> None:
    local = AdminSettings.from_env(_admin_env(tmp_path, APPLE_API_BASE_URL="http://127.0.0.1:9"))
    assert local.apple is not None and local.apple.bundle_ids == ("com.example.refundguard",)
    with pytest.raises(config.ConfigError, match="Apple Root CA - G3"):
        AdminSettings.from_env(_admin_env(tmp_path))  # Apple's real host: Apple's root only


def test_admin_names_what_the_apple_lookup_lacks(tmp_path: Path) -> None:
    env = _admin_env(tmp_path, APPLE_API_BASE_URL="http://127.0.0.1:9")
    del env["APPLE_BUNDLE_IDS"], env["APPLE_APP_APPLE_ID"]
    with pytest.raises(config.ConfigError) as info:
        AdminSettings.from_env(env)
    text = str(info.value)
    assert "APPLE_BUNDLE_IDS" in text and "APPLE_APP_APPLE_ID" in text
    assert "BEGIN" not in text  # the key is never echoed


def test_admin_with_the_play_api_on_starts_without_packages_of_its_own(tmp_path: Path) -> None:
    # PLAY_PACKAGE_NAMES are the default tenant's apps; registered tenants bring their own.
    env = {"ADMIN_EMAILS": "a@example.com", "ADMIN_AUDIENCES": "x", "PLAY_DEVELOPER_API": "on"}
    on = AdminSettings.from_env(env)
    assert on.play_api is not None and on.play_packages == ()
    off = AdminSettings.from_env({"ADMIN_EMAILS": "a@example.com", "ADMIN_AUDIENCES": "x"})
    assert off.play_api is None and off.apple is None
