"""Apple's test notification, end to end: ``refundguard-admin apple-test`` asks the admin function,
which asks the App Store Server API's stand-in (Request a Test Notification); the stand-in, as
Apple does, POSTs a signed ``TEST`` notification to the configured URL, here the real
``apple_notifications`` function; Get Test Notification Status then says how it went. Apple's
documented errors (a malformed or unknown token), a refused delivery, an unreachable URL and the
admin route's own refusals are checked too. Real HTTP, the Firestore emulator."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard.appstore.api import AppStoreApiClient
from refundguard.storeapi import StoreNotFoundError, StoreRequestError
from refundguard_admin import cli
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki
from refundguard_dev.emulator import free_port
from refundguard_dev.fake_appstore_api import ApiKey, FakeAppStoreApi
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner, bearer, cert_server
from support import served

pytestmark = pytest.mark.emulator

ADMIN = "admin@example.com"


@pytest.fixture(scope="module")
def signer() -> TestSigner:
    return TestSigner("key-apple-test")


@pytest.fixture(scope="module")
def certs(signer: TestSigner) -> Iterator[CertServer]:
    with cert_server(signer) as server:
        yield server


@pytest.fixture
def urls(
    emulator_env: dict[str, str],
    certs: CertServer,
    appstore_sandbox: FakeAppStoreApi,
    appstore_production: FakeAppStoreApi,
    apple_api_key: ApiKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    """The admin function and a Sandbox-only Apple function over HTTP (their settings agree)."""
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    env = {
        "ADMIN_AUDIENCES": AUDIENCE,
        "ADMIN_EMAILS": ADMIN,
        "ADMIN_CERTS_URL": certs.url,
        "APPLE_API_KEY_ID": apple_api_key.key_id,
        "APPLE_API_ISSUER_ID": apple_api_key.issuer_id,
        "APPLE_API_PRIVATE_KEY": apple_api_key.pem,
        "APPLE_API_BASE_URL": appstore_production.url,
        "APPLE_API_SANDBOX_BASE_URL": appstore_sandbox.url,
        "APPLE_BUNDLE_IDS": BUNDLE_ID,
        "APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
        "APPLE_ROOT_CERTS": str(root),
        "APPLE_ENVIRONMENTS": "Sandbox",
    }
    with (
        served("admin", env, monkeypatch) as admin,
        served("apple_notifications", env, monkeypatch) as apple,
    ):
        yield {"admin": admin, "apple": apple}


def run(url: str, token: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", url, "--token", token, *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_apple_test_reaches_the_apple_function_and_says_so(
    urls: dict[str, str], signer: TestSigner, appstore_sandbox: FakeAppStoreApi
) -> None:
    appstore_sandbox.notification_url = urls["apple"] + "/"
    code, out, err = run(
        urls["admin"], signer.token(ADMIN), "apple-test", "--environment", "Sandbox"
    )
    assert code == 0, err
    assert f"Apple TEST notification requested (Sandbox, {BUNDLE_ID}): token" in out
    assert re.search(r"attempt \d{4}-\d\d-\d\d [\d:]+ UTC: SUCCESS", out), out
    assert "Delivered: Apple reached apple_notifications" in out
    # The token printed answers the status command later (Apple keeps it six months).
    token = re.search(r"token (\S+)", out).group(1)  # type: ignore[union-attr]
    code, again, err = run(
        urls["admin"], signer.token(ADMIN), "apple-test-status", token, "--environment", "Sandbox"
    )
    assert code == 0 and "SUCCESS" in again and "Delivered" in again, err


def test_a_delivery_the_function_refuses_or_that_never_arrives_is_not_delivered(
    urls: dict[str, str], signer: TestSigner, appstore_production: FakeAppStoreApi
) -> None:
    """A Production TEST to a Sandbox-only function (a 400) and to a URL nobody serves; and no
    URL at all in App Store Connect: no attempt, and the command says how to ask again."""
    for target, expected in (
        (urls["apple"] + "/", "UNSUCCESSFUL_HTTP_RESPONSE_CODE"),
        (f"http://127.0.0.1:{free_port()}/", "NO_RESPONSE"),
    ):
        appstore_production.notification_url = target
        code, out, err = run(urls["admin"], signer.token(ADMIN), "apple-test")
        assert code == 0, err
        assert f": {expected}" in out and "NOT delivered" in out, out
    appstore_production.notification_url = None
    code, out, err = run(urls["admin"], signer.token(ADMIN), "apple-test", "--wait", "0.1")
    assert code == 0 and "No attempt recorded yet; ask again" in out, out


def test_apple_documented_errors_of_the_status(
    make_apple_client: Callable[..., AppStoreApiClient], appstore_sandbox: FakeAppStoreApi
) -> None:
    client = make_apple_client()
    token = client.request_test_notification(bundle_id=BUNDLE_ID, environment="Sandbox")
    status = client.get_test_notification_status(token, bundle_id=BUNDLE_ID, environment="Sandbox")
    assert status.send_attempts == () and not status.delivered  # no URL configured
    assert status.signed_payload  # the TEST notification Apple would have sent
    with pytest.raises(StoreRequestError) as bad:
        client.get_test_notification_status("nonsense", bundle_id=BUNDLE_ID, environment="Sandbox")
    assert bad.value.details.get("reason") == "4000020" or "4000020" in str(bad.value.details)
    unknown = "00000000-0000-0000-0000-000000000000_1700000000000"
    with pytest.raises(StoreNotFoundError):
        client.get_test_notification_status(unknown, bundle_id=BUNDLE_ID, environment="Sandbox")
    with pytest.raises(StoreNotFoundError):  # another app's test is not ours to see
        client.get_test_notification_status(
            token, bundle_id="com.example.other", environment="Sandbox"
        )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(["environment", "bundle_id"]),
    value=st.one_of(
        st.text(max_size=20), st.integers(), st.none(), st.lists(st.integers(), max_size=2)
    ),
)
def test_any_bad_environment_or_bundle_id_is_a_400_and_asks_apple_nothing(
    urls: dict[str, str],
    signer: TestSigner,
    appstore_sandbox: FakeAppStoreApi,
    appstore_production: FakeAppStoreApi,
    field: str,
    value: Any,
) -> None:
    import requests

    if value in ("Production", "Sandbox", BUNDLE_ID):
        return
    before = len(appstore_sandbox.test_notifications) + len(appstore_production.test_notifications)
    answer = requests.post(
        urls["admin"] + "/apple/notifications:test",
        json={field: value},
        headers=bearer(signer.token(ADMIN)),
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] in ("bad_environment", "unknown_bundle_id")
    after = len(appstore_sandbox.test_notifications) + len(appstore_production.test_notifications)
    assert after == before
    status = requests.get(
        urls["admin"] + "/apple/notifications/test/x",
        params={field: value} if isinstance(value, str) else {field: repr(value)},
        headers=bearer(signer.token(ADMIN)),
        timeout=10,
    )
    assert status.status_code == 400, status.text


def test_apple_test_needs_an_admin(urls: dict[str, str], signer: TestSigner) -> None:
    import requests

    anonymous = requests.post(urls["admin"] + "/apple/notifications:test", timeout=10)
    assert anonymous.status_code == 401
    stranger = requests.post(
        urls["admin"] + "/apple/notifications:test",
        headers=bearer(signer.token("eve@example.com")),
        timeout=10,
    )
    assert stranger.status_code == 403
