"""``make run``'s two demo tenants: two creators, each with a Play package and an Apple bundle id of
their own and an App Store Server API key of their own Apple team (known to the App Store
stand-in, sealed with the Cloud KMS stand-in as ``PUT /tenants/{id}/apple-key`` seals one), a
tenant admin each (``staff/{email}``), and a purchase each, sent through the real Play and Apple
functions at start-up. Registered through ``TenantRegistry`` in the Firestore emulator, as the
admin API does at run time. Nothing here is ever deployed."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .apple_pki import sign_notification
from .local import PROJECT, RUN_DIR, local_apple_pki
from .play_messages import developer_notification, envelope

STAFF = "staff"


@dataclass(frozen=True)
class DemoTenant:
    id: str
    display_name: str
    play_package: str
    bundle_id: str
    app_apple_id: int
    #: The tenant's App Store Server API key (its own Apple team) in the App Store stand-in.
    apple_key_id: str
    #: The tenant admin's address: sign in with it in the local console.
    admin: str
    #: The demo Play purchase (in the Play stand-in, sent as a notification at start-up).
    token: str
    order: str
    #: The demo Apple purchase (Sandbox, sent as a signed notification at start-up).
    transaction: str

    @property
    def apple_key_file(self) -> Path:
        return RUN_DIR / f"apple-api-key-{self.id}.p8"

    def body(self) -> dict[str, Any]:
        """The tenant as ``POST /tenants`` takes it (``tenants.parse_tenant``)."""
        return {
            "id": self.id,
            "display_name": self.display_name,
            "play_packages": [self.play_package],
            "apple_apps": [
                {
                    "bundle_id": self.bundle_id,
                    "app_apple_id": self.app_apple_id,
                    "environments": ["Production", "Sandbox"],
                }
            ],
            "play_api": True,
        }


DEMO_TENANTS = (
    DemoTenant(
        id="creator-a",
        display_name="Creator A (yoga courses)",
        play_package="com.creatora.yoga",
        bundle_id="com.creatora.yoga.ios",
        app_apple_id=1000000101,
        apple_key_id="RGCREATORA",
        admin="admin-a@example.com",
        token="creator-a-purchase-token-0001",
        order="GPA.3401-0000-0000-00001",
        transaction="2000000000100001",
    ),
    DemoTenant(
        id="creator-b",
        display_name="Creator B (guitar lessons)",
        play_package="com.creatorb.guitar",
        bundle_id="com.creatorb.guitar.ios",
        app_apple_id=1000000202,
        apple_key_id="RGCREATORB",
        admin="admin-b@example.com",
        token="creator-b-purchase-token-0001",
        order="GPA.3402-0000-0000-00001",
        transaction="2000000000200001",
    ),
)


@contextlib.contextmanager
def _emulator(host: str) -> Iterator[None]:
    """google-cloud-firestore reads the emulator's address from the environment when a client is
    made: set it for that moment only."""
    before = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = before


def register(
    firestore_host: str,
    env: dict[str, str],
    apple_bundle_ids: tuple[str, ...],
    *,
    project: str = PROJECT,
    keys: Mapping[str, tuple[str, str]] | None = None,
    kms_env: Mapping[str, str] | None = None,
) -> None:
    """The demo tenants and their staff in the Firestore emulator at ``firestore_host``, through
    ``TenantRegistry`` (the ``default`` tenant's apps, ``env``'s ``PLAY_PACKAGE_NAMES`` and
    ``apple_bundle_ids``, are reserved as in the functions). Run again on the same emulator: the
    tenants that exist are left as they are. With ``keys`` (tenant id -> key id, issuer id) and
    ``kms_env`` (``TENANT_KEYS_KMS_*`` and ``GOOGLE_APPLICATION_CREDENTIALS``), each tenant's
    ``.p8`` under ``.run/`` is sealed with KMS and becomes the tenant's Apple key."""
    from refundguard.errors import RefundGuardError
    from refundguard.model import PRODUCTION
    from refundguard.store import EntitlementStore
    from refundguard.tenants import AppleApp, default_tenant, parse_tenant
    from refundguard.wiring import Wiring

    packages = tuple(p for p in env.get("PLAY_PACKAGE_NAMES", "").split(",") if p)
    default = default_tenant(
        play_packages=packages,
        apple_apps=tuple(AppleApp(b, None, (PRODUCTION,)) for b in apple_bundle_ids),
    )
    with _emulator(firestore_host):
        store = EntitlementStore.from_env(
            {
                "GOOGLE_CLOUD_PROJECT": project,
                "FIRESTORE_EMULATOR_HOST": firestore_host,
                "FIRESTORE_DEADLINE_SECONDS": "20",
            }
        )
    wiring = Wiring(store, default_tenant=default)
    now_ms = int(time.time() * 1000)
    sealer = _sealer(kms_env) if keys and kms_env else None
    for demo in DEMO_TENANTS:
        try:
            wiring.registry.create(parse_tenant(demo.body()), now_ms=now_ms)
        except RefundGuardError as err:
            if err.code != "tenant_exists":
                raise
        if sealer is not None and keys is not None and demo.id in keys:
            key_id, issuer_id = keys[demo.id]
            sealed = sealer.seal(demo.id, key_id, issuer_id, demo.apple_key_file.read_text())

            def newest_first(current: Any, sealed: Any = sealed) -> Any:
                others = tuple(k for k in current.apple_keys if k.key_id != sealed.key_id)
                return replace(current, apple_keys=(sealed, *others))

            wiring.registry.update(demo.id, newest_first, now_ms=now_ms)
        wiring.client.collection(STAFF).document(demo.admin).set(staff_document(demo))


