"""Fixtures shared by every layer (``unit`` needs no emulator, ``integration`` the real ones,
``e2e`` the whole local stack and a browser): the real Firestore and Pub/Sub emulators (started
once per session, wiped between tests), the functions-framework app of each entry point exactly
as production loads it, and the store APIs' local stand-ins with clients of them. What tests
import besides fixtures is in ``support``; each layer's own fixtures are in its conftest.

The emulator is the Google Cloud SDK's Java one; the console's browser tests need Debian's
chromium and chromium-driver too (``make browser`` installs them). Where either cannot be found,
the tests that need it are skipped with a loud reason and the summary says so in capitals; with
REFUNDGUARD_REQUIRE_EMULATOR=1 (set by ``.ci/run``) a missing emulator or browser is an error
instead, so CI can never pass without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.oauth2 import service_account
from refundguard.appstore.api import AppStoreApiClient
from refundguard.appstore.credentials import AppleApiSettings
from refundguard.playstore.api import SCOPE as PLAY_SCOPE
from refundguard.playstore.api import PlayApiClient, PlayApiSettings
from refundguard_dev import play_api_data
from refundguard_dev.apple_pki import BUNDLE_ID
from refundguard_dev.emulator import (
    DEFAULT_JAR,
    FirestoreEmulator,
    PubSubEmulator,
    find_emulator_jar,
    find_pubsub_jar,
    start_emulator,
    start_pubsub_emulator,
    stop_process,
)
from refundguard_dev.fake_appstore_api import ApiKey, FakeAppStoreApi, new_api_key
from refundguard_dev.fake_play_api import FakePlayApi
from support import (
    MAIN_PY,
    STORE_API_POLICY,
    emulator_missing,
    require,
)


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    jar = require(
        find_emulator_jar(),
        "FIRESTORE",
        f"the Google Cloud SDK's cloud-firestore-emulator (expected {DEFAULT_JAR}; or set "
        "FIRESTORE_EMULATOR_JAR)",
    )
    emulator = start_emulator(jar, tmp_path_factory.mktemp("emulator") / "firestore.log")
    try:
        yield emulator
    finally:
        stop_process(emulator.process)


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    jar = require(
        find_pubsub_jar(),
        "PUB/SUB",
        "the Google Cloud SDK's pubsub-emulator (google-cloud-cli-pubsub-emulator; or set "
        "PUBSUB_EMULATOR_JAR)",
    )
    emulator = start_pubsub_emulator(jar, tmp_path_factory.mktemp("pubsub") / "pubsub.log")
    try:
        yield emulator
    finally:
        stop_process(emulator.process)


def check_alive(emulator: FirestoreEmulator) -> None:
    """An emulator that died mid-run stops the run once, saying so, rather than failing every
    later test with pages of "Connection refused"."""
    code = emulator.process.poll()
    if code is not None:
        tail = emulator.log_path.read_text(errors="replace").splitlines()[-5:]
        pytest.exit(
            f"THE FIRESTORE EMULATOR EXITED (code {code}) during the run; its log: "
            f"{emulator.log_path}\n" + "\n".join(tail),
            returncode=3,
        )


@pytest.fixture
def emulator_env(
    firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A wiped emulator, and the process environment pointing the Firestore client at it."""
    check_alive(firestore_emulator)
    firestore_emulator.wipe()
    env = firestore_emulator.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def store(emulator_env: dict[str, str]) -> Any:
    from refundguard.store import EntitlementStore

    return EntitlementStore.from_env(emulator_env)


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``make_client("play_notifications", PLAY_PACKAGE_NAMES="...")``: a Flask test client of
    functions-framework's app for that entry point, loading ``functions/main.py`` as production
    does, with the given environment variables set (on top of ``emulator_env``)."""
    import functions_framework

    def build(target: str, **env: str) -> Any:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("FUNCTION_TARGET", raising=False)
        app = functions_framework.create_app(target=target, source=str(MAIN_PY))
        return app.test_client()

    return build


@pytest.fixture
def refused_start(
    make_client: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> Callable[..., list[str]]:
    """``refused_start("admin", ADMIN_EMAILS="")``: load the entry point as Cloud Functions does
    (``FUNCTION_TARGET`` set); it must refuse to start, naming each problem on its own CRITICAL log
    line. Returns those problems."""
    import json

    def attempt(target: str, **env: str) -> list[str]:
        capsys.readouterr()
        with pytest.raises(SystemExit):
            make_client(target, **env)  # functions-framework sets FUNCTION_TARGET while loading
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
        critical = [line["message"] for line in lines if line["severity"] == "CRITICAL"]
        assert critical and critical[-1] == f"{target} did not start: fix the settings above"
        return [m.removeprefix("configuration: ") for m in critical[:-1]]

    return attempt


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if emulator_missing:
        skipped = len(terminalreporter.stats.get("skipped", []))
        terminalreporter.write_sep("!", "EMULATOR OR BROWSER MISSING", red=True, bold=True)
        terminalreporter.write_line(
            f"{skipped} test(s) were SKIPPED, the emulator- or browser-backed ones among them: "
            "this run does NOT show that refundguard works against the Google Cloud emulators, or "
            "that the admin console works in a browser.",
            red=True,
            bold=True,
        )
        for reason in dict.fromkeys(emulator_missing):
            terminalreporter.write_line(reason, red=True)


# ------------------------------------------------------------------------------------ store APIs
# The local stand-ins of Google's and Apple's APIs (tests/unit/play_api/, tests/unit/apple_api/):
# real HTTP servers.


@pytest.fixture
def play_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlayApi]:
    # google-auth's experimental Regional Access Boundary lookup would call
    # iamcredentials.googleapis.com from a background thread: never from the tests.
    monkeypatch.delenv(
        "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED", raising=False
    )
    with FakePlayApi(packages=[play_api_data.PACKAGE]) as server:
        yield server


@pytest.fixture
def make_play_client(play_api: FakePlayApi, tmp_path: Path) -> Callable[..., PlayApiClient]:
    """Clients whose credentials come from a service-account key file whose ``token_uri`` is the
    stand-in's: google-auth's real token flow runs."""
    key_file = play_api.write_service_account_key(tmp_path / "sa.json")

    def build(base_url: str | None = None, **kw: Any) -> PlayApiClient:
        credentials = service_account.Credentials.from_service_account_file(
            str(key_file), scopes=[PLAY_SCOPE]
        )
        kw.setdefault("policy", STORE_API_POLICY)
        return PlayApiClient(
            PlayApiSettings(base_url or play_api.url), credentials=credentials, **kw
        )

    return build


@pytest.fixture
def play_client(make_play_client: Callable[..., PlayApiClient]) -> PlayApiClient:
    return make_play_client()


@pytest.fixture(scope="session")
def apple_api_key() -> ApiKey:
    return new_api_key()


@pytest.fixture
def appstore_sandbox(apple_api_key: ApiKey) -> Iterator[FakeAppStoreApi]:
    with FakeAppStoreApi(bundle_ids=[BUNDLE_ID, "com.example.other"]) as server:
        server.register_key(apple_api_key)
        yield server


@pytest.fixture
def appstore_production(apple_api_key: ApiKey) -> Iterator[FakeAppStoreApi]:
    with FakeAppStoreApi(environment="Production") as server:
        server.register_key(apple_api_key)
        yield server


@pytest.fixture
def make_apple_client(
    apple_api_key: ApiKey, appstore_sandbox: FakeAppStoreApi, appstore_production: FakeAppStoreApi
) -> Callable[..., AppStoreApiClient]:
    """Clients of both stand-ins (their signed answers verified with ``test_verifier``)."""

    def build(signing_key: ApiKey | None = None, **kw: Any) -> AppStoreApiClient:
        signing_key = signing_key or apple_api_key
        settings = AppleApiSettings(
            signing_key.key_id,
            signing_key.issuer_id,
            signing_key.private_key,
            appstore_production.url,
            appstore_sandbox.url,
        )
        kw.setdefault("policy", STORE_API_POLICY)
        return AppStoreApiClient(settings, **kw)

    return build
