"""Hostile and odd Pub/Sub deliveries through the Play function's app, against the emulator: every
body is either processed or quarantined and acknowledged (200), never a 5xx, never an ERROR line."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard_dev.play_messages import PACKAGE, developer_notification

pytestmark = pytest.mark.emulator

OK_EFFECTS = {"applied", "recorded", "stale", "duplicate", "test", "quarantined"}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.text(max_size=5).map(lambda t: t + "\ud800"),  # a lone surrogate, JSON-escaped
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)

FIELDS = {
    "subscription": (
        "subscriptionNotification",
        ["notificationType", "purchaseToken", "subscriptionId"],
    ),
    "one-time": ("oneTimeProductNotification", ["notificationType", "purchaseToken", "sku"]),
    "voided": (
        "voidedPurchaseNotification",
        ["purchaseToken", "orderId", "productType", "refundType"],
    ),
}


@pytest.fixture(scope="module")
def hostile_client(firestore_emulator: Any) -> Any:
    import functions_framework
    from support import MAIN_PY

    firestore_emulator.wipe()
    env = {**firestore_emulator.env(), "PLAY_PACKAGE_NAMES": PACKAGE}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("FUNCTION_TARGET", raising=False)
        app = functions_framework.create_app(target="play_notifications", source=str(MAIN_PY))
        yield app.test_client()


def _post(client: Any, body: bytes, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    response = client.post("/", data=body, headers={"Content-Type": "application/json"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert response.status_code == 200, (response.status_code, lines)
    assert not [line for line in lines if line["severity"] in ("ERROR", "CRITICAL")], lines
    answer = response.get_json()
    assert answer["effect"] in OK_EFFECTS
    return answer


def _push(data: bytes, message_id: Any = "m-1", attributes: Any = None) -> bytes:
    message = {"data": base64.b64encode(data).decode(), "messageId": message_id}
    if attributes is not None:
        message["attributes"] = attributes
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(sorted(FIELDS)), data=st.data(), value=json_values)
def test_any_field_of_any_type_is_processed_or_quarantined(
    hostile_client: Any, capsys: Any, kind: str, data: st.DataObject, value: Any
) -> None:
    note = developer_notification(
        kind,
        package=PACKAGE,
        token="tok-hostile",
        event_time_ms=1_700_000_000_000,
        notification_type=None,
        product="course.premium",
        order_id="GPA.1",
    )
    name, fields = FIELDS[kind]
    target = data.draw(st.sampled_from([*fields, "eventTimeMillis", "packageName", "version"]))
    if target in fields:
        note[name][target] = value
    else:
        note[target] = value
    body = _push(json.dumps(note).encode(), message_id=data.draw(st.text(min_size=1, max_size=20)))
    _post(hostile_client, body, capsys)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=json_values, message_id=json_values, attributes=json_values)
def test_any_payload_and_envelope_is_processed_or_quarantined(
    hostile_client: Any, capsys: Any, payload: Any, message_id: Any, attributes: Any
) -> None:
    _post(hostile_client, _push(json.dumps(payload).encode(), message_id, attributes), capsys)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 2048 + b"]" * 2048,
        b'{"message": ' + b"[" * 2048 + b"]" * 2048 + b"}",
        b"",
        b"   ",
        b"\xff\xfe\x00",
        b'{"message": {"data": "' + base64.b64encode(b"[" * 5000) + b'", "messageId": "deep"}}',
        b'{"message": {"data": "not base64!", "messageId": "\\ud800"}}',
        json.dumps({"message": {"data": "eyJ9", "messageId": "x" * 5000}}).encode(),
    ],
)
def test_bodies_that_are_not_deliveries_are_quarantined(
    hostile_client: Any, capsys: Any, body: bytes
) -> None:
    assert _post(hostile_client, body, capsys)["effect"] == "quarantined"


def test_a_body_over_the_size_limit_is_quarantined_cut_to_fit(
    hostile_client: Any, capsys: Any, firestore_emulator: Any
) -> None:
    from google.cloud import firestore

    body = ("é" * (6 * 1024 * 1024)).encode() + b"x"  # 12 MiB of two-byte characters
    answer = _post(hostile_client, body, capsys)
    assert answer["effect"] == "quarantined" and answer["code"] == "body_too_large"
    db = firestore.Client(project=firestore_emulator.project)
    record = db.collection("quarantine").document(answer["quarantine_id"]).get().to_dict()
    assert record["body_size"] == len(body) and record["body_truncated"] is True
    assert len(record["body"].encode()) <= 512 * 1024
