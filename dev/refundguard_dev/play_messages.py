"""Google Play notifications as Pub/Sub delivers them: a DeveloperNotification and its envelope
(push, or an Eventarc CloudEvent in binary or structured mode)."""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

DEFAULT_PACKAGE = "com.example.courses"
PACKAGE = DEFAULT_PACKAGE


def developer_notification(
    kind: str,
    *,
    package: str,
    token: str,
    event_time_ms: int,
    notification_type: int | None,
    product: str,
    order_id: str,
    product_type: int = 2,
) -> dict[str, Any]:
    """``product_type`` of a void: 1 subscription, 2 one-time. A ``refund-review`` names the
    order, and the purchase token unless ``token`` is empty."""
    note: dict[str, Any] = {
        "version": "1.0",
        "packageName": package,
        "eventTimeMillis": str(event_time_ms),
    }
    if kind == "subscription":
        note["subscriptionNotification"] = {
            "version": "1.0",
            "notificationType": notification_type or 4,
            "purchaseToken": token,
            "subscriptionId": product,
        }
    elif kind == "one-time":
        note["oneTimeProductNotification"] = {
            "version": "1.0",
            "notificationType": notification_type or 1,
            "purchaseToken": token,
            "sku": product,
        }
    elif kind in ("voided", "voided-partial"):
        note["voidedPurchaseNotification"] = {
            "purchaseToken": token,
            "orderId": order_id,
            "productType": product_type,
            "refundType": 2 if kind == "voided-partial" else 1,
        }
    elif kind == "refund-review":
        review = {"orderId": order_id, "pendingRefundToken": f"prt-{order_id}"}
        if token:
            review["purchaseToken"] = token
        note["pendingRefundReviewNotification"] = review
    elif kind == "test":
        note["testNotification"] = {"version": "1.0"}
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    return note


def envelope(
    note: dict[str, Any], *, message_id: str, delivery: str, subscription: str
) -> tuple[bytes, dict[str, str]]:
    message = {
        "data": base64.b64encode(json.dumps(note).encode()).decode(),
        "messageId": message_id,
        "publishTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "attributes": {},
    }
    outer = {"message": message, "subscription": subscription}
    headers = {"Content-Type": "application/json"}
    if delivery == "cloudevent-binary":
        headers.update(
            {
                "ce-specversion": "1.0",
                "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                "ce-source": "//pubsub.googleapis.com/projects/demo/topics/play-rtdn",
                "ce-id": message_id,
            }
        )
    elif delivery == "cloudevent-structured":
        outer = {
            "specversion": "1.0",
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/demo/topics/play-rtdn",
            "id": message_id,
            "datacontenttype": "application/json",
            "data": outer,
        }
        headers["Content-Type"] = "application/cloudevents+json"
    return json.dumps(outer).encode(), headers


_ids = itertools.count(1)


def play_request(
    kind: str,
    token: str = "tok-1",
    *,
    time_ms: int = 1_700_000_000_000,
    notification_type: int | None = None,
    message_id: str | None = None,
    delivery: str = "push",
    package: str = DEFAULT_PACKAGE,
    order_id: str = "GPA.1234-5678-9012-34567",
    product_type: int = 2,
) -> tuple[bytes, dict[str, str]]:
    note = developer_notification(
        kind,
        package=package,
        token=token,
        event_time_ms=time_ms,
        notification_type=notification_type,
        product="course.premium",
        order_id=order_id,
        product_type=product_type,
    )
    return envelope(
        note,
        message_id=message_id or f"msg-{next(_ids)}",
        delivery=delivery,
        subscription="projects/demo/subscriptions/play",
    )


def raw_push(data_b64: str, message_id: str = "poison-1") -> bytes:
    return json.dumps(
        {
            "message": {"data": data_b64, "messageId": message_id},
            "subscription": "projects/demo/subscriptions/play",
        }
    ).encode()


def post(client: Any, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post("/", data=body, headers=headers or {"Content-Type": "application/json"})
