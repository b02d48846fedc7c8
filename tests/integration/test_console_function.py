"""The ``admin_console`` function through functions-framework's app (no browser): the page and its
files without a token, their headers and Content-Security-Policy; the API behind the console's one
audience (its OAuth client id), the same allow-list, idempotency and audit line as the admin
function; settings it refuses to start with; make run's local sign-in stand-in."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from refundguard.console import site
from refundguard.console.settings import GOOGLE_SIGN_IN_URL
from refundguard_dev.emulator import free_port
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner, bearer
from refundguard_dev.local import LOCAL_CONSOLE_CLIENT_ID, serve_dev_certs

GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"  # gcloud's own tokens' audience

pytestmark = pytest.mark.emulator

CLIENT_ID = "123456789012-abcdefghijklmnop.apps.googleusercontent.com"
ADMIN = "support@example.com"
TOKEN = "opaque-token.AO-J1Ox_console-0001"


@pytest.fixture
def env(emulator_env: dict[str, str], certs: CertServer) -> dict[str, str]:
    return {
        "CONSOLE_OAUTH_CLIENT_ID": CLIENT_ID,
        "ADMIN_EMAILS": ADMIN,
        "ADMIN_CERTS_URL": certs.url,
    }


@pytest.fixture
def client(make_client: Any, env: dict[str, str]) -> Any:
    return make_client("admin_console", **env)


def lookup(client: Any, headers: dict[str, str], purchase_id: str = TOKEN) -> Any:
    body = {"store": "google", "purchase_id": purchase_id}
    return client.post("/entitlements:lookup", json=body, headers=headers)


# ------------------------------------------------------------------------------ page and files


def directives(csp: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in csp.split(";"))


def test_the_page_needs_no_token_and_carries_a_strict_policy(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    text = page.get_data(as_text=True)
    assert f'<meta name="refundguard-client-id" content="{CLIENT_ID}">' in text
    assert "<script>" not in text and "style=" not in text
    assert not re.search(r"\son[a-z]+=", text), "no inline event handlers"
    csp = directives(page.headers["Content-Security-Policy"])
    assert csp == {
        "default-src": "'none'",
        "script-src": "'self' https://accounts.google.com/gsi/client",
        "style-src": "'self' https://accounts.google.com/gsi/style",
        "connect-src": "'self' https://accounts.google.com/gsi/",
        "frame-src": "https://accounts.google.com/gsi/",
        "img-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    # Google's sign-in checks the page's origin from the Referer: the origin only, nothing more.
    assert page.headers["Referrer-Policy"] == "strict-origin"
    assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/assets/app.js", "text/javascript"),
        ("/assets/console.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/refundguard-console/", "text/html"),  # a cloudfunctions.net URL's leading segment
        ("/refundguard-console/assets/render.js", "text/javascript"),
    ],
)
def test_files_are_served_with_the_same_headers(client: Any, path: str, content_type: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200, path
    assert answer.headers["Content-Type"].startswith(content_type)
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    head = client.head(path)
    assert head.status_code == 200 and head.get_data() == b""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/assets/missing.js"),
        ("GET", "/assets/index.html"),  # the page's template is never served raw
        ("GET", "/assets/../settings.py"),
        ("POST", "/"),
        ("GET", "/orders/GPA.1234"),
    ],
)
def test_anything_else_is_the_api_and_needs_a_token(client: Any, method: str, path: str) -> None:
    answer = client.open(path, method=method)
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "missing_token"
    assert answer.headers["Content-Security-Policy"] == site.API_CSP
    assert answer.headers["Referrer-Policy"] == "strict-origin"
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_every_shipped_file_uses_no_inline_code_or_html_sinks() -> None:
    for path in site.STATIC.iterdir():
        lines = path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith(("//", "/*", "*")))
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"
        for storage in ("localStorage", "sessionStorage", "document.cookie"):
            assert storage not in text, f"{path.name} uses {storage}"
        if path.suffix == ".html":
            assert "<script>" not in text and "<style" not in text and "style=" not in text


def test_the_policy_follows_the_sign_in_library() -> None:
    local = directives(site.content_security_policy("http://127.0.0.1:8084/gsi/client"))
    assert local["script-src"] == "'self' http://127.0.0.1:8084/gsi/client"
    assert local["frame-src"] == "http://127.0.0.1:8084/gsi/"
    assert site.referrer_policy(local=True) == "no-referrer"


# ------------------------------------------------------------------------------ the API behind it


def test_only_tokens_for_the_console_client_id_are_accepted(
    client: Any, make_client: Any, env: dict[str, str], signer: TestSigner
) -> None:
    assert lookup(client, bearer(signer.token(ADMIN, audience=CLIENT_ID))).status_code == 404
    for audience in (AUDIENCE, GCLOUD_CLIENT_ID, "https://console.example.run.app", None):
        answer = lookup(client, bearer(signer.token(ADMIN, audience=audience)))
        assert answer.status_code == 401, audience
        assert answer.get_json()["error"] == "wrong_audience"
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="the refundguard console"'
    # ...and the admin function does not take the console's tokens.
    admin = make_client(
        "admin",
        ADMIN_AUDIENCES=AUDIENCE,
        ADMIN_EMAILS=ADMIN,
        ADMIN_CERTS_URL=env["ADMIN_CERTS_URL"],
    )
    refused = lookup(admin, bearer(signer.token(ADMIN, audience=CLIENT_ID)))
    assert refused.status_code == 401 and refused.get_json()["error"] == "wrong_audience"


def test_the_same_allow_list(client: Any, signer: TestSigner) -> None:
    answer = lookup(client, bearer(signer.token("eve@example.com", audience=CLIENT_ID)))
    assert answer.status_code == 403
    assert answer.get_json() == {
        "error": "not_an_admin",
        "message": "eve@example.com is not allowed to use the refundguard console",
    }
    unverified = signer.token(ADMIN, audience=CLIENT_ID, email_verified=False)
    assert lookup(client, bearer(unverified)).status_code == 401


def test_regrant_is_idempotent_and_audited_like_the_admin_function(
    client: Any, signer: TestSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = bearer(signer.token(ADMIN, audience=CLIENT_ID))
    body = {"store": "google", "purchase_id": TOKEN, "reason": "goodwill, ticket #12"}
    headers = {**auth, "Idempotency-Key": "console-key-1"}
    first = client.post("/entitlements:regrant", json=body, headers=headers)
    assert first.status_code == 200 and first.get_json()["status"] == "active"
    again = client.post("/entitlements:regrant", json=body, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    shown = lookup(client, auth).get_json()
    assert [e["actor"] for e in shown["history"]] == [ADMIN]
    assert shown["history"][0]["reason"] == "goodwill, ticket #12"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    audit = [line for line in lines if line.get("audit") and line.get("action") == "regrant"]
    assert len(audit) == 2
    assert {line["function"] for line in audit} == {"admin_console"}
    assert all(line["via"] == "console" and line["actor"] == ADMIN for line in audit)
    assert [line["replayed"] for line in audit] == [False, True]
    assert TOKEN not in json.dumps(audit), "the purchase token is hashed in the audit line"
    pages = [line for line in lines if line.get("message") == "console page"]
    assert all("audit" not in line for line in pages)


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"CONSOLE_OAUTH_CLIENT_ID": ""}, "CONSOLE_OAUTH_CLIENT_ID must be set"),
        ({"CONSOLE_OAUTH_CLIENT_ID": "https://admin.example.run.app"}, "one OAuth client id"),
        ({"CONSOLE_OAUTH_CLIENT_ID": f"{CLIENT_ID},{CLIENT_ID}"}, "one OAuth client id"),
        ({"CONSOLE_GIS_CLIENT_URL": "http://gsi.example.com/gsi/client"}, "https:// URL"),
        ({"CONSOLE_GIS_CLIENT_URL": "https://x.example/gsi/client'; script-src *"}, "https:// URL"),
        ({"CONSOLE_GIS_CLIENT_URL": "https://x.example/gsi/other"}, "ending in /client"),
        ({"ADMIN_EMAILS": ""}, "ADMIN_EMAILS must list"),
    ],
)
def test_refuses_to_start_with_bad_settings(
    refused_start: Any, env: dict[str, str], changes: dict[str, str], problem: str
) -> None:
    problems = refused_start("admin_console", **{**env, **changes})
    assert any(problem in p for p in problems), problems


def test_defaults_to_googles_sign_in_library(client: Any) -> None:
    assert GOOGLE_SIGN_IN_URL in client.get("/").get_data(as_text=True)


# ------------------------------------------------------------------------------ make run's stand-in


def post(url: str, body: dict[str, Any], origin: str) -> tuple[int, dict[str, Any], Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Origin": origin},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read()), answer.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers


def test_local_sign_in_mints_for_the_console_client_only() -> None:
    import jwt

    port, origin = free_port(), "http://127.0.0.1:9999"
    server = serve_dev_certs(
        port, console_client_id=LOCAL_CONSOLE_CLIENT_ID, console_origins=(origin,)
    )
    base = f"http://127.0.0.1:{port}/gsi"
    try:
        with urllib.request.urlopen(f"{base}/client", timeout=5) as answer:
            script = answer.read().decode()
        assert "google.accounts" in script and '"admin@example.com"' in script
        status, body, headers = post(
            f"{base}/token",
            {"email": "a@example.com", "client_id": LOCAL_CONSOLE_CLIENT_ID},
            origin,
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
        claims = jwt.decode(body["credential"], options={"verify_signature": False})
        assert claims["aud"] == LOCAL_CONSOLE_CLIENT_ID and claims["email"] == "a@example.com"
        status, _, headers = post(
            f"{base}/token", {"email": "a@example.com", "client_id": "other"}, "http://evil.test"
        )
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
    finally:
        server.shutdown()
