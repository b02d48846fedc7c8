"""Build Pub/Sub deliveries of Play notifications for tests (the same code as the CLI script)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from scripts.send_play_notification import developer_notification, envelope

PACKAGE = "com.example.courses"
_ids = itertools.count(1)


def play_request(
    kind: str,
    token: str = "tok-1",
    *,
    time_ms: int = 1_700_000_000_000,
    notification_type: int | None = None,
    message_id: str | None = None,
    delivery: str = "push",
    package: str = PACKAGE,
) -> tuple[bytes, dict[str, str]]:
    note = developer_notification(
        kind,
        package=package,
        token=token,
        event_time_ms=time_ms,
        notification_type=notification_type,
        product="course.premium",
        order_id="GPA.1234-5678-9012-34567",
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