def _sealer(kms_env: Mapping[str, str]) -> Any:
    """``tenant_keys.TenantKeys`` over the KMS ``kms_env`` names, as the admin function's."""
    from refundguard.config import Settings
    from refundguard.kms import KmsClient, read_kms_settings
    from refundguard.tenant_keys import TenantKeys

    settings = Settings(dict(kms_env))
    kms = read_kms_settings(settings)
    settings.done()
    if kms is None:
        raise ValueError("kms_env names no TENANT_KEYS_KMS_KEY")
    return TenantKeys(KmsClient(kms))


def staff_document(demo: DemoTenant) -> dict[str, Any]:
    """``staff/{email}`` of the tenant's admin, as the admin API writes it: the roles
    (``platform``, ``tenants``), with the address and the tenant ids (what "the staff of tenant T"
    is queried by)."""
    return {
        "email": demo.admin,
        "platform": None,
        "tenants": {demo.id: "admin"},
        "tenant_ids": [demo.id],
    }


def send_purchases(play_url: str, apple_url: str) -> list[str]:
    """Each demo tenant's purchase, as the stores would send it: a Play notification (verified
    with the Play stand-in) and an Apple Sandbox notification (signed with the local test PKI).
    Returns one problem per purchase that was not applied (the banner says them)."""
    problems = []
    now_ms = int(time.time() * 1000)
    pki = local_apple_pki()
    for demo in DEMO_TENANTS:
        note = developer_notification(
            "one-time",
            package=demo.play_package,
            token=demo.token,
            event_time_ms=now_ms,
            notification_type=1,
            product="course.premium",
            order_id=demo.order,
            product_type=2,
        )
        body, headers = envelope(
            note,
            message_id=str(uuid.uuid4().int)[:16],
            delivery="push",
            subscription="projects/demo/subscriptions/play-rtdn-push",
        )
        problems += _post(play_url, body, headers, f"{demo.id}'s Play purchase")
        signed = sign_notification(
            "ONE_TIME_CHARGE",
            pki=pki,
            environment="Sandbox",
            bundle_id=demo.bundle_id,
            signed_date=now_ms,
            transaction={"original_transaction_id": demo.transaction, "bundle_id": demo.bundle_id},
        )
        apple_body = json.dumps({"signedPayload": signed}).encode()
        problems += _post(
            apple_url,
            apple_body,
            {"Content-Type": "application/json"},
            f"{demo.id}'s Apple purchase",
        )
    return problems


def _post(url: str, body: bytes, headers: dict[str, str], what: str) -> list[str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            reply = json.loads(answer.read() or b"{}")
    except (OSError, ValueError) as err:
        detail = err.read().decode(errors="replace")[:200] if hasattr(err, "read") else str(err)
        return [f"{what} was not applied: {detail}"]
    if reply.get("status") != "active":
        return [f"{what} was not applied: {json.dumps(reply)[:200]}"]
    return []
