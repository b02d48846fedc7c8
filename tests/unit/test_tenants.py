"""A tenant's JSON as the admin API takes it (every field checked; a bad one is a 400 naming it),
the ``default`` tenant of environment-set apps, and the ledger's rule for whose customer a
purchase is."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard.errors import Kind, RefundGuardError
from refundguard.ledger import decide
from refundguard.model import LedgerEvent, Source, Status, StoreName
from refundguard.tenants import (
    DEFAULT_TENANT,
    AppleApp,
    Tenant,
    TenantStatus,
    app_key,
    default_tenant,
    is_app_id,
    parse_tenant,
)

GOOD: dict[str, Any] = {
    "id": "creator-a",
    "display_name": "Creator A",
    "play_packages": ["com.creator.a"],
    "apple_apps": [
        {"bundle_id": "com.creator.a.ios", "app_apple_id": 111, "environments": ["Production"]}
    ],
    "play_api": True,
    "policy": {"REFUND_REQUESTS": "answer"},
    "support_can_act": False,
}


def refused(body: dict[str, Any], current: Tenant | None = None) -> str:
    with pytest.raises(RefundGuardError) as info:
        parse_tenant(body, current=current)
    assert info.value.kind is Kind.REJECTED
    return info.value.code


def test_a_whole_tenant_is_read_with_every_field() -> None:
    tenant = parse_tenant(GOOD)
    assert tenant.id == "creator-a" and tenant.display_name == "Creator A"
    assert tenant.status is TenantStatus.ACTIVE and tenant.play_api
    assert tenant.apple_apps == (AppleApp("com.creator.a.ios", 111, ("Production",)),)
    assert tenant.app_keys == {"google:com.creator.a", "apple:com.creator.a.ios"}
    assert tenant.policy == {"REFUND_REQUESTS": "answer"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"id": "A"}, "bad_tenant_id"),
        ({"id": "ab"}, "bad_tenant_id"),
        ({"id": "creator-"}, "bad_tenant_id"),
        ({"id": "1creator"}, "bad_tenant_id"),
        ({"id": "default"}, "reserved_tenant_id"),
        ({"id": None}, "bad_tenant_id"),
        ({"display_name": ""}, "bad_field"),
        ({"display_name": "x" * 121}, "bad_field"),
        ({"display_name": "new\nline"}, "bad_field"),
        ({"status": "gone"}, "bad_field"),
        ({"play_packages": "com.a.b"}, "bad_field"),
        ({"play_packages": ["nodots"]}, "bad_field"),
        ({"play_packages": ["com.a.b", "com.a.b"]}, "bad_field"),
        ({"play_packages": ["com/a.b"]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "com.a", "environments": ["Production"]}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "com.a", "environments": ["Xcode"]}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "com.a", "environments": []}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "a", "environments": [{}]}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "a", "environments": [["Sandbox"]]}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": ["a"]}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "com.a", "app_apple_id": True}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "com.a", "app_apple_id": -1}]}, "bad_field"),
        ({"apple_apps": [{"bundle_id": "com.a", "extra": 1}]}, "bad_field"),
        ({"play_api": "yes"}, "bad_field"),
        ({"policy": {"ADMIN_EMAILS": "x"}}, "bad_field"),
        ({"policy": {"REFUND_REQUESTS": True}}, "bad_field"),
        ({"owner": "someone"}, "unknown_field"),
    ],
)
def test_each_bad_field_is_refused_by_name(change: dict[str, Any], code: str) -> None:
    assert refused({**GOOD, **change}) == code


def test_a_change_names_only_what_changes_and_never_the_id() -> None:
    current = parse_tenant(GOOD)
    changed = parse_tenant({"status": "suspended"}, current=current)
    assert changed.status is TenantStatus.SUSPENDED and not changed.active
    assert changed.play_packages == current.play_packages
    assert refused({"id": "creator-b"}, current) == "tenant_id_changed"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["bundle_id", "app_apple_id", "environments", "REFUND_REQUESTS", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([*GOOD, "apple_keys", "version", "x"]), JSON))
def test_any_body_is_a_tenant_or_a_400_never_a_crash(body: dict[str, Any]) -> None:
    try:
        tenant = parse_tenant(body)
    except RefundGuardError as err:
        assert err.kind is Kind.REJECTED and err.code
        return
    # Whatever got through is a well-formed tenant that never claims a malformed app.
    assert tenant.id != DEFAULT_TENANT and tenant.display_name
    assert all(is_app_id(StoreName.GOOGLE, p) for p in tenant.play_packages)
    assert all(is_app_id(StoreName.APPLE, a.bundle_id) for a in tenant.apple_apps)


@given(st.text(max_size=300))
def test_only_app_ids_are_ever_looked_up(text: str) -> None:
    for store in StoreName:
        if is_app_id(store, text):
            assert text.isascii() and "/" not in text and text.strip() == text


def test_the_environment_apps_are_the_default_tenant() -> None:
    assert default_tenant() is None
    tenant = default_tenant(play_packages=("com.a.b",), play_api=True)
    assert tenant is not None and tenant.id == DEFAULT_TENANT and tenant.play_api
    assert tenant.app_keys == {app_key(StoreName.GOOGLE, "com.a.b")}


def _event(source: Source, tenant: str | None, time_ms: int) -> LedgerEvent:
    effect = Status.ACTIVE if source is Source.ADMIN else Status.REVOKED
    return LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id="tok-1",
        event_id=f"{source.value}-{time_ms}",
        source=source,
        type="X",
        event_time_ms=time_ms,
        effect=effect,
        tenant=tenant,
    )


def test_a_store_event_says_whose_customer_it_is_an_admin_action_never_moves_it() -> None:
    first = decide(None, _event(Source.ADMIN, "creator-a", 1000), already_seen=False, now_ms=2000)
    assert first.entitlement is not None and first.entitlement.tenant == "creator-a"
    # The store's word (the app's tenant) wins over what an admin guessed.
    store = decide(
        first.entitlement, _event(Source.GOOGLE, "creator-b", 3000), already_seen=False, now_ms=4000
    )
    assert store.entitlement is not None and store.entitlement.tenant == "creator-b"
    # Later admin actions keep it.
    again = decide(
        store.entitlement, _event(Source.ADMIN, "creator-a", 5000), already_seen=False, now_ms=6000
    )
    assert again.entitlement is not None and again.entitlement.tenant == "creator-b"
    # Written before tenants: default.
    old = decide(None, _event(Source.GOOGLE, None, 1000), already_seen=False, now_ms=2000)
    assert old.entitlement is not None and old.entitlement.tenant == DEFAULT_TENANT
