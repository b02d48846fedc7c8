"""Fixtures: the real Firestore emulator (started once per session, wiped between tests) and the
functions-framework app of each entry point, exactly as production loads it.

The emulator is the Google Cloud SDK's Java one; the console's browser tests need Debian's
chromium and chromium-driver too (``make browser`` installs them). Where either cannot be found,
the tests that need it are skipped with a loud reason and the summary says so in capitals; with
REFUNDGUARD_REQUIRE_EMULATOR=1 (set by ``.ci/run``) a missing emulator or browser is an error
instead, so CI can never pass without them.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
from google.oauth2 import service_account
from refundguard.appstore.api import AppStoreApiClient
from refundguard.appstore.credentials import AppleApiSettings
from refundguard.appstore.verifier import AppleVerifier
from refundguard.playstore.api import SCOPE as PLAY_SCOPE
from refundguard.playstore.api import PlayApiClient, PlayApiSettings
from refundguard.storeapi import CallPolicy
from refundguard_dev import play_api_data
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki
from refundguard_dev.browser import find_browser
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
from refundguard_dev.pubsub import EmulatorPubSub, Received

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
MAIN_PY = FUNCTIONS_DIR / "main.py"
_emulator_missing: list[str] = []


def _require(found: Path | None, what: str, install: str) -> Path:
    """The emulator's jar, or skip loudly (fail with REFUNDGUARD_REQUIRE_EMULATOR=1, as in CI)."""
    if found is not None and shutil.which(os.environ.get("JAVA", "java")) is not None:
        return found
    _missing(f"{what} EMULATOR NOT FOUND: install {install} and Java")


def _missing(reason: str) -> NoReturn:
    if os.environ.get("REFUNDGUARD_REQUIRE_EMULATOR") == "1":
        pytest.fail(reason + " (REFUNDGUARD_REQUIRE_EMULATOR=1)", pytrace=False)
    _emulator_missing.append(reason)
    pytest.skip(reason)


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver), or skip loudly (fail in CI, like a missing emulator)."""
    found = find_browser()
    if found is None:
        _missing(
            "BROWSER NOT FOUND: install Debian's chromium and chromium-driver (`make browser` "
            "does, as root with apt), or set CHROMIUM_BIN and CHROMEDRIVER_BIN"
        )
    return found


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    jar = _require(
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
    jar = _require(
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


EVENT_SCHEMA = ROOT / "docs" / "events.schema.json"


@functools.cache
def event_validators() -> tuple[jsonschema.Draft202012Validator, jsonschema.Draft202012Validator]:
    """docs/events.schema.json's validators: the CloudEvent, and the message's attributes."""
    schema = json.loads(EVENT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    attributes = {**schema["$defs"]["message_attributes"], "$defs": schema["$defs"]}
    return (
        jsonschema.Draft202012Validator(schema, format_checker=checker),
        jsonschema.Draft202012Validator(attributes, format_checker=checker),
    )


def check_event(
    event: dict[str, Any],
    *,
    attributes: dict[str, str] | None = None,
    ordering_key: str | None = None,
) -> None:
    """An event as published must follow docs/events.schema.json, and what a schema cannot say:
    ``subject`` is the entitlement id, which is ``<namespace>:<purchase id>``; the attributes and
    the ordering key repeat the event's values. Every event a test receives passes here."""
    schema, attributes_schema = event_validators()
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in schema.iter_errors(event)]
    assert not problems, f"event breaks docs/events.schema.json: {problems}\n{event}"
    data = event["data"]
    namespace = data["store"] if data["environment"] == "Production" else "apple-sandbox"
    assert event["subject"] == data["entitlement_id"] == f"{namespace}:{data['purchase_id']}"
    if attributes is not None:
        problems = [e.message for e in attributes_schema.iter_errors(attributes)]
        assert not problems, f"attributes break docs/events.schema.json: {problems}"
        assert attributes == {
            "store": data["store"],
            "environment": data["environment"],
            "status": data["status"],
            "access": "true" if data["access"] else "false",
        }
    if ordering_key is not None:
        subject = event["subject"]
        long = "sha256:" + hashlib.sha256(subject.encode()).hexdigest()
        assert ordering_key == (subject if len(subject.encode()) <= 1024 else long)


