"""A local stand-in for Google's ID-token issuer, for ``make run`` only.

``make run`` serves this key on ``http://127.0.0.1:8084/oauth2/v3/certs`` (like
``https://www.googleapis.com/oauth2/v3/certs``) and points the local admin function's
``ADMIN_CERTS_URL`` at it, so the admin API can be tried end to end without a Google account or a
network. This prints an ID token for the local admin function::

    TOKEN=$(.venv/bin/python scripts/dev_admin_token.py)                 # admin@example.com
    TOKEN=$(.venv/bin/python scripts/dev_admin_token.py --email x@y.z)  # someone else (403)

The key lives under ``.run/admin-dev/`` (git-ignored). Nothing deployed ever trusts it: deployed
functions fetch Google's own certificates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as gjwt

ROOT = Path(__file__).resolve().parents[2]
KEY_DIR = ROOT / ".run" / "admin-dev"
ISSUER = "https://accounts.google.com"


def _ensure_key() -> tuple[bytes, bytes]:
    key_path, cert_path = KEY_DIR / "key.pem", KEY_DIR / "cert.pem"
    if not key_path.exists():
        KEY_DIR.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "refundguard local issuer")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path.read_bytes(), cert_path.read_bytes()


def key_id(cert_pem: bytes) -> str:
    return hashlib.sha256(cert_pem).hexdigest()[:40]


def certs_json() -> bytes:
    """The body Google's v3 certs endpoint has: a JWKS with this issuer's one key."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from .id_tokens import public_jwk

    _, cert_pem = _ensure_key()
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    return json.dumps({"keys": [public_jwk(public_key, key_id(cert_pem))]}).encode()


def mint(email: str, audience: str, lifetime_s: int = 3600) -> str:
    key_pem, cert_pem = _ensure_key()
    signer = crypt.RSASigner.from_string(key_pem, key_id=key_id(cert_pem))
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": audience,
        "sub": hashlib.sha256(email.encode()).hexdigest()[:21],
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + lifetime_s,
    }
    return gjwt.encode(signer, claims).decode()
