"""The sample platform webhook (examples/platform_consumer/main.py) through functions-framework:
it accepts only Google-signed tokens of refundguard's push identity meant for its own URL, dedupes
by event id, ignores an older version than the last it applied, and calls grant/revoke, and never
prints a Google purchase token (the guide's rule: a short hash instead). The events are built by
refundguard's own builder and checked against docs/events.schema.json, so the sample and the
contract cannot drift apart."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard import alerts as refund_alerts
from refundguard import events, logs
from refundguard.model import Effect, Entitlement, HistoryEntry, Source, Status, StoreName
from refundguard_dev.id_tokens import CertServer, TestSigner, bearer, cert_server
from support import check_event

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "platform_consumer" / "main.py"
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
    status: Status,
    before: Status | None,
    version: int,
    *,
    event_id: str = "m-1",
    token: str = "tok-1",
    admin_reason: str | None = None,
) -> dict[str, Any]:
    """A Pub/Sub push of the event refundguard builds for this change (a Google store event, or
    an admin action with ``admin_reason``), checked against the published schema."""
    entitlement = Entitlement(
        store=StoreName.GOOGLE,
        purchase_id=token,
        environment="Production",
        status=status,
        product_id="course.premium",
        history_count=version,
    )
    google_type = "VOIDED_PURCHASE" if status is Status.REVOKED else "ONE_TIME_PRODUCT_PURCHASED"
    cause: dict[str, Any] = {"source": Source.GOOGLE, "type": google_type}
    if admin_reason is not None:
        regrant = status is Status.ACTIVE
        cause = {
            "source": Source.ADMIN,
            "type": "ADMIN_REGRANT" if regrant else "ADMIN_REVOKE",
            "actor": "support@example.com",
            "reason": admin_reason,
        }
        event_id = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    history = HistoryEntry(
        event_id=event_id,
        event_time_ms=1_700_000_000_000,
        received_ms=1_700_000_000_500,
        effect=Effect.APPLIED,
        status_before=before,
        status_after=status,
        **cause,
    )
    entry = events.access_event(entitlement, history, source="//refundguard/projects/demo")
    assert entry is not None
    message = events.pubsub_message(entry)
    check_event(json.loads(entry.data), attributes=message["attributes"])
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
    label = f"google:token_hash={logs.token_hash('tok-1')}"  # the hash refundguard's logs carry
    assert out.count(f"[platform] REVOKE {label}: active -> revoked (version 2;") == 1
    assert "tok-1" not in out


def test_an_older_version_than_the_last_applied_is_ignored(
    consumer: Any, google: TestSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    token = google.token(PUSH_SA, audience=WEBHOOK)
    newer = push_body(Status.ACTIVE, Status.REVOKED, 5, event_id="admin-1")
    older = push_body(Status.REVOKED, Status.ACTIVE, 3, event_id="m-refund")
    assert send(consumer, newer, token).get_json() == {"outcome": "applied"}
    assert send(consumer, older, token).get_json() == {"outcome": "stale"}
    out = capsys.readouterr().out
    assert f"GRANT  google:token_hash={logs.token_hash('tok-1')}" in out and "REVOKE" not in out


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


# ------------------------------------------------------------------------------ no token printed

#: Google purchase tokens: long strings of the purchase-id alphabet (real ones are ~150 chars).
TOKENS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:~+=-",
    min_size=20,
    max_size=300,
)


@pytest.fixture(scope="module")
def unverified_consumer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One consumer for many examples (token checks off: the tokens are what is tested)."""
    with pytest.MonkeyPatch.context() as patch:
        db = tmp_path_factory.mktemp("consumer") / "c.sqlite3"
        yield load(patch, CONSUMER_VERIFY_TOKENS="false", CONSUMER_DB=str(db))


