"""The admin CLI against the real function served over HTTP (werkzeug, in a thread) and the
Firestore emulator, with ID tokens from the test signer passed as --token; token sources and
exit codes as units."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from refundguard_admin import cli
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner
from support import served

ADMIN = "admin@example.com"
PURCHASE = "opaque.tok-en_with.dots-and_underscores"


@pytest.fixture
def server_url(
    emulator_env: dict[str, str], certs: CertServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    env = {"ADMIN_AUDIENCES": AUDIENCE, "ADMIN_EMAILS": ADMIN, "ADMIN_CERTS_URL": certs.url}
    with served("admin", env, monkeypatch) as url:
        yield url


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_regrant_show_revoke(server_url: str, signer: TestSigner) -> None:
    token = signer.token(ADMIN)
    code, out, err = run(
        "--url",
        server_url,
        "--token",
        token,
        "regrant",
        "google",
        PURCHASE,
        "--reason",
        "paid by invoice",
    )
    assert code == 0, err
    assert "Re-granted: now active" in out and "paid by invoice" in out and ADMIN in out

    code, out, err = run(
        "revoke",
        "google",
        PURCHASE,
        "--reason",
        "chargeback",
        "--url",
        server_url,
        "--token",
        token,
    )  # options after the command
    assert code == 0, err
    assert "Revoked: now revoked" in out and "access: NO" in out

    code, out, err = run("--url", server_url, "--token", token, "show", "google", PURCHASE)
    assert code == 0, err
    assert "History (newest first, 2 of 2)" in out
    lines = out.splitlines()
    revoke_line = next(i for i, line in enumerate(lines) if "ADMIN_REVOKE" in line)
    regrant_line = next(i for i, line in enumerate(lines) if "ADMIN_REGRANT" in line)
    assert revoke_line < regrant_line
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    events = lines[next(i for i, line in enumerate(lines) if line.startswith("History")) + 1 :]
    assert len(events) == 2
    assert all(re.match(rf"  {iso}  admin ", line) for line in events)  # each with its time
    assert re.search(rf"last event +admin ADMIN_REVOKE at {iso}$", out, re.MULTILINE)
    assert re.search(rf"updated +{iso}$", out, re.MULTILINE) and "None" not in out


def test_json_output(server_url: str, signer: TestSigner) -> None:
    code, out, _ = run(
        "--url",
        server_url,
        "--token",
        signer.token(ADMIN),
        "--json",
        "regrant",
        "apple-sandbox",
        "2000000000000001",
        "--reason",
        "test",
    )
    assert code == 0
    body = json.loads(out)
    assert body["entitlement"]["status"] == "active"
    assert body["entitlement"]["environment"] == "Sandbox"
    assert body["event"]["reason"] == "test"


def test_idempotency_key_flag_replays(server_url: str, signer: TestSigner, store: Any) -> None:
    from refundguard.model import StoreName

    args = (
        "--url",
        server_url,
        "--token",
        signer.token(ADMIN),
        "regrant",
        "google",
        PURCHASE,
        "--reason",
        "r",
        "--idempotency-key",
        "ticket-42",
    )
    assert run(*args)[0] == 0
    code, out, _ = run(*args)
    assert code == 0 and "replayed" in out
    assert len(store.history(StoreName.GOOGLE, PURCHASE)) == 1


def test_errors_exit_non_zero(server_url: str, signer: TestSigner) -> None:
    token = signer.token(ADMIN)
    code, _, err = run("--url", server_url, "--token", token, "show", "google", "never-seen")
    assert code == cli.EXIT_API_ERROR and "HTTP 404" in err
    code, _, err = run("--url", server_url, "--token", token, "show", "playstore", "x")
    assert code == cli.EXIT_API_ERROR and "unknown_store" in err
    code, _, err = run(
        "--url", server_url, "--token", signer.token("eve@example.com"), "show", "google", "x"
    )
    assert code == cli.EXIT_API_ERROR and "HTTP 403" in err
    code, _, err = run("--url", server_url, "--token", "garbage", "show", "google", "x")
    assert code == cli.EXIT_API_ERROR and "HTTP 401" in err


def test_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFUNDGUARD_ADMIN_URL", raising=False)
    assert run("--token", "t", "show", "google", "x")[0] == cli.EXIT_USAGE
    assert (
        run("--url", "http://x", "--token", "t", "regrant", "google", "x", "--reason", "  ")[0]
        == cli.EXIT_USAGE
    )
    with pytest.raises(SystemExit) as info:  # --reason is required
        run("--url", "http://x", "--token", "t", "revoke", "google", "x")
    assert info.value.code == 2


def test_unreachable_function() -> None:
    from refundguard_dev.emulator import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(cli.CliError) as info:
        cli.call("POST", url, "t", body={}, idempotency_key="k", backoff_s=0.01)
    assert info.value.exit_code == cli.EXIT_UNREACHABLE and "could not reach" in info.value.message


def test_retries_reuse_one_idempotency_key() -> None:
    """A dropped connection, then a 503, then the answer: three requests with one key."""
    from refundguard_dev.fake_http import FakeServer, Fault, Reply, Request

    class Admin(FakeServer):
        def handle(self, request: Request) -> Reply:
            return Reply(200, {"entitlement": {"status": "active"}, "effect": "applied"})

    with Admin() as server:
        server.fail_next(Fault(drop=True), Fault(status=503))
        reply = cli.call(
            "POST", f"{server.url}/entitlements:regrant", "t", body={}, idempotency_key="cli-1",
            backoff_s=0.01,
        )  # fmt: skip
        keys = [r.headers.get("idempotency-key") for r in server.requests]
    assert reply.status == 200 and reply.body["effect"] == "applied"
    assert keys == ["cli-1", "cli-1", "cli-1"]


def test_purchase_ids_never_reach_a_url() -> None:
    assert cli.entitlements_url("https://fn.run.app/", "regrant") == (
        "https://fn.run.app/entitlements:regrant"
    )
    assert cli.entitlements_url("https://x", "lookup") == "https://x/entitlements:lookup"


@given(st.text())
def test_printed_text_holds_no_control_or_format_character(text: str) -> None:
    import unicodedata

    shown = cli.safe(text)
    assert all(c.isprintable() and unicodedata.category(c) != "Cf" for c in shown)
    if text.isprintable() and not any(unicodedata.category(c) == "Cf" for c in text):
        assert shown == text  # printable text is shown as it is


def test_store_supplied_markup_and_escapes_are_shown_escaped() -> None:
    entry = {
        "event_time": "2026-01-01T00:00:00.000Z",
        "source": "google",
        "type": "VOIDED\x1b]0;pwned\x07",
        "effect": "applied",
        "status_after": "revoked",
        "reason": "\u202egnp.exe \x9b31m",
    }
    line = cli.render_event(entry)
    assert "\x1b" not in line and "\u202e" not in line and "\x9b" not in line
    assert "\\x1b" in line and "\\u202e" in line


# ------------------------------------------------------------------------------- token sources


@pytest.fixture
def identity() -> Iterator[Any]:
    from refundguard_dev.fake_google_identity import FakeGoogleIdentity

    with FakeGoogleIdentity() as server:
        yield server


@pytest.fixture
def identity_admin(
    emulator_env: dict[str, str], identity: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The admin function over HTTP, trusting the identity stand-in's keys, its admins a person's
    own admin service account and an automation account; returns its URL."""
    from refundguard_dev.emulator import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"  # the audience of the ID tokens
    env = {
        "ADMIN_AUDIENCES": url,
        "ADMIN_EMAILS": f"{PERSONAL_SA},{AUTOMATION_SA}",
        "ADMIN_CERTS_URL": identity.certs_url,
    }
    with served("admin", env, monkeypatch, port=port):
        yield url


