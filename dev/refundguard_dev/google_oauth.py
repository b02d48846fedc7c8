"""Google's OAuth token endpoint as the stand-ins play it (``fake_play_api``,
``fake_google_identity``): service-account key files whose ``token_uri`` is the stand-in's, and
the JWT-bearer grant google-auth sends with one (RS256 with that key and its ``kid``, ``iss``,
``aud``, ``iat``/``exp`` at most an hour apart), refused as Google refuses: 400
``{"error", "error_description"}``."""

from __future__ import annotations

import functools
import json
import secrets
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .fake_http import Reply, Request

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's assertion ``aud``
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@functools.cache
def rsa_key(email: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def oauth_error(error: str, description: str) -> Reply:
    return Reply(400, {"error": error, "error_description": description})


class ServiceAccounts:
    """The service accounts a stand-in trusts: email -> (key id, public key)."""

    def __init__(self, token_uri: str, *, client_id: str) -> None:
        self.token_uri, self.client_id = token_uri, client_id
        self.keys: dict[str, tuple[str, rsa.RSAPublicKey]] = {}
        self._lock = threading.Lock()

    def write_key(self, path: Path, email: str, **extra: str) -> Path:
        """A key file for ``email`` whose ``token_uri`` is the stand-in's; its key is trusted."""
        key = rsa_key(email)
        kid = secrets.token_hex(20)
        with self._lock:
            self.keys[email] = (kid, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        document = {
            "type": "service_account",
            "project_id": "demo-refundguard",
            "private_key_id": kid,
            "private_key": pem,
            "client_email": email,
            "client_id": self.client_id,
            **extra,
            "token_uri": self.token_uri,
        }
        path.write_text(json.dumps(document, indent=2))
        path.chmod(0o600)
        return path

    def grant(self, request: Request) -> dict[str, Any] | Reply:
        """The claims of a valid JWT-bearer grant, else Google's 400 answer."""
        form = {k: v[0] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            return oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            email = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            with self._lock:
                kid, key = self.keys[email]
            if header.get("kid") not in (None, kid):
                raise jwt.InvalidTokenError("unknown key id")
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                issuer=email,
                leeway=30,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return oauth_error("invalid_grant", "Invalid JWT Signature.")
        if int(claims["exp"]) - int(claims["iat"]) > 3600:
            return oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token.")
        return claims