_rounds = itertools.count(1)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=TOKENS, pasted=st.booleans())
def test_no_google_purchase_token_reaches_the_consumers_output(
    unverified_consumer: Any, capsys: pytest.CaptureFixture[str], token: str, pasted: bool
) -> None:
    """Grants and revocations, from the store or from an admin whose reason quotes the token:
    the printed lines and the answers name the entitlement by its hash only."""
    capsys.readouterr()
    reason = f"customer sent token {token} by mail" if pasted else None
    base = next(_rounds) * 10  # newer versions and new event ids whatever token comes again
    changes = [
        (Status.ACTIVE, None),
        (Status.REVOKED, Status.ACTIVE),
        (Status.ACTIVE, Status.REVOKED),
    ]
    answers = []
    for offset, (status, before) in enumerate(changes):
        body = push_body(
            status, before, base + offset, event_id=f"{token}-{base + offset}", token=token,
            admin_reason=reason,
        )  # fmt: skip
        answers.append(send(unverified_consumer, body, None).get_data(as_text=True))
    captured = capsys.readouterr()
    printed = captured.out + captured.err + "".join(answers)
    changed = [x for x in printed.splitlines() if re.match(r"\[platform\] (GRANT |REVOKE)", x)]
    assert len(changed) == 3, printed
    assert token not in printed
    assert all(f"google:token_hash={logs.token_hash(token)}: " in x for x in changed)


def test_apple_entitlements_are_shown_as_they_are(unverified_consumer: Any, capsys: Any) -> None:
    """An Apple original transaction id is not a secret: shown whole, as the admin API takes it."""
    entitlement = Entitlement(
        store=StoreName.APPLE,
        purchase_id="2000000000000001",
        environment="Sandbox",
        status=Status.REVOKED,
        history_count=2,
    )
    history = HistoryEntry(
        event_id="0b7a4e1c-5c1e-4f0e-9d1a-0d6a3e1f2b3c",
        source=Source.APPLE,
        type="REFUND",
        event_time_ms=1_700_000_000_000,
        received_ms=1_700_000_000_500,
        effect=Effect.APPLIED,
        status_before=Status.ACTIVE,
        status_after=Status.REVOKED,
        reason="REFUND: revocationReason=1",
    )
    entry = events.access_event(entitlement, history, source="//refundguard/projects/demo")
    assert entry is not None
    check_event(json.loads(entry.data), attributes=events.pubsub_message(entry)["attributes"])
    body = {"message": {**events.pubsub_message(entry), "messageId": "2"}}
    capsys.readouterr()
    assert send(unverified_consumer, body, None).get_json() == {"outcome": "applied"}
    assert "[platform] REVOKE apple-sandbox:2000000000000001: active -> revoked" in (
        capsys.readouterr().out
    )


def test_the_docs_quote_the_consumers_lines_without_the_demo_token() -> None:
    """README and docs/integrating.md show what ``make run``'s consumer prints: the demo token's
    hash, never the token."""
    from refundguard_dev.local_stores import DEMO_TOKEN

    for doc in (ROOT / "README.md", ROOT / "docs" / "integrating.md"):
        quoted = [line for line in doc.read_text().splitlines() if "[platform] " in line]
        assert quoted, doc
        for line in quoted:
            assert DEMO_TOKEN not in line, (doc, line)
            for digest in re.findall(r"google:token_hash=(\w+)", line):
                assert digest == logs.token_hash(DEMO_TOKEN), (doc, line)


def test_an_alert_is_acknowledged_and_passed_on_never_applied(
    consumer: Any, google: TestSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alerts share the topic (docs/alerts.md): a consumer that refused them would dead-letter
    every one."""

    alert = refund_alerts.Alert(
        refund_alerts.REFUND_SPIKE, "creator-a", "2026-11-26:*", "refunds:creator-a:2026-11-26",
        "warning", "12 refunds today", "look at today's orders",
        {"day": "2026-11-26", "product_id": None, "refunds": 12, "baseline": 10.0, "mean": 1.0,
         "stddev": 0.5},
    )  # fmt: skip
    entry = refund_alerts.outbox_entry(alert, source="//refundguard/projects/demo", now_ms=1)
    check_event(json.loads(entry.data), attributes=dict(entry.attributes))
    body = {"message": {"data": base64.b64encode(entry.data.encode()).decode(),
                        "attributes": dict(entry.attributes), "messageId": "9"}}  # fmt: skip
    token = google.token(PUSH_SA, audience=WEBHOOK)
    response = send(consumer, body, token)
    assert (response.status_code, response.get_json()) == (200, {"outcome": "alert"})
    out = capsys.readouterr().out
    assert "[platform] ALERT  creator-a refund_spike (warning): 12 refunds today" in out
    assert "GRANT" not in out and "REVOKE" not in out
    other = {"specversion": "1.0", "id": "x", "type": "com.refundguard.other.v9", "data": {}}
    body["message"]["data"] = base64.b64encode(json.dumps(other).encode()).decode()
    assert send(consumer, body, token).get_json() == {"outcome": "ignored"}
