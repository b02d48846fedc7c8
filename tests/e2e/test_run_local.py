"""`make run`'s local configuration really starts all three functions and lets the printed recipes
work: the admin function accepts the local dev ID tokens (and only for its admins), the Apple
function trusts the local test root (and only in Sandbox)."""

from __future__ import annotations

from typing import Any

import pytest
from refundguard_dev.dev_issuer import mint
from refundguard_dev.emulator import free_port
from refundguard_dev.local import local_admin_env, local_apple_env, serve_dev_certs

pytestmark = pytest.mark.emulator


@pytest.fixture
def dev_certs() -> Any:
    port = free_port()
    server = serve_dev_certs(port)
    yield port
    server.shutdown()


def test_local_admin_accepts_dev_tokens_of_its_admins_only(
    emulator_env: dict[str, str], make_client: Any, dev_certs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADMIN_CERTS_URL", raising=False)
    monkeypatch.delenv("ADMIN_EMAILS", raising=False)
    env = local_admin_env(8083, dev_certs)
    client = make_client("admin", **env)
    path = "/entitlements/google/demo-purchase-token-0001"

    def get(email: str) -> int:
        token = mint(email, "http://127.0.0.1:8083")
        return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code

    assert get("admin@example.com") == 404  # authenticated, allowed, never seen
    assert get("eve@example.com") == 403
    assert client.get(path).status_code == 401


def test_local_apple_function_starts_in_sandbox_with_the_local_root(
    emulator_env: dict[str, str], make_client: Any
) -> None:
    env = local_apple_env()
    assert env["APPLE_ENVIRONMENTS"] == "Sandbox"
    client = make_client("apple_notifications", **env)
    response = client.post("/", json={"signedPayload": "not-a-jws"})
    assert response.status_code == 400


# ------------------------------------------------------------------------------- make run itself


def test_a_busy_or_bad_port_stops_make_run_naming_its_variable() -> None:
    import socket

    from refundguard_dev.stack import StackError, read_ports

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        env = {"ADMIN_PORT": str(taken)}
        with pytest.raises(StackError, match=f"port {taken} \\(ADMIN_PORT, for admin\\) is in use"):
            read_ports({**_free_ports(), **env})
    with pytest.raises(StackError, match="PLAY_PORT='80a' is not a port number"):
        read_ports({**_free_ports(), "PLAY_PORT": "80a"})
    same = _free_ports()
    same["APPLE_PORT"] = same["PLAY_PORT"]
    with pytest.raises(StackError, match="are both"):
        read_ports(same)


def test_helper_scripts_refuse_to_guess_where_the_stack_is(tmp_path: Any) -> None:
    from refundguard_dev.stack import running_stack

    with pytest.raises(SystemExit, match="no local stack is running"):
        running_stack(tmp_path / "stack.json")


def test_a_demo_project_never_reaches_a_real_firestore() -> None:
    from refundguard.config import ConfigError, FirestoreSettings, Settings

    settings = Settings({"GOOGLE_CLOUD_PROJECT": "demo-refundguard"})
    FirestoreSettings.read(settings)
    with pytest.raises(ConfigError, match="refusing to talk to a real Firestore"):
        settings.done()


def _free_ports() -> dict[str, str]:
    from refundguard_dev.stack import PORTS

    return {variable: str(free_port()) for variable, _ in PORTS.values()}


@pytest.mark.slow
def test_make_run_on_custom_ports_and_its_printed_recipes(tmp_path: Any) -> None:
    """The stack starts on the ports it is given; the printed recipes (send a refund, mint a
    token, show and regrant with the CLI) reach that stack, and the sample platform consumer prints
    the refund's and the re-grant's events; Ctrl-C leaves no process behind."""
    import hashlib
    import json
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    from refundguard_dev.stack import STACK_FILE

    root = Path(__file__).resolve().parents[2]
    ports = _free_ports()
    env = {**os.environ, **ports, "ADMIN_EMAILS": "support@example.com"}
    env.pop("ADMIN_CERTS_URL", None)
    run = subprocess.Popen(
        [sys.executable, "scripts/run_local.py"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert run.stdout is not None
        for raw in run.stdout:
            lines.append((time.monotonic(), raw.decode(errors="replace")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def printed(needle: str, timeout_s: float = 10) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, line in list(lines):
                if needle in line:
                    return at
            time.sleep(0.05)
        raise AssertionError(f"make run never printed {needle!r}")

    try:
        deadline = time.monotonic() + 120
        while not STACK_FILE.exists():
            assert run.poll() is None, "".join(line for _, line in lines)
            assert time.monotonic() < deadline, "make run did not start within 120 s"
            time.sleep(0.5)
        stack = json.loads(STACK_FILE.read_text())
        assert stack["urls"]["admin"] == f"http://127.0.0.1:{ports['ADMIN_PORT']}"
        # The admin console's page, on its port (tests/e2e/test_console_browser.py drives it).
        import urllib.request

        console = stack["urls"]["admin_console"]
        assert console == f"http://127.0.0.1:{ports['CONSOLE_PORT']}"
        with urllib.request.urlopen(console + "/", timeout=10) as page:
            assert page.headers["Content-Type"].startswith("text/html")

        def script(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, *args],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr + done.stdout
            return done.stdout

        sent = script("scripts/send_play_notification.py", "voided", "--token", "tok-custom")
        answered = time.monotonic()
        assert '"status":"revoked"' in sent
        # The consumer names a Google entitlement by its token's hash, never by the token.
        label = "google:token_hash=" + hashlib.sha256(b"tok-custom").hexdigest()[:16]
        seen = printed(f"[platform] REVOKE {label}: new -> revoked (version 1;")
        assert seen - answered < 5, "the refund's event took more than 5 s to reach the consumer"
        token = script("scripts/dev_admin_token.py").strip()
        cli = [str(Path(sys.executable).parent / "refundguard-admin"), "--url"]
        cli += [stack["urls"]["admin"], "--token", token]
        shown = subprocess.run(
            [*cli, "show", "google", "tok-custom"], capture_output=True, text=True, check=False
        )
        assert shown.returncode == 0 and "revoked (access: NO)" in shown.stdout, shown.stderr
        again = subprocess.run(
            [*cli, "regrant", "google", "tok-custom", "--reason", "test"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert again.returncode == 0 and "by support@example.com" in again.stdout, again.stderr
        printed(f"[platform] GRANT  {label}: revoked -> active (version 2; admin ")
        printed("by support@example.com (test))")
        # The printed order recipes: both store APIs' stand-ins, seeded, answer the admin function.
        from refundguard_dev.local_stores import APPLE_ORDER, DEMO_ORDER, DEMO_TOKEN, UNSEEN_ORDER

        bought = script(
            "scripts/send_play_notification.py", "one-time", "--notification-type", "1",
            "--token", DEMO_TOKEN,
        )  # fmt: skip
        assert '"status":"active"' in bought
        for order_id, found_by in (
            (DEMO_ORDER, "found by firestore"),
            (UNSEEN_ORDER, "found by store_api"),
            (APPLE_ORDER, "found by store_api"),
            (APPLE_ORDER, "found by firestore"),
        ):
            looked = subprocess.run(
                [*cli, "order", order_id], capture_output=True, text=True, check=False
            )
            assert looked.returncode == 0 and found_by in looked.stdout, looked.stderr
        revoked = subprocess.run(
            [*cli, "revoke", "--order", DEMO_ORDER, "--reason", "chargeback"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert revoked.returncode == 0 and "Revoked: now revoked" in revoked.stdout, revoked.stderr
        # The reconciler recipe: the seeded refund no notification announced is caught by a run.
        from refundguard_dev.local_stores import MISSED_TOKEN

        def cli_ok(*argv: str) -> str:
            done = subprocess.run([*cli, *argv], capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr
            return done.stdout

        started = cli_ok("run")
        assert "Production: seen 1, applied 1" in started, started
        assert "Reconciliation runs (newest first" in cli_ok("runs")
        assert "status       revoked" in cli_ok("show", "google", MISSED_TOKEN)
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=60)
        reader.join(timeout=10)
    output = "".join(line for _, line in lines)
    assert "pushes are NOT authenticated" in output  # the local consumer says so
    consumer_lines = [line for _, line in lines if "[platform] " in line]
    assert len(consumer_lines) >= 4  # the refund, the re-grant, the demo purchase, its revocation
    for token in ("tok-custom", DEMO_TOKEN, MISSED_TOKEN):
        assert not [line for line in consumer_lines if token in line], token
    assert "Stopping..." in output
    assert not STACK_FILE.exists()
    assert f"admin console        {console}/" in output
    for variable in (
        "FIRESTORE_PORT",
        "PLAY_PORT",
        "ADMIN_PORT",
        "CONSOLE_PORT",
        "PLAY_API_PORT",
        "APPLE_API_PORT",
        "PUBSUB_PORT",
        "CONSUMER_PORT",
    ):
        from refundguard_dev.stack import port_is_free

        assert port_is_free(int(ports[variable])), f"{variable} still held after Ctrl-C"
