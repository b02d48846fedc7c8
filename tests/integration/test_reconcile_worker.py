"""The ``reconcile_worker`` entry point at its edge (functions-framework's app, the Firestore
emulator): the Pub/Sub push identity's token is checked before anything is read (no token: 401,
another identity or audience: 403, nothing written); a message that is not a work message of ours
is quarantined and acknowledged (200), never retried and never acted on; work for a tenant that no
longer exists is dropped (200); the function refuses to start without its work topic."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import firestore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard_dev.id_tokens import CertServer, TestSigner, bearer, cert_server

pytestmark = pytest.mark.emulator

PUSH_SA = "refundguard-recon-push@demo-project.iam.gserviceaccount.com"
AUDIENCE = "https://refundguard-recon-worker-123456.us-central1.run.app"
TOPIC = "projects/demo-refundguard-test/topics/reconcile-work"
WORK = {
    "v": 1,
    "run_id": "20261204T120000Z-abc123",
    "tenant": "creator-1",
    "source": "google",
    "app": "com.creator.app",
    "environment": "Production",
    "page": 0,
    "part": 0,
    "trigger": "schedule",
}


@pytest.fixture(scope="module")
def google() -> TestSigner:
    return TestSigner("push-kid-recon")


@pytest.fixture
def certs(google: TestSigner) -> Iterator[CertServer]:
    with cert_server(google) as server:
        yield server


@pytest.fixture
def worker(emulator_env: dict[str, str], make_client: Any, certs: CertServer) -> Any:
    return make_client(
        "reconcile_worker",
        RECONCILE_WORK_TOPIC=TOPIC,
        PUBSUB_EMULATOR_HOST="127.0.0.1:9",  # never reached by these tests
        RECONCILE_PUSH_SERVICE_ACCOUNTS=PUSH_SA,
        RECONCILE_PUSH_AUDIENCE=AUDIENCE,
        RECONCILE_PUSH_CERTS_URL=certs.url,
    )


def envelope(data: bytes, message_id: str = "m-1") -> dict[str, Any]:
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": message_id},
        "subscription": "projects/demo-refundguard-test/subscriptions/reconcile-work-push",
    }


def written(env: dict[str, str]) -> dict[str, int]:
    client = firestore.Client(project=env["GOOGLE_CLOUD_PROJECT"])
    return {
        name: len(list(client.collection(name).list_documents()))
        for name in ("reconcile_cursors", "reconcile_runs", "reconcile_quota", "quarantine")
    }


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        (None, 401, "missing_token"),
        ("other", 403, "not_the_push_identity"),
        ("audience", 401, None),
    ],
)
def test_only_the_push_identity_gets_in(
    worker: Any,
    google: TestSigner,
    emulator_env: dict[str, str],
    token: str | None,
    status: int,
    code: str | None,
) -> None:
    headers = {}
    if token == "other":
        headers = bearer(
            google.token("someone@demo-project.iam.gserviceaccount.com", audience=AUDIENCE)
        )
    elif token == "audience":
        headers = bearer(google.token(PUSH_SA, audience="https://elsewhere.example"))
    response = worker.post("/", json=envelope(json.dumps(WORK).encode()), headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    if code:
        assert response.get_json()["error"] == code
    assert written(emulator_env) == dict.fromkeys(written(emulator_env), 0)


def test_work_for_a_tenant_that_is_no_more_is_dropped(
    worker: Any, google: TestSigner, emulator_env: dict[str, str]
) -> None:
    headers = bearer(google.token(PUSH_SA, audience=AUDIENCE))
    response = worker.post("/", json=envelope(json.dumps(WORK).encode()), headers=headers)
    assert response.status_code == 200 and response.get_json()["step"] == "dropped"
    assert written(emulator_env)["reconcile_cursors"] == 0


_BAD_FIELDS = st.sampled_from(sorted(WORK))
_BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=10**7),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=2),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=_BAD_FIELDS, value=_BAD_VALUES)
def test_a_message_that_is_not_our_work_is_quarantined_and_acknowledged(
    worker: Any, google: TestSigner, emulator_env: dict[str, str], field: str, value: Any
) -> None:
    body = {**WORK, field: value}
    from refundguard.errors import RefundGuardError
    from refundguard.reconciliation.work import parse

    try:
        parse(json.dumps(body).encode())
    except RefundGuardError:
        pass
    else:
        return  # still a valid message (e.g. another valid environment): not this test's case
    headers = bearer(google.token(PUSH_SA, audience=AUDIENCE))
    before = written(emulator_env)
    message = envelope(json.dumps(body).encode(), message_id=uuid.uuid4().hex)
    response = worker.post("/", json=message, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["effect"] == "quarantined"
    after = written(emulator_env)
    assert after["quarantine"] == before["quarantine"] + 1
    assert {k: v for k, v in after.items() if k != "quarantine"} == {
        k: v for k, v in before.items() if k != "quarantine"
    }


@pytest.mark.parametrize(
    "data", [b"not json", b"[]", b'{"v": 2}', json.dumps({**WORK, "x": 1}).encode()]
)
def test_malformed_work_is_quarantined(
    worker: Any, google: TestSigner, emulator_env: dict[str, str], data: bytes
) -> None:
    headers = bearer(google.token(PUSH_SA, audience=AUDIENCE))
    response = worker.post("/", json=envelope(data, message_id=f"m-{len(data)}"), headers=headers)
    assert response.status_code == 200 and response.get_json()["effect"] == "quarantined"
    assert written(emulator_env)["quarantine"] == 1


def test_it_refuses_to_start_without_its_work_topic(refused_start: Any) -> None:
    problems = refused_start("reconcile_worker", RECONCILE_WORK_TOPIC="")
    assert any("RECONCILE_WORK_TOPIC" in p for p in problems), problems
