"""What the tests import besides fixtures: where things are, the store-API call policy of the
tests, the Apple verifier trusting the test PKI, the events contract check (``check_event``,
docs/events.schema.json), and the loud skip of a missing emulator or
browser (a failure with REFUNDGUARD_REQUIRE_EMULATOR=1, as in CI)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
from refundguard.appstore import verified
from refundguard.appstore.api import AppStoreApiClient
from refundguard.appstore.verifier import AppleVerifier
from refundguard.storeapi import CallPolicy, StoreApiError
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki
from refundguard_dev.browser import find_browser

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
MAIN_PY = FUNCTIONS_DIR / "main.py"
#: What was found missing (the run's summary says it in capitals).
emulator_missing: list[str] = []

STORE_API_POLICY = CallPolicy(
    connect_timeout_s=1, read_timeout_s=2, attempts=4, base_backoff_s=0.01, max_wait_s=3
)

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


def fails(call: Callable[[], Any], error: type[StoreApiError]) -> StoreApiError:
    """The store-API error ``call`` raises (of type ``error``)."""
    with pytest.raises(error) as info:
        call()
    return info.value


def sandbox_call(client: AppStoreApiClient, name: str, *args: Any, **kw: Any) -> Any:
    """A call of ``client`` for the test app in Sandbox; a read goes through ``appstore.verified``
    (the thin client's call, its signed answer verified)."""
    if name not in VERIFIED:  # a write: nothing signed comes back
        return getattr(client, name)(*args, bundle_id=BUNDLE_ID, environment="Sandbox", **kw)
    read = getattr(verified, VERIFIED[name])
    return read(
        client, trusting_test_pki(), *args, bundle_id=BUNDLE_ID, environment="Sandbox", **kw
    )


def serve(
    target: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *, port: int = 0
) -> Any:
    """The entry point ``target`` loaded from ``functions/main.py`` as production does (``env`` set
    in the process), served over real HTTP on 127.0.0.1 (``port`` 0: a free one) in a thread;
    the caller shuts it down (``served`` does)."""
    import functions_framework
    from werkzeug.serving import make_server

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FUNCTION_TARGET", raising=False)
    app = functions_framework.create_app(target=target, source=str(MAIN_PY))
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@contextlib.contextmanager
def served(
    target: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *, port: int = 0
) -> Iterator[str]:
    """``serve`` for the block: its URL, and the server stopped whatever happens."""
    server = serve(target, env, monkeypatch, port=port)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def require(found: Path | None, what: str, install: str) -> Path:
    """The emulator's jar, or skip loudly (fail with REFUNDGUARD_REQUIRE_EMULATOR=1, as in CI)."""
    if found is not None and shutil.which(os.environ.get("JAVA", "java")) is not None:
        return found
    missing(f"{what} EMULATOR NOT FOUND: install {install} and Java")


def missing(reason: str) -> NoReturn:
    if os.environ.get("REFUNDGUARD_REQUIRE_EMULATOR") == "1":
        pytest.fail(reason + " (REFUNDGUARD_REQUIRE_EMULATOR=1)", pytrace=False)
    emulator_missing.append(reason)
    pytest.skip(reason)


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver), or skip loudly (fail in CI, like a missing emulator)."""
    found = find_browser()
    if found is None:
        missing(
            "BROWSER NOT FOUND: install Debian's chromium and chromium-driver (`make browser` "
            "does, as root with apt), or set CHROMIUM_BIN and CHROMEDRIVER_BIN"
        )
    return found


EVENT_SCHEMA = ROOT / "docs" / "events.schema.json"
ALERT_TYPE = "com.refundguard.alert.v1"


REFUND_REQUEST_TYPE = "com.refundguard.refund_request.v1"


@functools.cache
def event_validators() -> tuple[
    jsonschema.Draft202012Validator,
    jsonschema.Draft202012Validator,
    jsonschema.Draft202012Validator,
]:
    """docs/events.schema.json's validators: the CloudEvent (either type), the access event's
    message attributes, and the refund-request event's."""
    schema = json.loads(EVENT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    defs = schema["$defs"]
    attributes = {**defs["message_attributes"], "$defs": defs}
    refund_attributes = {**defs["refund_request_attributes"], "$defs": defs}
    return (
        jsonschema.Draft202012Validator(schema, format_checker=checker),
        jsonschema.Draft202012Validator(attributes, format_checker=checker),
        jsonschema.Draft202012Validator(refund_attributes, format_checker=checker),
    )


def check_refund_request_event(
    event: dict[str, Any], *, attributes: dict[str, str] | None, ordering_key: str | None
) -> None:
    """A refund-request event: the schema, its attributes repeating its values, its ordering key
    the request's id (the schema is closed: no pending refund token can ride along)."""
    _, _, attributes_schema = event_validators()
    data = event["data"]
    assert event["subject"] == data["request_id"]
    if attributes is not None:
        problems = [e.message for e in attributes_schema.iter_errors(attributes)]
        assert not problems, f"attributes break docs/events.schema.json: {problems}"
        assert attributes == {
            "type": REFUND_REQUEST_TYPE,
            "tenant": data["tenant"],
            "store": data["store"],
            "environment": data["environment"],
            "state": data["state"],
        }
    if ordering_key is not None:
        assert ordering_key == event["subject"]


def check_event(
    event: dict[str, Any],
    *,
    attributes: dict[str, str] | None = None,
    ordering_key: str | None = None,
) -> None:
    """An event as published must follow docs/events.schema.json, and what a schema cannot say:
    ``subject`` is the entitlement id, which is ``<namespace>:<purchase id>``; the attributes and
    the ordering key repeat the event's values. Every event a test receives passes here."""
    schema, attributes_schema, _ = event_validators()
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in schema.iter_errors(event)]
    assert not problems, f"event breaks docs/events.schema.json: {problems}\n{event}"
    if event["type"] != ALERT_TYPE:  # the extension attribute repeats data.tenant
        assert event["tenant"] == event["data"]["tenant"]
    if event["type"] == REFUND_REQUEST_TYPE:
        check_refund_request_event(event, attributes=attributes, ordering_key=ordering_key)
        return
    data = event["data"]
    if event["type"] == ALERT_TYPE:
        check_alert(event, attributes=attributes, ordering_key=ordering_key)
        return
    namespace = data["store"] if data["environment"] == "Production" else "apple-sandbox"
    assert event["subject"] == data["entitlement_id"] == f"{namespace}:{data['purchase_id']}"
    if attributes is not None:
        problems = [e.message for e in attributes_schema.iter_errors(attributes)]
        assert not problems, f"attributes break docs/events.schema.json: {problems}"
        assert attributes == {
            "tenant": data["tenant"],
            "store": data["store"],
            "environment": data["environment"],
            "status": data["status"],
            "access": "true" if data["access"] else "false",
        }
    if ordering_key is not None:
        subject = event["subject"]
        long = "sha256:" + hashlib.sha256(subject.encode()).hexdigest()
        assert ordering_key == (subject if len(subject.encode()) <= 1024 else long)


@functools.cache
def alert_attributes_validator() -> jsonschema.Draft202012Validator:
    """docs/events.schema.json's validator of an alert's message attributes."""
    schema = json.loads(EVENT_SCHEMA.read_text())
    attributes = {**schema["$defs"]["alert_message_attributes"], "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(attributes)


def check_alert(
    event: dict[str, Any],
    *,
    attributes: dict[str, str] | None = None,
    ordering_key: str | None = None,
) -> None:
    """What the schema cannot say of an alert (docs/alerts.md): the attributes repeat the
    event's values, there is no ordering key, and the subject names the alert's tenant."""
    data = event["data"]
    if attributes is not None:
        problems = [e.message for e in alert_attributes_validator().iter_errors(attributes)]
        assert not problems, f"alert attributes break docs/events.schema.json: {problems}"
        assert attributes == {
            "type": ALERT_TYPE,
            "tenant": data["tenant"],
            "kind": data["kind"],
            "severity": data["severity"],
        }
    if ordering_key is not None:
        assert ordering_key == ""
    if not event["subject"].startswith("refund_request:"):
        assert event["subject"].split(":")[1] == data["tenant"], event["subject"]
