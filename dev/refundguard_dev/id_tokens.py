"""Test doubles for Google's side of ID tokens: an RS256 signer (google-auth's, independent of
the PyJWT that verifies), and a real HTTP server on 127.0.0.1 serving its keys as a JWKS like
https://www.googleapis.com/oauth2/v3/certs, counting its requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as gjwt

ISSUER = "https://accounts.google.com"
AUDIENCE = "https://admin-test.example.run.app"
CERTS_PATH = "/oauth2/v3/certs"


def public_jwk(public_key: rsa.RSAPublicKey, kid: str) -> dict[str, str]:
    """An RSA public key as Google publishes it in its JWKS."""
    numbers = public_key.public_numbers()

    def b64(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": b64(numbers.n),
        "e": b64(numbers.e),
    }


@cache
def _rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestSigner:
    """Signs ID tokens as Google would, with its own key and a certificate for it."""

    __test__ = False  # not a pytest class

    def __init__(self, kid: str, key_name: str | None = None) -> None:
        self.kid = kid
        self.key = _rsa_key(key_name or kid)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test-{kid}")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.jwk = public_jwk(self.key.public_key(), kid)
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self._signer = crypt.RSASigner.from_string(pem, key_id=kid)
        self._signer_without_kid = crypt.RSASigner.from_string(pem, key_id=None)

    def token(
        self,
        email: str | None = "admin@example.com",
        *,
        audience: str | None = AUDIENCE,
        issuer: str | None = ISSUER,
        email_verified: Any = True,
        hd: str | None = None,
        lifetime_s: int = 3600,
        issued_at: int | None = None,
        kid: str | None = None,
        header: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        now = int(time.time()) if issued_at is None else issued_at
        claims: dict[str, Any] = {"iat": now, "exp": now + lifetime_s, "sub": "1234567890"}
        for name, value in (("iss", issuer), ("aud", audience), ("email", email), ("hd", hd)):
            if value is not None:
                claims[name] = value
        if email_verified is not None:
            claims["email_verified"] = email_verified
        claims.update(extra)
        if kid == "":  # a token whose header names no key
            return gjwt.encode(self._signer_without_kid, claims, header=dict(header or {})).decode()
        return gjwt.encode(
            self._signer, claims, header=dict(header or {}), key_id=kid or self.kid
        ).decode()


class CertServer:
    """``GET /oauth2/v3/certs`` on 127.0.0.1: the signers' JWKS, with ``Cache-Control``."""

    def __init__(self, *signers: TestSigner, max_age: int | None = 3600) -> None:
        self.certs: dict[str, dict[str, str]] = {s.kid: s.jwk for s in signers}
        self.max_age = max_age
        self.status = 200
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                    status, certs = server.status, dict(server.certs)
                if self.path != CERTS_PATH:
                    status = 404
                document = {"keys": list(certs.values())}
                body = json.dumps(document).encode() if status == 200 else b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if server.max_age is not None:
                    self.send_header("Cache-Control", f"public, max-age={server.max_age}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}{CERTS_PATH}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def add(self, signer: TestSigner) -> None:
        with self._lock:
            self.certs[signer.kid] = signer.jwk

    def start(self) -> CertServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def cert_server(*signers: TestSigner, max_age: int | None = 3600) -> Iterator[CertServer]:
    server = CertServer(*signers, max_age=max_age).start()
    try:
        yield server
    finally:
        server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
