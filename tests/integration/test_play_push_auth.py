"""The Play function checks the Pub/Sub push identity itself (not only Cloud Run IAM): a request
without a Google-signed ID token of the push service account changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from refundguard.model import Status, StoreName
from refundguard_dev.id_tokens import CertServer, TestSigner, bearer, cert_server
from refundguard_dev.play_messages import PACKAGE, play_request, post

pytestmark = pytest.mark.emulator

PUSH_SA = "refundguard-play-push@demo-project.iam.gserviceaccount.com"
PUSH_AUDIENCE = "https://refundguard-play-123456.us-central1.run.app"


@pytest.fixture(scope="module")
def google() -> TestSigner:
    return TestSigner("push-kid-1")


@pytest.fixture
def certs(google: TestSigner) -> Iterator[CertServer]:
    with cert_server(google) as server:
        yield server


@pytest.fixture
def client(emulator_env: dict[str, str], make_client: Any, certs: CertServer) -> Any:
    return make_client(
        "play_notifications",
        PLAY_PACKAGE_NAMES=PACKAGE,
        PLAY_PUSH_SERVICE_ACCOUNTS=PUSH_SA,
        PLAY_PUSH_AUDIENCE=PUSH_AUDIENCE,
        PLAY_PUSH_CERTS_URL=certs.url,
    )


def push(client: Any, token: str | None, purchase: str = "tok-auth") -> Any:
    body, headers = play_request("subscription", purchase, notification_type=4)
    if token is not None:
        headers = {**headers, **bearer(token)}
    return post(client, body, headers)


def test_push_with_the_push_identity_is_applied(
    client: Any, google: TestSigner, store: Any
) -> None:
    response = push(client, google.token(PUSH_SA, audience=PUSH_AUDIENCE))
    assert response.status_code == 200 and response.get_json()["effect"] == "applied"
    assert store.get(StoreName.GOOGLE, "tok-auth").status is Status.ACTIVE


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no token", 401, "missing_token"),
        ("garbage", 401, "malformed_token"),
        ("expired", 401, "token_expired"),
        ("other key", 401, "unknown_token_key"),
        ("wrong issuer", 401, "wrong_issuer"),
        ("unverified email", 401, "email_not_verified"),
        ("another service account", 403, "not_the_push_identity"),
        ("minted for another endpoint", 401, "wrong_audience"),
        ("no audience", 401, "wrong_audience"),
    ],
)
def test_anything_else_is_refused_and_writes_nothing(
    client: Any, google: TestSigner, store: Any, case: str, status: int, code: str
) -> None:
    tokens: dict[str, str | None] = {
        "no token": None,
        "garbage": "not.a.jwt",
        "expired": google.token(PUSH_SA, audience=PUSH_AUDIENCE, issued_at=1_000_000_000),
        "other key": TestSigner("forger-kid").token(PUSH_SA, audience=PUSH_AUDIENCE),
        "wrong issuer": google.token(
            PUSH_SA, audience=PUSH_AUDIENCE, issuer="https://evil.example.com"
        ),
        "unverified email": google.token(PUSH_SA, audience=PUSH_AUDIENCE, email_verified=False),
        "another service account": google.token(
            "attacker@evil.iam.gserviceaccount.com", audience=PUSH_AUDIENCE
        ),
        "minted for another endpoint": google.token(
            PUSH_SA, audience="https://someone-else.example.com/hook"
        ),
        "no audience": google.token(PUSH_SA, audience=None),
    }
    response = push(client, tokens[case])
    assert (response.status_code, response.get_json()["error"]) == (status, code)
    assert store.get(StoreName.GOOGLE, "tok-auth") is None
    assert list(store._client.collection("quarantine").stream()) == []


def test_the_push_audience_is_required_with_the_push_identity(
    emulator_env: dict[str, str], refused_start: Any
) -> None:
    problems = refused_start(
        "play_notifications", PLAY_PACKAGE_NAMES=PACKAGE, PLAY_PUSH_SERVICE_ACCOUNTS=PUSH_SA
    )
    assert problems == [
        "PLAY_PUSH_AUDIENCE must be set to a comma-separated list (it is empty or unset)"
    ]


def test_without_the_setting_a_warning_says_the_check_is_off(
    emulator_env: dict[str, str], make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client("play_notifications", PLAY_PACKAGE_NAMES=PACKAGE)
    assert "PLAY_PUSH_SERVICE_ACCOUNTS is not set" in capsys.readouterr().out
    assert push(client, None).status_code == 200


def test_a_domain_entry_is_not_a_push_identity(
    emulator_env: dict[str, str], refused_start: Any
) -> None:
    problems = refused_start(
        "play_notifications",
        PLAY_PACKAGE_NAMES=PACKAGE,
        PLAY_PUSH_SERVICE_ACCOUNTS="*@demo-project.iam.gserviceaccount.com",
        PLAY_PUSH_AUDIENCE=PUSH_AUDIENCE,
    )
    assert problems == ["PLAY_PUSH_SERVICE_ACCOUNTS takes service account emails only"]
