"""The sample platform webhook (examples/platform_consumer/main.py) through functions-framework:
it accepts only Google-signed tokens of refundguard's push identity meant for its own URL, dedupes
by event id, ignores an older version than the last it applied, and calls grant/revoke. The events
are built by refundguard's own builder, so the sample and the contract cannot drift apart."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from refundguard import events
from refundguard.model import Effect, Entitlement, HistoryEntry, Source, Status, StoreName
from refundguard_dev.id_tokens import CertServer, TestSigner, bearer, cert_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform_consumer" / "main.py"
WEBHOOK = "https://platform.example.com/refundguard/events"
PUSH_SA = "refundguard-events-push@demo-project.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def google() -> TestSigner:
    return TestSigner("consumer-kid")


@pytest.fixture
def certs(google: TestSigner) -> Iterator[CertServer]:
    with cert_server(google) as server:
        yield server


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return functions_framework.create_app(target="receive", source=str(EXAMPLE)).test_client()


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch, certs: CertServer, tmp_path: Path) -> Any:
    monkeypatch.delenv("CONSUMER_VERIFY_TOKENS", raising=False)
    return load(
        monkeypatch,
        CONSUMER_AUDIENCE=WEBHOOK,
        CONSUMER_PUSH_SERVICE_ACCOUNT=PUSH_SA,
        CONSUMER_CERTS_URL=certs.url,
        CONSUMER_DB=str(tmp_path / "consumer.sqlite3"),
    )


def push_body(
    status: Status, before: Status | None, version: int, *, event_id: str = "m-1"
) -> dict[str, Any]:
    """A Pub/Sub push of the event refundguard builds for this change."""
    entitlement = Entitlement(
        store=StoreName.GOOGLE,
        purchase_id="tok-1",
        environment="Production",
        status=status,
        product_id="course.premium",
        history_count=version,
    )
    history = HistoryEntry(
        event_id=event_id,
        source=Source.GOOGLE,
        type="VOIDED_PURCHASE",
        event_time_ms=1_700_000_000_000,
        received_ms=1_700_000_000_500,
        effect=Effect.APPLIED,
        status_before=before,
        status_after=status,
    )
    entry = events.access_event(entitlement, history, source="//refundguard/projects/demo")
    assert entry is not None
    return {
        "message": {**events.pubsub_message(entry), "messageId": "1"},
        "subscription": "projects/demo/subscriptions/platform-push",
    }


def send(client: Any, body: dict[str, Any], token: str | None) -> Any:
    return client.post("/", json=body, headers=bearer(token) if token else {})


def test_a_push_of_refundguards_identity_is_applied_once(
    consumer: Any, google: TestSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    token = google.token(PUSH_SA, audience=WEBHOOK)
    refund = push_body(Status.REVOKED, Status.ACTIVE, 2)
    response = send(consumer, refund, token)
    assert (response.status_code, response.get_json()) == (200, {"outcome": "applied"})
    assert send(consumer, refund, token).get_json() == {"outcome": "duplicate"}
    out = capsys.readouterr().out
    assert out.count("[platform] REVOKE google:tok-1: active -> revoked (version 2;") == 1


def test_an_older_version_than_the_last_applied_is_ignored(
    consumer: Any, google: TestSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    token = google.token(PUSH_SA, audience=WEBHOOK)
    newer = push_body(Status.ACTIVE, Status.REVOKED, 5, event_id="admin-1")
    older = push_body(Status.REVOKED, Status.ACTIVE, 3, event_id="m-refund")
    assert send(consumer, newer, token).get_json() == {"outcome": "applied"}
    assert send(consumer, older, token).get_json() == {"outcome": "stale"}
    out = capsys.readouterr().out
    assert "GRANT  google:tok-1" in out and "REVOKE" not in out


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no token", 401),
        ("garbage", 401),
        ("another webhook's audience", 401),
        ("not Google's issuer", 401),
        ("not Google's key", 401),
        ("expired", 401),
        ("another service account", 403),
        ("unverified email", 403),
    ],
)
def test_anything_but_refundguards_signed_push_is_refused(
    consumer: Any, google: TestSigner, capsys: pytest.CaptureFixture[str], case: str, status: int
) -> None:
    tokens: dict[str, str | None] = {
        "no token": None,
        "garbage": "not.a.jwt",
        "another webhook's audience": google.token(PUSH_SA, audience="https://other.example"),
        "not Google's issuer": google.token(PUSH_SA, audience=WEBHOOK, issuer="https://evil"),
        "not Google's key": TestSigner("forger-kid").token(PUSH_SA, audience=WEBHOOK),
        "expired": google.token(PUSH_SA, audience=WEBHOOK, issued_at=1_000_000_000),
        "another service account": google.token(
            "attacker@evil.iam.gserviceaccount.com", audience=WEBHOOK
        ),
        "unverified email": google.token(PUSH_SA, audience=WEBHOOK, email_verified=False),
    }
    response = send(consumer, push_body(Status.ACTIVE, None, 1), tokens[case])
    assert response.status_code == status
    assert "GRANT" not in capsys.readouterr().out


def test_a_body_that_is_no_event_is_a_400(consumer: Any, google: TestSigner) -> None:
    token = google.token(PUSH_SA, audience=WEBHOOK)
    junk = {"message": {"data": base64.b64encode(json.dumps({"x": 1}).encode()).decode()}}
    assert send(consumer, junk, token).status_code == 400
    assert send(consumer, {"message": {"data": "%%%"}}, token).status_code == 400


def test_without_token_checks_it_says_so_and_accepts_unsigned_pushes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = load(
        monkeypatch, CONSUMER_VERIFY_TOKENS="false", CONSUMER_DB=str(tmp_path / "c.sqlite3")
    )
    assert "pushes are NOT authenticated" in capsys.readouterr().out
    response = send(client, push_body(Status.ACTIVE, None, 1), None)
    assert response.get_json() == {"outcome": "applied"}


def test_token_checks_on_need_the_audience_and_the_push_identity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONSUMER_VERIFY_TOKENS", raising=False)
    monkeypatch.delenv("CONSUMER_AUDIENCE", raising=False)
    with pytest.raises(SystemExit, match="CONSUMER_AUDIENCE"):
        load(monkeypatch, CONSUMER_DB=str(tmp_path / "c.sqlite3"))
