"""What ``make run`` configures: local settings for each function, the local ID-token issuer's
certificate endpoint, and the persisted local Apple test PKI. Nothing here is ever deployed."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .apple_pki import ApplePKI, Issued, generate_pki

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".run"
PROJECT = "demo-refundguard"
APPLE_PKI_DIR = RUN_DIR / "apple-test-pki"
APPLE_ROOT_DER = RUN_DIR / "apple-test-root.der"
APPLE_BUNDLE_ID = "com.example.refundguard"
NOBODY = "nobody@example.invalid"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
#: The console's OAuth client id under ``make run``: made up; only the local issuer mints for it.
LOCAL_CONSOLE_CLIENT_ID = "000000000000-refundguard-local.apps.googleusercontent.com"
GOOGLE_SIGN_IN_URL = "https://accounts.google.com/gsi/client"


def common_env(firestore_port: int) -> dict[str, str]:
    """The environment every local function gets: the emulator, a demo project, sample apps."""
    return {
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{firestore_port}",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_DATABASE": "(default)",
        "FIRESTORE_DEADLINE_SECONDS": "20",
        "PLAY_PACKAGE_NAMES": os.environ.get("PLAY_PACKAGE_NAMES", "com.example.courses"),
    }


# ---------------------------------------------------------------------------------------- events

EVENTS_TOPIC_NAME = "refundguard-access-events"
CONSUMER_DB = RUN_DIR / "platform-consumer.sqlite3"


def events_env(pubsub_port: int) -> dict[str, str]:
    """Events on, to the local Pub/Sub emulator (never a real Pub/Sub: the project is a demo)."""
    return {
        "EVENTS_TOPIC": f"projects/{PROJECT}/topics/{EVENTS_TOPIC_NAME}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
        "EVENTS_SWEEP_GRACE_SECONDS": "30",
    }


def consumer_env() -> dict[str, str]:
    """The sample platform consumer, locally: the emulator signs nothing, so no token checks (the
    consumer says so in capitals at start-up); a fresh SQLite file per run."""
    CONSUMER_DB.unlink(missing_ok=True)
    return {"CONSUMER_VERIFY_TOKENS": "false", "CONSUMER_DB": str(CONSUMER_DB)}


# ---------------------------------------------------------------------------------------- insight

#: Under ``make run``, each function that serves GET /insight reads its own pull subscription of
#: the events topic: the local stand-in of the BigQuery subscription (docs/insight.md).
INSIGHT_SUBSCRIPTIONS = {"admin": "insight-admin", "admin_console": "insight-console"}


def insight_env(target: str, *, events: bool, tenants: Iterable[str] = ()) -> dict[str, str]:
    """Refund insight on the local DuckDB stand-in, with demo data, fed by the events topic when
    events are on: demo figures of the deployment's tenant and of ``tenants`` (make run's
    creators)."""
    env = {
        "INSIGHT_ENGINE": "local",
        "INSIGHT_LOCAL_DEMO": "1",
        "INSIGHT_LOCAL_DEMO_TENANTS": ",".join(["default", *tenants]),
    }
    if events:
        name = INSIGHT_SUBSCRIPTIONS[target]
        env["INSIGHT_LOCAL_SUBSCRIPTION"] = f"projects/{PROJECT}/subscriptions/{name}"
    return env


# ---------------------------------------------------------------------------------------- admin


def admin_env(port: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The admin function's settings: local audiences, ``ADMIN_EMAILS`` from the caller's
    environment (unset: nobody), and Google's certificates unless ``ADMIN_CERTS_URL`` says else."""
    audiences = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    extra = environ.get("ADMIN_AUDIENCES", "").strip()
    return {
        "ADMIN_AUDIENCES": ",".join([*audiences, extra] if extra else audiences),
        "ADMIN_EMAILS": environ.get("ADMIN_EMAILS", "").strip() or NOBODY,
        "ADMIN_CERTS_URL": environ.get("ADMIN_CERTS_URL", "").strip() or GOOGLE_CERTS_URL,
    }


def local_admin_env(admin_port: int, certs_port: int) -> dict[str, str]:
    """As ``admin_env``, trusting the local issuer (``dev_issuer``) served on ``certs_port`` and
    allowing ``admin@example.com`` unless the caller's environment says otherwise."""
    env = admin_env(admin_port)
    if not os.environ.get("ADMIN_CERTS_URL"):
        env["ADMIN_CERTS_URL"] = f"http://127.0.0.1:{certs_port}/oauth2/v3/certs"
    if not os.environ.get("ADMIN_EMAILS"):
        env["ADMIN_EMAILS"] = "admin@example.com"
    return env


