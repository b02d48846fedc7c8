"""Odd and hostile requests through the Apple function's app, against the emulator: a validly
signed notification with odd content, or any body at all, ends in 200, 400 or 422 (kept in
quarantine): never a 5xx, never an ERROR line (which would page someone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard_dev.apple_pki import BUNDLE_ID, default_pki, sign_notification

pytestmark = pytest.mark.emulator

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(max_size=5).map(lambda t: t + "\udfff"),  # a lone surrogate, JSON-escaped
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
TRANSACTION_FIELDS = [
    "originalTransactionId",
    "transactionId",
    "productId",
    "appAccountToken",
    "quantity",
    "purchaseDate",
    "expiresDate",
    "revocationDate",
    "revocationReason",
    "revocationType",
    "revocationPercentage",
    "type",
    "storefront",
]
NOTIFICATION_FIELDS = ["notificationType", "subtype", "notificationUUID", "version"]


@pytest.fixture(scope="module")
def apple_client(firestore_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import functions_framework
    from support import MAIN_PY

    root = tmp_path_factory.mktemp("apple") / "root.der"
    root.write_bytes(default_pki().root_der)
    firestore_emulator.wipe()
    env = {
        **firestore_emulator.env(),
        "APPLE_BUNDLE_IDS": BUNDLE_ID,
        "APPLE_ENVIRONMENTS": "Sandbox",
        "APPLE_APP_APPLE_ID": "",
        "APPLE_ROOT_CERTS": str(Path(root)),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("FUNCTION_TARGET", raising=False)
        app = functions_framework.create_app(target="apple_notifications", source=str(MAIN_PY))
        yield app.test_client()


def _post(client: Any, body: bytes, capsys: Any) -> Any:
    capsys.readouterr()
    response = client.post("/", data=body, headers={"Content-Type": "application/json"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert response.status_code in (200, 400, 422), (response.status_code, lines)
    assert not [line for line in lines if line["severity"] in ("ERROR", "CRITICAL")], lines
    assert len(lines) == 1, lines  # one line per request
    answer = response.get_json()
    if response.status_code == 422:
        assert answer["effect"] == "quarantined"
    return response


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(TRANSACTION_FIELDS), value=json_values)
def test_any_transaction_field_of_any_type(
    apple_client: Any, capsys: Any, field: str, value: Any
) -> None:
    token = sign_notification("REFUND", transaction={field: value})
    _post(apple_client, json.dumps({"signedPayload": token}).encode(), capsys)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(NOTIFICATION_FIELDS), value=json_values)
def test_any_notification_field_of_any_type(
    apple_client: Any, capsys: Any, field: str, value: Any
) -> None:
    token = sign_notification("ONE_TIME_CHARGE", **{field: value})
    _post(apple_client, json.dumps({"signedPayload": token}).encode(), capsys)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)))
def test_any_body_is_a_4xx(apple_client: Any, capsys: Any, body: bytes) -> None:
    assert _post(apple_client, body, capsys).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 2048 + b"]" * 2048,
        b'{"signedPayload": ' + b"[" * 2048 + b"]" * 2048 + b"}",
        b'{"x": "' + b"[" * 3000 + b'"}',  # brackets inside a string are text
        b"",
        b'{"signedPayload": "\\ud800.\\ud800.\\ud800"}',
        b'{"signedPayload": "' + b"a" * 300_000 + b'"}',
    ],
)
def test_unauthenticated_junk_is_a_400_and_a_warning(
    apple_client: Any, capsys: Any, body: bytes
) -> None:
    assert _post(apple_client, body, capsys).status_code == 400


@pytest.mark.parametrize(("field", "status"), [("originalTransactionId", 422), ("productId", 200)])
def test_a_validly_signed_deeply_nested_value(
    apple_client: Any, capsys: Any, field: str, status: int
) -> None:
    """In a field the ledger needs, the notification is kept and refused; in one it only reads
    when it is text, the value is ignored and the refund still applies."""
    nested: Any = "x"
    for _ in range(200):
        nested = [nested]
    token = sign_notification("REFUND", transaction={field: nested})
    body = json.dumps({"signedPayload": token}).encode()
    assert _post(apple_client, body, capsys).status_code == status
