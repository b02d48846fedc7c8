"""PLAY_API_SERVICE_ACCOUNT: the one account the Play Developer API is called as. Read and
checked with the other Play API settings; with Google's URL, application default credentials
impersonate it (google-auth's impersonated credentials, built but never refreshed here: nothing
reaches Google); against the local stand-in, the key file's account impersonates it at the
stand-in's IAM ``generateAccessToken`` over real HTTP, with IAM's documented refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.auth import impersonated_credentials
from google.oauth2 import service_account
from hypothesis import given
from hypothesis import strategies as st
from refundguard.config import Settings
from refundguard.playstore.api import PlayApiClient
from refundguard.playstore.credentials import (
    DEFAULT_BASE_URL,
    SCOPE,
    TOKEN_LIFETIME_S,
    PlayApiSettings,
    play_credentials,
    read_play_api_settings,
)
from refundguard.storeapi import StoreAuthError, StoreUnavailableError
from refundguard_dev import play_api_data as data
from refundguard_dev.fake_play_api import DEFAULT_ACCOUNT, FakePlayApi, Fault
from support import STORE_API_POLICY

PLAY_ACCOUNT = "refundguard-play-api@demo-refundguard.iam.gserviceaccount.com"
PKG = data.PACKAGE

names = st.from_regex(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", fullmatch=True)
projects = st.from_regex(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", fullmatch=True)


def read(**env: str) -> tuple[PlayApiSettings | None, list[str]]:
    settings = Settings({"PLAY_DEVELOPER_API": "on", **env})
    return read_play_api_settings(settings), settings.problems


@given(name=names, project=projects)
def test_a_service_account_email_is_the_account_the_api_is_called_as(
    name: str, project: str
) -> None:
    email = f"{name}@{project}.iam.gserviceaccount.com"
    play, problems = read(PLAY_API_SERVICE_ACCOUNT=f" {email.upper()} ")
    assert problems == [] and play is not None
    assert play.service_account == email and play.credentials is None
    assert play.base_url == DEFAULT_BASE_URL


@given(
    value=st.one_of(
        st.emails().filter(lambda e: not e.lower().endswith(".gserviceaccount.com")),
        st.text(st.characters(codec="ascii"), min_size=1, max_size=40).filter(str.strip),
        names.map(lambda n: f"{n}@evil.example.com/.gserviceaccount.com"),
    )
)
def test_anything_else_is_one_clear_problem(value: str) -> None:
    play, problems = read(PLAY_API_SERVICE_ACCOUNT=value)
    assert len(problems) == 1 and "PLAY_API_SERVICE_ACCOUNT" in problems[0], problems
    assert play is None or play.service_account is None


def test_unset_is_the_fallback_each_functions_own_account() -> None:
    play, problems = read()
    assert problems == [] and play == PlayApiSettings()
    assert play is not None and play.service_account is None


def test_with_googles_url_the_runtime_impersonates_the_account(
    play_api: FakePlayApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Construction only (a refresh would call Google's IAM): application default credentials
    (here a key file's) are the source, the account the target, Google's endpoint."""
    key = play_api.write_service_account_key(tmp_path / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    play, problems = read(PLAY_API_SERVICE_ACCOUNT=PLAY_ACCOUNT)
    assert problems == [] and play is not None
    credentials = play_credentials(play)
    assert isinstance(credentials, impersonated_credentials.Credentials)
    assert credentials.service_account_email == PLAY_ACCOUNT
    assert credentials._target_scopes == [SCOPE]
    assert credentials._lifetime == TOKEN_LIFETIME_S <= 3600
    assert credentials._iam_endpoint_override is None  # Google's iamcredentials.googleapis.com
    source = credentials._source_credentials
    assert isinstance(source, service_account.Credentials)
    assert source.service_account_email == DEFAULT_ACCOUNT
    # Unset: the runtime's own account, not impersonated (the fallback).
    fallback = play_credentials(PlayApiSettings())
    assert isinstance(fallback, service_account.Credentials)
    assert fallback.service_account_email == DEFAULT_ACCOUNT


# ---------------------------------------------------------------- the local stand-in, real HTTP


@pytest.fixture
def local(play_api: FakePlayApi, tmp_path: Path) -> dict[str, str]:
    key = play_api.write_service_account_key(tmp_path / "sa.json")
    play_api.add_service_account(PLAY_ACCOUNT, token_creators=[DEFAULT_ACCOUNT])
    play_api.invited = {PLAY_ACCOUNT}  # only the Play API account is invited
    return {
        "PLAY_API_BASE_URL": play_api.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "PLAY_API_SERVICE_ACCOUNT": PLAY_ACCOUNT,
    }


def client_of(env: dict[str, str]) -> PlayApiClient:
    play, problems = read(**env)
    assert problems == [] and play is not None
    return PlayApiClient(play, policy=STORE_API_POLICY)


def test_every_call_is_made_as_the_account_one_token_serving_many(
    play_api: FakePlayApi, local: dict[str, str]
) -> None:
    client = client_of(local)
    for _ in range(3):
        assert client.list_voided_purchases(PKG, max_results=1).rows == ()
    assert play_api.api_callers() == [PLAY_ACCOUNT] * 3
    assert play_api.iam_requests == [PLAY_ACCOUNT]  # one impersonated token, reused
    body = next(r for r in play_api.requests if r.path.endswith(":generateAccessToken")).json()
    assert body["scope"] == [SCOPE] and body["lifetime"] == f"{TOKEN_LIFETIME_S}s"


def test_without_it_the_key_files_own_account_calls_and_is_not_invited(
    play_api: FakePlayApi, local: dict[str, str]
) -> None:
    """The fallback calls as the function's own account: refused where only the Play API
    account is invited (the test above passing is therefore the impersonation's doing)."""
    client = client_of({k: v for k, v in local.items() if k != "PLAY_API_SERVICE_ACCOUNT"})
    with pytest.raises(StoreAuthError):
        client.list_voided_purchases(PKG, max_results=1)
    assert play_api.iam_requests == [] and play_api.api_callers() == [DEFAULT_ACCOUNT]


@pytest.mark.parametrize(
    ("setup", "iam_says"),
    [
        ("no_token_creator", "403 PERMISSION_DENIED"),
        ("unknown_account", "404 NOT_FOUND"),
        ("iam_api_off", "403 PERMISSION_DENIED"),
    ],
)
def test_iam_refusing_is_a_configuration_error_not_retried(
    play_api: FakePlayApi, local: dict[str, str], setup: str, iam_says: str
) -> None:
    if setup == "no_token_creator":
        play_api.token_creators[PLAY_ACCOUNT] = set()
    elif setup == "unknown_account":
        del play_api.token_creators[PLAY_ACCOUNT]
    else:
        play_api.iam_disabled = True
    client = client_of(local)
    with pytest.raises(StoreAuthError) as caught:
        client.list_voided_purchases(PKG, max_results=1)
    assert not caught.value.kind.retryable and caught.value.upstream_status is None
    assert f"IAM answered {iam_says}" in caught.value.message
    assert "Service Account Token Creator" in caught.value.message  # the hint names the fix
    assert play_api.iam_requests == [PLAY_ACCOUNT]  # asked once, not retried
    assert play_api.api_callers() == []  # the Play API never called without a token


@pytest.mark.parametrize("status", [429, 500, 503])
def test_iam_failing_is_retried_then_unavailable(
    play_api: FakePlayApi, local: dict[str, str], status: int
) -> None:
    client = client_of(local)
    play_api.fail_next(*[Fault(status=status, target="iam") for _ in range(50)])
    with pytest.raises(StoreUnavailableError) as caught:
        client.list_voided_purchases(PKG, max_results=1, deadline_s=2)
    assert caught.value.kind.retryable
    assert len(play_api.iam_requests) >= 2  # retried within the deadline
    play_api.faults.clear()
    assert client.list_voided_purchases(PKG, max_results=1).rows == ()  # then it works
    assert play_api.api_callers() == [PLAY_ACCOUNT]
