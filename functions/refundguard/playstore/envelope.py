"""Unwrap the Pub/Sub message from whichever way it was delivered.

- Pub/Sub push: ``{"message": {...}, "subscription": "projects/P/subscriptions/S"}``.
- Eventarc CloudEvent, binary mode: ``ce-*`` headers, the same object as the body.
- Eventarc CloudEvent, structured mode (``application/cloudevents+json``): the object is under
  ``data``.

The message inside is the same in all three: ``data`` (base64), ``messageId``, ``publishTime``,
``attributes``. Pure: takes headers and bytes, returns a ``PubSubMessage`` or raises REJECTED.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import rejected
from ..http import parse_json_object

MAX_MESSAGE_ID = 200


@dataclass(frozen=True)
class PubSubMessage:
    message_id: str
    data: bytes
    publish_time: str | None = None
    subscription: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    delivery: str = "push"  # push | cloudevent-binary | cloudevent-structured


def parse(body_headers: Mapping[str, str], body: bytes) -> PubSubMessage:
    headers = {k.lower(): v for k, v in body_headers.items()}
    outer = parse_json_object(body)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/cloudevents+json" or (
        "specversion" in outer and "data" in outer and "message" not in outer
    ):
        delivery = "cloudevent-structured"
        envelope = outer.get("data")
        if isinstance(envelope, str):  # data may itself be a JSON string
            envelope = parse_json_object(envelope.encode(), what="CloudEvent data")
        if not isinstance(envelope, dict):
            raise rejected("bad_envelope", "CloudEvent data must be an object with a message")
    else:
        delivery = "cloudevent-binary" if "ce-specversion" in headers else "push"
        envelope = outer

    message = envelope.get("message")
    if not isinstance(message, dict):
        raise rejected("bad_envelope", "no Pub/Sub message in the request (expected message)")
    message_id = message.get("messageId") or message.get("message_id")
    if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_MESSAGE_ID:
        raise rejected("missing_message_id", "the Pub/Sub message has no usable messageId")
    raw = message.get("data")
    if not isinstance(raw, str) or not raw:
        raise rejected("missing_data", "the Pub/Sub message has no data", message_id=message_id)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise rejected(
            "bad_base64", "message data is not valid base64", message_id=message_id
        ) from None
    attributes = message.get("attributes") or {}
    subscription = envelope.get("subscription")
    return PubSubMessage(
        message_id=message_id,
        data=data,
        publish_time=str_or_none(message.get("publishTime") or message.get("publish_time")),
        subscription=str_or_none(subscription),
        attributes={str(k): str(v) for k, v in attributes.items()}
        if isinstance(attributes, dict)
        else {},
        delivery=delivery,
    )


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