class PlatformEvents:
    """A fresh events topic on the Pub/Sub emulator with a pull subscription that sees every
    message published to it (what a platform would receive), and the settings pointing at it.
    Every message received is checked against the published contract (``check_event``)."""

    def __init__(self, pubsub: EmulatorPubSub, name: str, host: str) -> None:
        self.pubsub = pubsub
        self.name = name
        self.topic = pubsub.topic(name)
        self.subscription = f"{name}-all"
        pubsub.subscription(self.subscription, name)
        self.env = {"EVENTS_TOPIC": self.topic, "PUBSUB_EMULATOR_HOST": host}

    def received(self, *, settle_s: float = 0.5) -> list[Received]:
        """Every message published since the last call (pulled and acknowledged), each checked
        against docs/events.schema.json."""
        received = self.pubsub.drain(self.subscription, settle_s=settle_s)
        for message in received:
            check_event(
                message.event, attributes=message.attributes, ordering_key=message.ordering_key
            )
        return received


_topics = itertools.count(1)


@pytest.fixture
def platform_events(
    emulator_env: dict[str, str], pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> PlatformEvents:
    """Events on: ``EVENTS_TOPIC`` (a topic of its own) and ``PUBSUB_EMULATOR_HOST`` set in the
    process environment, so functions built by ``make_client`` publish there."""
    if pubsub_emulator.process.poll() is not None:
        pytest.exit(f"THE PUB/SUB EMULATOR EXITED; its log: {pubsub_emulator.log_path}", 3)
    pubsub = EmulatorPubSub(pubsub_emulator.host, emulator_env["GOOGLE_CLOUD_PROJECT"])
    events = PlatformEvents(pubsub, f"events-{os.getpid()}-{next(_topics)}", pubsub_emulator.host)
    for name, value in events.env.items():
        monkeypatch.setenv(name, value)
    return events


@pytest.fixture
def events_store(emulator_env: dict[str, str], platform_events: PlatformEvents) -> Any:
    """An EntitlementStore with events on (publishing to ``platform_events``)."""
    from refundguard.store import EntitlementStore

    return EntitlementStore.from_env({**emulator_env, **platform_events.env})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _emulator_missing:
        skipped = len(terminalreporter.stats.get("skipped", []))
        terminalreporter.write_sep("!", "EMULATOR OR BROWSER MISSING", red=True, bold=True)
        terminalreporter.write_line(
            f"{skipped} test(s) were SKIPPED, the emulator- or browser-backed ones among them: "
            "this run does NOT show that refundguard works against the Google Cloud emulators, or "
            "that the admin console works in a browser.",
            red=True,
            bold=True,
        )
        for reason in dict.fromkeys(_emulator_missing):
            terminalreporter.write_line(reason, red=True)


# ------------------------------------------------------------------------------------ store APIs
# The local stand-ins of Google's and Apple's APIs (tests/test_*_api*.py): real HTTP servers.

STORE_API_POLICY = CallPolicy(
    connect_timeout_s=1, read_timeout_s=2, attempts=4, base_backoff_s=0.01, max_wait_s=3
)


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


#: The ``appstore.verified`` read of each client method the tests call by name.
VERIFIED = {
    "get_transaction_info": "transaction_info",
    "get_transaction_history": "transaction_history",
    "get_notification_history": "notification_history",
}


def trusting_test_pki() -> AppleVerifier:
    """refundguard's verifier trusting the test PKI, for both environments."""
    return AppleVerifier(
        [default_pki().root_der],
        bundle_ids=[BUNDLE_ID],
        environments=["Production", "Sandbox"],
        app_apple_id=APP_APPLE_ID,
    )