PERSON = "alice@example.com"
PERSONAL_SA = "a-alice-1a2b3c@demo-refundguard.iam.gserviceaccount.com"
AUTOMATION_SA = "automation@demo-refundguard.iam.gserviceaccount.com"


def test_a_person_acts_through_their_own_admin_service_account(
    identity: Any, identity_admin: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recommended path, end to end: the person's own credentials (here a key file standing
    in for their ADC) impersonate their admin service account through IAM Credentials; the ID
    token's audience is the function's URL; the history names that account."""
    person_key = identity.write_service_account_key(tmp_path / "adc.json", PERSON)
    identity.allow_impersonation(PERSONAL_SA, PERSON)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(person_key))
    monkeypatch.setenv("REFUNDGUARD_IAM_CREDENTIALS_URL", identity.url)
    monkeypatch.delenv("REFUNDGUARD_ID_TOKEN", raising=False)
    code, out, err = run(
        "--url", identity_admin, "--impersonate-service-account", PERSONAL_SA,
        "regrant", "google", PURCHASE, "--reason", "goodwill",
    )  # fmt: skip
    assert code == 0, err
    assert f"by {PERSONAL_SA}" in out
    assert identity.count(":generateIdToken") == 1


def test_impersonating_someone_elses_account_is_refused_before_any_call(
    identity: Any, identity_admin: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_key = identity.write_service_account_key(tmp_path / "adc.json", "mallory@example.com")
    identity.allow_impersonation(PERSONAL_SA, PERSON)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(person_key))
    monkeypatch.setenv("REFUNDGUARD_IAM_CREDENTIALS_URL", identity.url)
    monkeypatch.delenv("REFUNDGUARD_ID_TOKEN", raising=False)
    code, _, err = run(
        "--url", identity_admin, "--impersonate-service-account", PERSONAL_SA,
        "show", "google", PURCHASE,
    )  # fmt: skip
    assert code == cli.EXIT_NO_TOKEN
    assert "roles/iam.serviceAccountTokenCreator" in err


def test_automation_uses_its_own_service_account_credentials(
    identity: Any, identity_admin: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = identity.write_service_account_key(tmp_path / "sa.json", AUTOMATION_SA)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.delenv("REFUNDGUARD_ID_TOKEN", raising=False)
    monkeypatch.delenv("REFUNDGUARD_IMPERSONATE", raising=False)
    code, out, err = run(
        "--url", identity_admin, "revoke", "google", PURCHASE, "--reason", "fraud ring",
    )  # fmt: skip
    assert code == 0, err
    assert f"by {AUTOMATION_SA}" in out


def test_without_any_credentials_it_says_how_to_get_a_token(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    for name in ("REFUNDGUARD_ID_TOKEN", "REFUNDGUARD_IMPERSONATE"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run("--url", "http://127.0.0.1:9/", "show", "google", "x")
    assert code == cli.EXIT_NO_TOKEN
    assert "--impersonate-service-account" in err and "gcloud auth application-default" in err


def test_a_given_token_is_used_as_it_is() -> None:
    from refundguard_admin.tokens import get_id_token

    assert get_id_token("https://fn", token=" given ") == "given"


def test_runs_as_a_module() -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    console_script = Path(sys.executable).parent / "refundguard-admin"
    assert shutil.which(str(console_script)), "make setup installs the refundguard-admin script"
    for command in ([sys.executable, "-m", "refundguard_admin"], [str(console_script)]):
        completed = subprocess.run(
            [*command, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert completed.returncode == 0, completed.stderr
        for name in ("show", "regrant", "revoke"):
            assert name in completed.stdout
