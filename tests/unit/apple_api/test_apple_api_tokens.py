"""The App Store Server API's credentials: API tokens (one per bundle id, cached, renewed before
expiry) that the local stand-in checks as Apple does, keys Apple does not know, no secret in the
logs, and the settings (all three key settings or none; the key checked, never echoed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from refundguard import config
from refundguard.appstore import verified
from refundguard.appstore.api import AppStoreApiClient
from refundguard.appstore.credentials import (
    DEFAULT_BASE_URL,
    DEFAULT_SANDBOX_BASE_URL,
    ApiTokens,
    AppleApiSettings,
    read_apple_api_settings,
)
from refundguard.config import Settings
from refundguard.storeapi import (
    StoreAuthError,
)
from refundguard_dev.apple_pki import BUNDLE_ID
from refundguard_dev.fake_appstore_api import ApiKey, FakeAppStoreApi, Fault
from support import fails, sandbox_call, trusting_test_pki

TX = "2000000000000001"
OTHER_APP = "com.example.other"


# ---------------------------------------------------------------------------------------- tokens


def test_one_token_per_bundle_id_for_many_calls(
    sandbox: FakeAppStoreApi, client: AppStoreApiClient
) -> None:
    sandbox.add_transaction()
    sandbox.add_transaction(transaction_id="2000000000000009", bundle_id=OTHER_APP)
    for _ in range(3):
        sandbox_call(client, "get_transaction_info", TX)
    assert client.tokens.minted == 1 and len(set(sandbox.tokens_seen)) == 1
    other = verified.transaction_info(
        client, trusting_test_pki(), "2000000000000009", bundle_id=OTHER_APP, environment="Sandbox"
    )
    assert other.bundle_id == OTHER_APP and client.tokens.minted == 2
    claims = jwt.decode(sandbox.tokens_seen[-1], options={"verify_signature": False})
    header = jwt.get_unverified_header(sandbox.tokens_seen[-1])
    assert header == {"alg": "ES256", "kid": client.settings.key_id, "typ": "JWT"}
    assert claims["aud"] == "appstoreconnect-v1" and claims["bid"] == OTHER_APP
    assert claims["exp"] - claims["iat"] <= 3600 and claims["iss"] == client.settings.issuer_id


def test_the_token_is_renewed_shortly_before_it_expires(
    sandbox: FakeAppStoreApi, make_client: Callable[..., AppStoreApiClient], key: ApiKey
) -> None:
    sandbox.add_transaction()
    settings = AppleApiSettings(
        key.key_id, key.issuer_id, key.private_key, sandbox.url, sandbox.url
    )
    client = make_client(tokens=ApiTokens(settings, lifetime_s=3, refresh_margin_s=1))
    sandbox_call(client, "get_transaction_info", TX)
    sandbox_call(client, "get_transaction_info", TX)
    assert client.tokens.minted == 1
    time.sleep(2.1)  # one second before expiry: inside the margin
    sandbox_call(client, "get_transaction_info", TX)
    assert client.tokens.minted == 2 and len(set(sandbox.tokens_seen)) == 2


def test_a_key_apple_does_not_know_is_refused(
    sandbox: FakeAppStoreApi, make_client: Callable[..., AppStoreApiClient], key: ApiKey
) -> None:
    impostor = ApiKey(key.key_id, key.issuer_id, ec.generate_private_key(ec.SECP256R1()))
    client = make_client(impostor)
    error = fails(lambda: sandbox_call(client, "get_transaction_info", TX), StoreAuthError)
    assert error.upstream_status == 401 and "APPLE_API_PRIVATE_KEY" in error.message
    assert sandbox.refused_tokens and "Signature" in sandbox.refused_tokens[-1]
    unknown_app = make_client()
    fails(
        lambda: unknown_app.get_transaction_info(
            TX, bundle_id="com.unknown", environment="Sandbox"
        ),
        StoreAuthError,
    )
    assert sandbox.refused_tokens[-1] == "unknown bid"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"exp_after_s": 3601}, "exp more than 60 minutes after iat"),
        ({"aud": "appstoreconnect-v2"}, "InvalidAudienceError"),
        ({"iss": "00000000-0000-0000-0000-000000000000"}, "InvalidIssuerError"),
        ({"drop": "bid"}, "MissingRequiredClaimError"),
        ({"drop": "iat"}, "MissingRequiredClaimError"),
        ({"exp_after_s": -10}, "ExpiredSignatureError"),
        ({"typ": None}, "header must be alg ES256, typ JWT"),
        ({"kid": "UNKNOWN"}, "unknown kid"),
    ],
)
def test_the_stand_in_checks_api_tokens_as_apple_does(
    sandbox: FakeAppStoreApi, key: ApiKey, change: dict[str, Any], why: str
) -> None:
    sandbox.add_transaction()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": change.get("iss", key.issuer_id),
        "iat": now,
        "exp": now + change.get("exp_after_s", 600),
        "aud": change.get("aud", "appstoreconnect-v1"),
        "bid": BUNDLE_ID,
    }
    claims.pop(change.get("drop", ""), None)
    headers = {"kid": change.get("kid", key.key_id), "typ": change.get("typ", "JWT")}
    token = jwt.encode(claims, key.private_key, algorithm="ES256", headers=headers)
    assert ("typ" in jwt.get_unverified_header(token)) == ("typ" not in change)
    answer = requests.get(
        f"{sandbox.url}/inApps/v1/transactions/{TX}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert answer.status_code == 401
    assert why in sandbox.refused_tokens[-1]
    good = jwt.encode({**claims, "exp": now + 600, "iat": now, "aud": "appstoreconnect-v1",
                       "iss": key.issuer_id, "bid": BUNDLE_ID}, key.private_key,
                      algorithm="ES256", headers={"kid": key.key_id, "typ": "JWT"})  # fmt: skip
    assert requests.get(
        f"{sandbox.url}/inApps/v1/transactions/{TX}",
        headers={"Authorization": f"Bearer {good}"},
        timeout=5,
    ).ok


def test_no_secret_reaches_the_logs_or_the_errors(
    sandbox: FakeAppStoreApi,
    make_client: Callable[..., AppStoreApiClient],
    key: ApiKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox.add_transaction()
    client = make_client()
    sandbox.fail_next(Fault(status=503), Fault(status=429, retry_after="0"))
    sandbox_call(client, "get_transaction_info", TX)
    impostor = make_client(
        ApiKey(key.key_id, key.issuer_id, ec.generate_private_key(ec.SECP256R1()))
    )
    error = fails(lambda: sandbox_call(impostor, "get_transaction_info", TX), StoreAuthError)
    logged = capsys.readouterr().out + str(error) + repr(error.details) + repr(client.settings)
    assert "store API call failed; retrying" in logged
    for token in sandbox.tokens_seen:
        assert token not in logged and token.split(".")[2] not in logged
    pem = key.pem
    assert "PRIVATE KEY" not in logged and pem.splitlines()[1] not in logged


# ---------------------------------------------------------------------------------------- settings


def read(**env: str) -> tuple[AppleApiSettings | None, list[str]]:
    settings = Settings(env)
    return read_apple_api_settings(settings), settings.problems


def test_settings_all_three_or_none(key: ApiKey) -> None:
    assert config.APPLE_API_ENV == (
        "APPLE_API_KEY_ID",
        "APPLE_API_ISSUER_ID",
        "APPLE_API_PRIVATE_KEY",
        "APPLE_API_BASE_URL",
        "APPLE_API_SANDBOX_BASE_URL",
    )
    assert read() == (None, [])
    full = {"APPLE_API_KEY_ID": key.key_id, "APPLE_API_ISSUER_ID": key.issuer_id}
    full["APPLE_API_PRIVATE_KEY"] = key.pem
    settings, problems = read(**full)
    assert problems == [] and settings is not None
    assert (settings.base_url, settings.sandbox_base_url) == (
        DEFAULT_BASE_URL,
        DEFAULT_SANDBOX_BASE_URL,
    )
    assert settings.private_key.private_numbers() == key.private_key.private_numbers()
    assert key.pem.splitlines()[1] not in repr(settings)
    one_line = {**full, "APPLE_API_PRIVATE_KEY": key.pem.strip().replace("\n", "\\n")}
    assert read(**one_line)[0] is not None
    local = read(**full, APPLE_API_SANDBOX_BASE_URL="http://localhost:8086/")[0]
    assert local is not None and local.sandbox_base_url == "http://localhost:8086"
    settings, problems = read(APPLE_API_KEY_ID=key.key_id)
    assert settings is None and len(problems) == 1
    assert "APPLE_API_ISSUER_ID, APPLE_API_PRIVATE_KEY must be set too" in problems[0]


def test_settings_problems_never_echo_the_key(key: ApiKey) -> None:
    full = {"APPLE_API_KEY_ID": key.key_id, "APPLE_API_ISSUER_ID": key.issuer_id}
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    truncated = key.pem[:120]
    for pem, expected in (
        (rsa_pem, "is not a P-256 EC private key"),
        (p384.decode(), "is not a P-256 EC private key"),
        (truncated, "is not an unencrypted PEM private key"),
    ):
        settings, problems = read(**full, APPLE_API_PRIVATE_KEY=pem)
        assert settings is None and len(problems) == 1 and expected in problems[0]
        assert pem.splitlines()[1][:20] not in problems[0]
    _, problems = read(
        APPLE_API_KEY_ID="bad id!",
        APPLE_API_ISSUER_ID="not-a-uuid",
        APPLE_API_PRIVATE_KEY=key.pem,
        APPLE_API_BASE_URL="http://api.storekit.apple.com",
    )
    assert len(problems) == 3
    assert any("APPLE_API_BASE_URL must be an https:// URL" in p for p in problems)
