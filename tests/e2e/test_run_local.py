"""`make run`'s local configuration really starts all three functions and lets the printed recipes
work: the admin function accepts the local dev ID tokens (and only for its admins), the Apple
function trusts the local test root (and only in Sandbox)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from refundguard_dev.dev_issuer import mint
from refundguard_dev.emulator import free_port, free_ports
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
        with pytest.raises(StackError, match=f"port in use: {taken} \\(ADMIN_PORT, for admin\\)"):
            read_ports({**_free_ports(), **env})
    with pytest.raises(StackError, match="PLAY_PORT='80a' is not a port number"):
        read_ports({**_free_ports(), "PLAY_PORT": "80a"})
    same = _free_ports()
    same["APPLE_PORT"] = same["PLAY_PORT"]
    with pytest.raises(StackError, match="are both"):
        read_ports(same)


def test_every_busy_port_is_named_at_once_and_a_free_base_is_offered() -> None:
    """Any set of busy ports is reported in one message, each with its variable, with a base
    port whose whole range is free; PORT_BASE then moves every port."""
    import contextlib
    import random
    import re
    import socket

    from refundguard_dev.stack import PORTS, StackError, port_is_free, read_ports

    rng = random.Random(18)
    for _ in range(5):
        ports = _free_ports()
        chosen = rng.sample(sorted(ports), rng.randint(2, len(ports)))
        with contextlib.ExitStack() as held:
            for variable in chosen:
                sock = held.enter_context(socket.socket())
                sock.bind(("127.0.0.1", int(ports[variable])))
                sock.listen()
            with pytest.raises(StackError) as refused:
                read_ports(ports)
        message = str(refused.value)
        assert f"{len(chosen)} ports in use" in message
        for variable in chosen:
            assert f"{ports[variable]} ({variable}, for " in message
        for variable in set(ports) - set(chosen):
            assert f"({variable}," not in message
        offered = re.search(r"PORT_BASE=(\d+) make run", message)
        assert offered is not None and f"--base-port {offered.group(1)}" in message
        base = int(offered.group(1))
        moved = read_ports({"PORT_BASE": str(base)})  # nothing else set: every port moves
        assert sorted(moved.values()) == sorted(
            base + default - 8081 for _, default in PORTS.values()
        )
        assert all(port_is_free(n) for n in moved.values())
    with pytest.raises(StackError, match="PORT_BASE='x' is not a base port"):
        read_ports({"PORT_BASE": "x"})
    with pytest.raises(StackError, match="PORT_BASE='65530' is not a base port"):
        read_ports({"PORT_BASE": "65530"})


def test_run_local_help_prints_help_and_starts_nothing(tmp_path: Any) -> None:
    """``--help`` answers before any check: here every port setting is invalid, and still."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PORT_BASE": "x", "ADMIN_PORT": "80a"}
    env["REFUNDGUARD_STACK_FILE"] = str(tmp_path / "stack.json")
    done = subprocess.run(
        [sys.executable, "scripts/run_local.py", "--help"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: scripts/run_local.py" in done.stdout and "--base-port N" in done.stdout
    assert "PORT_BASE" in done.stdout and "RECONCILE_EVERY_SECONDS" in done.stdout
    assert "make run:" not in done.stdout + done.stderr
    assert not (tmp_path / "stack.json").exists()


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

    variables = [variable for variable, _ in PORTS.values()]
    return {v: str(port) for v, port in zip(variables, free_ports(len(variables)), strict=True)}


class Started:
    """A ``scripts/run_local.py`` this test started: its output, read as it comes."""

    def __init__(self, tmp_path: Any, ports: dict[str, str], *, ignore_sigint: bool) -> None:
        import os
        import subprocess
        import sys
        import threading
        import time
        from pathlib import Path

        self.root = Path(__file__).resolve().parents[2]
        self.stack_file = tmp_path / "stack.json"
        self.env = {**os.environ, **ports, "ADMIN_EMAILS": "support@example.com"}
        self.env["REFUNDGUARD_STACK_FILE"] = str(self.stack_file)
        for name in ("ADMIN_CERTS_URL", "PORT_BASE", "RECONCILE_EVERY_SECONDS"):
            self.env.pop(name, None)

        command = [sys.executable, "scripts/run_local.py"]
        if ignore_sigint:  # as nohup, a non-interactive shell or CI leave it (exec keeps it)
            command = [
                sys.executable,
                "-c",
                "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "os.execv(sys.executable, [sys.executable, 'scripts/run_local.py'])",
            ]
        self.process = subprocess.Popen(
            command,
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []

        def read() -> None:
            assert self.process.stdout is not None
            for raw in self.process.stdout:
                self.lines.append((time.monotonic(), raw.decode(errors="replace")))

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def printed(self, needle: str, timeout_s: float = 10) -> float:
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if needle in line:
                    return at
            assert self.process.poll() is None or needle in self.output, self.output[-3000:]
            time.sleep(0.05)
        raise AssertionError(f"make run never printed {needle!r}:\n{self.output[-3000:]}")

    def ready(self, timeout_s: float = 150) -> dict[str, Any]:
        import json
        import time

        deadline = time.monotonic() + timeout_s
        while not self.stack_file.exists():
            assert self.process.poll() is None, self.output[-3000:]
            assert time.monotonic() < deadline, f"make run did not start within {timeout_s} s"
            time.sleep(0.5)
        self.printed("refundguard is running locally", timeout_s=30)
        return dict(json.loads(self.stack_file.read_text()))

    def stop(self, signum: int, grace_s: float = 40) -> set[int]:
        """``signum`` to run_local alone (not its group: its own handler must stop the children);
        whatever is left after the grace is killed, and returned."""
        from refundguard_dev.processes import terminate_tree

        left = terminate_tree(self.process, signum=signum, grace_s=grace_s)
        self.reader.join(timeout=10)
        return left


def admin_call(admin_url: str, token: str, path: str, body: Any = None) -> dict[str, Any]:
    """``POST path`` (``GET`` without a body) on the admin function: its JSON answer."""
    import json
    import urllib.request

    request = urllib.request.Request(
        admin_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


def lookup(admin_url: str, token: str, store: str, purchase_id: str) -> dict[str, Any]:
    """``POST /entitlements:lookup`` on the admin function, as the CLI's ``show`` does."""
    return admin_call(
        admin_url, token, "/entitlements:lookup", {"store": store, "purchase_id": purchase_id}
    )


def _assert_all_stopped(started: Started, left: set[int], ports: dict[str, str]) -> None:
    from refundguard_dev.stack import port_is_free

    assert not left, f"processes left after the signal: {sorted(left)}\n{started.output[-2000:]}"
    assert "Stopping..." in started.output
    assert not started.stack_file.exists()
    held = [v for v, n in ports.items() if not port_is_free(int(n))]
    assert not held, f"still held after the stack stopped: {held}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigint_and_sigterm_stop_every_child_even_with_sigint_ignored(tmp_path: Any) -> None:
    """run_local started with SIGINT ignored (nohup, CI) still stops everything on SIGINT once
    running, and on SIGTERM while it is still starting its children; the test kills whatever is
    left, whatever happens."""
    import signal

    ports = _free_ports()
    started = Started(tmp_path, ports, ignore_sigint=True)
    left: set[int] = set()
    try:
        started.ready()
    finally:
        left = started.stop(signal.SIGINT)
    _assert_all_stopped(started, left, ports)
    assert started.process.returncode == 0

    ports = _free_ports()
    starting = Started(tmp_path, ports, ignore_sigint=True)
    try:
        starting.printed("Starting the Play Developer API stand-in", timeout_s=120)
    finally:
        left = starting.stop(signal.SIGTERM)
    _assert_all_stopped(starting, left, ports)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_make_run_on_custom_ports_and_its_printed_recipes(tmp_path: Any) -> None:
    """The stack starts on the ports it is given; the printed recipes (send a refund, mint a
    token, show and regrant with the CLI) reach that stack, and the sample platform consumer prints
    the refund's and the re-grant's events; the demo names one order throughout, so the void the
    reconciler finds later is the one the notification brought (the re-grant stands); the
    reconciler waits for the reader; Ctrl-C leaves no process behind."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from refundguard_dev.demo_tenants import DEMO_TENANTS
    from refundguard_dev.local_stores import (
        APPLE_ORDER,
        DEMO_ORDER,
        DEMO_TOKEN,
        MISSED_TOKEN,
        UNSEEN_ORDER,
    )

    ports = _free_ports()
    started = Started(tmp_path, ports, ignore_sigint=False)
    root, env = started.root, started.env
    try:
        stack = started.ready()
        assert stack["urls"]["admin"] == f"http://127.0.0.1:{ports['ADMIN_PORT']}"
        # The admin console's page, on its port (tests/e2e/test_console_browser.py drives it).
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
                timeout=60,
            )
            assert done.returncode == 0, done.stderr + done.stdout
            return done.stdout

        token = script("scripts/dev_admin_token.py").strip()
        cli = [str(Path(sys.executable).parent / "refundguard-admin"), "--url"]
        cli += [stack["urls"]["admin"], "--token", token]

        def cli_ok(*argv: str) -> str:
            done = subprocess.run(
                [*cli, *argv], capture_output=True, text=True, check=False, timeout=60
            )
            assert done.returncode == 0, done.stderr + done.stdout
            return done.stdout

        # The demo tenants' purchases, applied at start-up through the Play and Apple functions,
        # each stamped with its own tenant (the banner names them and the tenant admins).
        for demo in DEMO_TENANTS:
            for store, purchase_id in (("google", demo.token), ("apple-sandbox", demo.transaction)):
                found = lookup(stack["urls"]["admin"], token, store, purchase_id)
                assert found["entitlement"]["tenant"] == demo.id, found
                assert found["status"] == "active", found
            # One Apple team each: its own key, sealed at start-up, works for its own apps.
            access = f"/tenants/{demo.id}:check-access"
            checked = admin_call(stack["urls"]["admin"], token, access, {})
            assert checked["apple"]["state"] == checked["google"]["state"] == "ok", checked
            assert checked["apple"]["details"]["key_id"] == demo.apple_key_id
            assert f"  {demo.id:<10} {demo.display_name}" in started.output
            assert f"tenant admin: {demo.admin};" in started.output
            assert f"Play {demo.play_package}, Apple {demo.bundle_id} " in started.output
        assert f"as tenant admin {DEMO_TENANTS[0].admin}: " in started.output
        assert "and Apple team (keys sealed by the Cloud KMS stand-in on http" in started.output
        assert "WARNING: creator-" not in started.output
        # The banner's refund in creator-a's app: routed to creator-a by its package.
        first = DEMO_TENANTS[0]
        recipe = f"voided --package {first.play_package} --token {first.token}"
        assert recipe in started.output
        script("scripts/send_play_notification.py", *recipe.split())
        refunded = lookup(stack["urls"]["admin"], token, "google", first.token)
        assert refunded["status"] == "revoked" and refunded["entitlement"]["tenant"] == first.id
        # Nothing ran the reconciler on its own: the only run is the alert demo's seeded failed
        # one (docs/alerts.md); the reader's `run` is the first real one.
        assert [line.split()[0] for line in cli_ok("runs").splitlines()[1:] if line[:1] != " "] == [
            "alert-demo-run"
        ]
        sent = script("scripts/send_play_notification.py", "voided", "--token", "tok-custom")
        answered = time.monotonic()
        assert '"status":"revoked"' in sent
        # The consumer names a Google entitlement by its token's hash, never by the token.
        label = "google:token_hash=" + hashlib.sha256(b"tok-custom").hexdigest()[:16]
        seen = started.printed(f"[platform] REVOKE {label}: new -> revoked (version 1;")
        assert seen - answered < 5, "the refund's event took more than 5 s to reach the consumer"
        assert "revoked (access: NO)" in cli_ok("show", "google", "tok-custom")
        assert "by support@example.com" in cli_ok(
            "regrant", "google", "tok-custom", "--reason", "test"
        )
        started.printed(f"[platform] GRANT  {label}: revoked -> active (version 2; admin ")
        started.printed("by support@example.com (test))")
        # Refund insight on the local stand-in (INSIGHT_ENGINE=local): the demo's figures, and the
        # refund just sent, which reached the warehouse through its own events subscription.
        asked = urllib.request.Request(
            stack["urls"]["admin"] + "/insight?tenant=default&period=month",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(asked, timeout=60) as answer:
            figures = json.loads(answer.read())
        months = [r for r in figures["rows"] if r["product_id"] == "*"]
        assert len(months) >= 3 and all(r["tenant"] == "default" for r in months), figures
        assert sum(r["purchases"] for r in months) > 1000 and months[-1]["refunds"] >= 1
        assert months[-1]["revoke_p50_ms"] is not None
        # The banner's recipes, in its order: buy, look up, refund (the demo order), re-grant.
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
            assert found_by in cli_ok("order", order_id)
        refunded = script(
            "scripts/send_play_notification.py", "voided", "--token", DEMO_TOKEN,
            "--order-id", DEMO_ORDER,
        )  # fmt: skip
        assert '"status":"revoked"' in refunded
        demo = "google:token_hash=" + hashlib.sha256(DEMO_TOKEN.encode()).hexdigest()[:16]
        started.printed(f"[platform] REVOKE {demo}: active -> revoked (version 2;")
        assert "now active" in cli_ok("regrant", "--order", DEMO_ORDER, "--reason", "mistake")
        # The reconciler recipe: the seeded refund no notification announced is caught by a run.
        ran = cli_ok("run")
        assert "Production: seen 1, applied 1" in ran, ran
        assert "Reconciliation runs (newest first" in cli_ok("runs")
        assert "status       revoked" in cli_ok("show", "google", MISSED_TOKEN)
        # Google now lists the demo void too: the same order, so one event; the re-grant stands.
        script("scripts/add_play_void.py", "--token", DEMO_TOKEN, "--order", DEMO_ORDER)
        again = cli_ok("run")
        assert "applied 1" not in again and "applied 0" in again, again
        assert "status       active" in cli_ok("show", "google", DEMO_TOKEN)
        revoked = cli_ok("revoke", "--order", DEMO_ORDER, "--reason", "chargeback")
        assert "Revoked: now revoked" in revoked
        # The post-deploy smoke check, against this stack (never a real deployment in tests).
        smoke = subprocess.run(
            [
                sys.executable, "scripts/smoke_check.py",
                "--apple-url", stack["urls"]["apple_notifications"] + "/",
                "--admin-url", stack["urls"]["admin"],
                "--console-url", console, "--token", token,
            ],
            cwd=root, env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert smoke.stdout.count("OK  ") == 5 and "FAIL" not in smoke.stdout, smoke.stdout
        assert "last reconciliation run: succeeded" in smoke.stdout, smoke.stdout
        # ... which fails, naming it, when a function is not there.
        gone = f"http://127.0.0.1:{free_port()}"
        broken = subprocess.run(
            [sys.executable, "scripts/smoke_check.py", "--apple-url", gone],
            cwd=root, env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert broken.returncode == 1 and "FAIL apple_notifications" in broken.stdout
    finally:
        left = started.stop(signal.SIGINT)
    output = started.output
    assert "pushes are NOT authenticated" in output  # the local consumer says so
    consumer_lines = [line for line in output.splitlines() if "[platform] " in line]
    assert len(consumer_lines) >= 3  # the refund, the re-grant, the demo's revocation
    for token in ("tok-custom", DEMO_TOKEN, MISSED_TOKEN):
        assert not [line for line in consumer_lines if token in line], token
    assert f"admin console        {console}/" in output
    assert "runs when asked" in output
    assert f"voided --token {DEMO_TOKEN} --order-id {DEMO_ORDER}" in output
    _assert_all_stopped(started, left, ports)


def test_the_demo_tenants_are_registered_with_their_apps_keys_and_tenant_admins(
    emulator_env: dict[str, str], tmp_path: Any
) -> None:
    """make run's two creators: registered through the registry (twice: the second run leaves
    them), each with its own Play package and Apple bundle id, its own Apple key sealed with the
    KMS stand-in (never in Firestore in clear; it opens for its tenant), and a tenant admin of its
    own in ``staff/{email}``; an app of the environment's ``default`` tenant cannot be taken."""
    from google.cloud import firestore
    from refundguard.config import Settings
    from refundguard.errors import RefundGuardError
    from refundguard.kms import KmsClient, read_kms_settings
    from refundguard.tenant_keys import TenantKeys
    from refundguard.tenant_registry import TenantRegistry
    from refundguard_dev.demo_tenants import DEMO_TENANTS, register
    from refundguard_dev.fake_appstore_api import FakeAppStoreApi
    from refundguard_dev.fake_kms import DEFAULT_KEY, FakeKms
    from refundguard_dev.local_stores import register_tenant_keys

    host, project = emulator_env["FIRESTORE_EMULATOR_HOST"], emulator_env["GOOGLE_CLOUD_PROJECT"]
    env = {"PLAY_PACKAGE_NAMES": "com.example.courses"}
    with FakeKms() as kms, FakeAppStoreApi() as apple:
        keys = register_tenant_keys(apple)
        kms_env = {
            "TENANT_KEYS_KMS_KEY": DEFAULT_KEY,
            "TENANT_KEYS_KMS_BASE_URL": kms.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(
                kms.write_service_account_key(tmp_path / "sa.json")
            ),
        }
        for _ in range(2):
            register(
                host,
                env,
                ("com.example.refundguard",),
                project=project,
                keys=keys,
                kms_env=kms_env,
            )
        client = firestore.Client(project=project)
        tenants = TenantRegistry(client, timeout_s=20).list()
        settings = read_kms_settings(Settings(kms_env))
        assert settings is not None
        opener = TenantKeys(KmsClient(settings))
        for tenant, demo in zip(tenants, DEMO_TENANTS, strict=True):
            assert [(k.key_id, k.issuer_id) for k in tenant.apple_keys] == [keys[demo.id]]
            pem = demo.apple_key_file.read_text()
            stored = str(client.collection("tenants").document(demo.id).get().to_dict())
            assert pem.splitlines()[1] not in stored and "PRIVATE KEY" not in stored
            assert opener.open(demo.id, tenant.apple_keys[0]).strip() == pem.strip()
    assert [t.id for t in tenants] == ["creator-a", "creator-b"]
    assert len({k for k, _ in keys.values()}) == len({i for _, i in keys.values()}) == 2
    apps = [app for t in tenants for app in t.app_keys]
    assert len(apps) == len(set(apps)) == 4  # a package and a bundle id each, none shared
    for tenant, demo in zip(tenants, DEMO_TENANTS, strict=True):
        assert tenant.play_packages == (demo.play_package,) and tenant.play_api
        assert [a.bundle_id for a in tenant.apple_apps] == [demo.bundle_id]
        staff = client.collection("staff").document(demo.admin).get().to_dict()
        assert staff is not None and staff["email"] == demo.admin
        assert staff["platform"] is None and staff["tenants"] == {demo.id: "admin"}
        assert staff["tenant_ids"] == [demo.id]
    assert len({d.admin for d in DEMO_TENANTS}) == len(DEMO_TENANTS)
    client.collection("tenants").document("creator-a").delete()
    taken = {"PLAY_PACKAGE_NAMES": DEMO_TENANTS[0].play_package}
    with pytest.raises(RefundGuardError, match="default tenant"):
        register(host, taken, (), project=project)