def local_console_env(certs_port: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The console's settings under ``make run``: the admins of ``local_admin_env``, signing in
    through the local issuer's stand-in of Google's sign-in library. With ``ADMIN_CERTS_URL`` set
    (real Google tokens, network needed), Google's library and ``CONSOLE_OAUTH_CLIENT_ID`` from the
    environment instead (empty: the console is not started)."""
    emails = environ.get("ADMIN_EMAILS", "").strip() or "admin@example.com"
    certs = environ.get("ADMIN_CERTS_URL", "").strip()
    if certs:
        return {
            "ADMIN_EMAILS": emails,
            "ADMIN_CERTS_URL": certs,
            "CONSOLE_OAUTH_CLIENT_ID": environ.get("CONSOLE_OAUTH_CLIENT_ID", "").strip(),
            "CONSOLE_GIS_CLIENT_URL": GOOGLE_SIGN_IN_URL,
        }
    issuer = f"http://127.0.0.1:{certs_port}"
    return {
        "ADMIN_EMAILS": emails,
        "ADMIN_CERTS_URL": f"{issuer}/oauth2/v3/certs",
        "CONSOLE_OAUTH_CLIENT_ID": LOCAL_CONSOLE_CLIENT_ID,
        "CONSOLE_GIS_CLIENT_URL": f"{issuer}/gsi/client",
    }


def console_origins(console_port: int) -> tuple[str, ...]:
    """Where the local console's page is served from (the stand-in's token endpoint's CORS)."""
    return (f"http://127.0.0.1:{console_port}", f"http://localhost:{console_port}")


def serve_dev_certs(
    certs_port: int,
    *,
    console_client_id: str | None = None,
    console_origins: tuple[str, ...] = (),
    hint_email: str = "admin@example.com",
) -> ThreadingHTTPServer:
    """Serve the local issuer's key like https://www.googleapis.com/oauth2/v3/certs and, for the
    console (``console_client_id``), a stand-in of Google's sign-in library (``local_sign_in``)."""
    from .dev_issuer import certs_json
    from .local_sign_in import SignIn

    body = certs_json()
    sign_in = None
    if console_client_id:
        sign_in = SignIn(console_client_id, console_origins, hint_email)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if sign_in is not None and sign_in.get(self):
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:
            if sign_in is None or not sign_in.preflight(self):
                self.send_error(404)

        def do_POST(self) -> None:
            if sign_in is None or not sign_in.post(self):
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", certs_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------- apple


def _save(pki: ApplePKI) -> None:
    APPLE_PKI_DIR.mkdir(parents=True, exist_ok=True)
    chain = (("root", pki.root), ("intermediate", pki.intermediate), ("leaf", pki.leaf))
    for name, issued in chain:
        (APPLE_PKI_DIR / f"{name}.crt").write_bytes(issued.pem)
        key = issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (APPLE_PKI_DIR / f"{name}.key").write_bytes(key)
    APPLE_ROOT_DER.write_bytes(pki.root_der)


def _load() -> ApplePKI:
    parts = []
    for name in ("root", "intermediate", "leaf"):
        cert = x509.load_pem_x509_certificate((APPLE_PKI_DIR / f"{name}.crt").read_bytes())
        key = serialization.load_pem_private_key((APPLE_PKI_DIR / f"{name}.key").read_bytes(), None)
        parts.append(Issued(cert, key))  # type: ignore[arg-type]
    return ApplePKI(*parts)


def local_apple_pki() -> ApplePKI:
    """The local test PKI under ``.run/apple-test-pki/``, created on first use."""
    if not (APPLE_PKI_DIR / "leaf.key").exists():
        _save(generate_pki("RefundGuard Local"))
        print(f"created a test PKI; root: {APPLE_ROOT_DER}", file=sys.stderr)
    return _load()


def local_apple_env() -> dict[str, str]:
    """The Apple function trusts the throw-away local root (never Apple's), Sandbox only."""
    local_apple_pki()
    return {
        "APPLE_BUNDLE_IDS": APPLE_BUNDLE_ID,
        "APPLE_ENVIRONMENTS": "Sandbox",
        "APPLE_APP_APPLE_ID": "",
        "APPLE_ROOT_CERTS": str(APPLE_ROOT_DER),
    }
