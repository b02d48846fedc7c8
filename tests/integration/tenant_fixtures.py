"""What the tenant tests of the admin API share: three tenants and their staff made through the
API itself, purchases of each written as the stores' events would write them, and a dump of the
whole Firestore database (every collection and sub-collection) to show that nothing was
written."""

from __future__ import annotations

import json
import time
from typing import Any

from refundguard.model import Entitlement, LedgerEvent, Source, Status, StoreName
from refundguard.refund_store import RefundStore
from refundguard.refunds import RefundRequest
from refundguard.serializer import to_firestore
from refundguard_dev.id_tokens import TestSigner, bearer

ADMIN = "admin@example.com"  # ADMIN_EMAILS: the bootstrap platform admin
SERVICE = "svc@platform.example"
ACME_ADMIN = "ann@acme.example"
ACME_SUPPORT = "sam@acme.example"  # acme: support may not act
INITECH_SUPPORT = "ivy@initech.example"  # initech: support may act
GLOBEX_ADMIN = "gina@globex.example"
STRANGER = "mallory@example.com"

TENANTS = {
    "acme": {"play_packages": ["com.acme.app"], "support_can_act": False},
    "globex": {"play_packages": ["com.globex.app"], "support_can_act": False},
    "initech": {"play_packages": ["com.initech.app"], "support_can_act": True},
}
STAFF = {
    ACME_ADMIN: ("acme", "admin"),
    ACME_SUPPORT: ("acme", "support"),
    INITECH_SUPPORT: ("initech", "support"),
    GLOBEX_ADMIN: ("globex", "admin"),
}
GOOD_REPORT = {
    "customer_consented": True,
    "consumption_percentage": 45.2,
    "delivery_status": "DELIVERED",
    "sample_content_provided": False,
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def token_of(tenant: str) -> str:
    return f"{tenant}-token.AO-J1O{tenant}"


def order_of(tenant: str) -> str:
    return f"GPA.3372-{sum(map(ord, tenant)):04d}-9088-12345"


def purchase(
    store: Any,
    tenant: str,
    purchase_id: str,
    *,
    effect: Status = Status.ACTIVE,
    event_id: str | None = None,
    order_id: str | None = None,
    at_ms: int | None = None,
) -> Any:
    """A Google purchase of ``tenant``'s app, as the Play function applies it."""
    return store.apply(
        LedgerEvent(
            store=StoreName.GOOGLE,
            purchase_id=purchase_id,
            event_id=event_id or f"m-{purchase_id}",
            source=Source.GOOGLE,
            type="ONE_TIME_PRODUCT_PURCHASED" if effect is Status.ACTIVE else "VOIDED_PURCHASE",
            event_time_ms=at_ms or now_ms() - 60_000,
            effect=effect,
            order_id=order_id,
            tenant=tenant,
        )
    )


def call(
    client: Any, who: str, signer: TestSigner, method: str, path: str, body: Any = None
) -> Any:
    kwargs: dict[str, Any] = {"headers": bearer(signer.token(who))}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return client.open(path, method=method, **kwargs)


def seed(client: Any, signer: TestSigner, store: Any) -> None:
    """The three tenants and their staff (through the API), a purchase of each with an order id,
    a refund request of each, and the platform service's role."""
    for tenant_id, fields in TENANTS.items():
        body = {"id": tenant_id, "display_name": tenant_id.title(), **fields}
        created = call(client, ADMIN, signer, "POST", "/tenants", body)
        assert created.status_code == 201, created.get_json()
    for email, (tenant_id, role) in STAFF.items():
        path = f"/tenants/{tenant_id}/staff/{email}"
        answer = call(client, ADMIN, signer, "PUT", path, {"role": role})
        assert answer.status_code == 200, answer.get_json()
    answer = call(client, ADMIN, signer, "PUT", f"/staff/{SERVICE}", {"platform": "service"})
    assert answer.status_code == 200, answer.get_json()
    refunds = RefundStore(store.client, timeout_s=store.deadline_s)
    for tenant_id in TENANTS:
        purchase(store, tenant_id, token_of(tenant_id), order_id=order_of(tenant_id))
        refunds.record(
            RefundRequest(
                f"google:{tenant_id}-request",
                "google_refund_review",
                store="google",
                environment="Production",
                entitlement_id=f"google:{token_of(tenant_id)}",
                purchase_id=token_of(tenant_id),
                app=str(TENANTS[tenant_id]["play_packages"][0]),  # type: ignore[index]
                received_ms=now_ms(),
                deadline_ms=now_ms() + 3_600_000,
                tenant=tenant_id,
            )
        )


def dump(client: Any) -> dict[str, Any]:
    """Every document of the database, by path, with its fields and update time."""
    found: dict[str, Any] = {}

    def walk(collection: Any) -> None:
        for snap in collection.stream():
            found[snap.reference.path] = (snap.to_dict(), snap.update_time)
            for sub in snap.reference.collections():
                walk(sub)

    for collection in client.collections():
        walk(collection)
    return found


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def old_entitlement(store: Any, purchase_id: str, tenant: str | None = None) -> None:
    """An entitlement as refundguard wrote it before tenants: no ``tenant`` field."""
    fields = to_firestore(
        Entitlement(StoreName.GOOGLE, purchase_id, "Production", Status.ACTIVE, updated_ms=1000)
    )
    fields.pop("tenant")
    if tenant is not None:
        fields["tenant"] = tenant
    store.client.collection("entitlements").document(f"google:{purchase_id}").set(fields)


def old_request(store: Any, request_id: str) -> None:
    fields = to_firestore(
        RefundRequest(
            request_id, "google_refund_review", "google", "Production", "google:x", "x",
            "com.example.app", received_ms=1000, deadline_ms=2000,
        )
    )  # fmt: skip
    fields.pop("tenant")
    store.client.collection("refund_requests").document(request_id).set(fields)
