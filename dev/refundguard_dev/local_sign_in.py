"""``make run``'s stand-in of Google Identity Services for the console, served by the local
ID-token issuer (``dev_issuer``): ``/gsi/client`` is a small library with GIS's calls
(``google.accounts.id.initialize``, ``renderButton``...) that shows an email form instead of
Google's button, ``/gsi/style`` its stylesheet, and ``POST /gsi/token`` mints an ID token for the
console's local client id (CORS: the console's local origins only). The console's own code is the
same as deployed: only ``CONSOLE_GIS_CLIENT_URL`` and ``ADMIN_CERTS_URL`` point here. Nothing here
is ever deployed, and deployed functions never trust this issuer's key."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from .dev_issuer import mint

STATIC = Path(__file__).resolve().parent / "static"
_EMAIL = re.compile(r"[^@\s,]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+")
MAX_BODY = 4096


class SignIn:
    def __init__(
        self, client_id: str, origins: tuple[str, ...], hint_email: str = "admin@example.com"
    ) -> None:
        self.client_id = client_id
        self.origins = origins
        script = (STATIC / "gsi_client.js").read_text(encoding="utf-8")
        self.script = script.replace("__HINT_EMAIL__", json.dumps(hint_email)).encode()
        self.style = (STATIC / "gsi_style.css").read_bytes()

    def get(self, handler: BaseHTTPRequestHandler) -> bool:
        files = {
            "/gsi/client": (self.script, "text/javascript"),
            "/gsi/style": (self.style, "text/css"),
        }
        if handler.path not in files:
            return False
        body, content_type = files[handler.path]
        handler.send_response(200)
        handler.send_header("Content-Type", f"{content_type}; charset=utf-8")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    def _cors(self, handler: BaseHTTPRequestHandler) -> bool:
        origin = handler.headers.get("Origin", "")
        if origin not in self.origins:
            return False
        handler.send_header("Access-Control-Allow-Origin", origin)
        handler.send_header("Vary", "Origin")
        return True

    def preflight(self, handler: BaseHTTPRequestHandler) -> bool:
        if handler.path != "/gsi/token":
            return False
        handler.send_response(204)
        if self._cors(handler):
            handler.send_header("Access-Control-Allow-Methods", "POST")
            handler.send_header("Access-Control-Allow-Headers", "Content-Type")
            handler.send_header("Access-Control-Max-Age", "600")
        handler.end_headers()
        return True

    def post(self, handler: BaseHTTPRequestHandler) -> bool:
        """``{"email", "client_id", "lifetime_s"?}`` -> ``{"credential": <ID token>}``."""
        if handler.path != "/gsi/token":
            return False
        status, answer = 400, {"error": 'send {"email": ..., "client_id": ...}'}
        try:
            length = int(handler.headers.get("Content-Length") or 0)
            request = json.loads(handler.rfile.read(min(length, MAX_BODY)) or b"{}")
            email, client_id = request.get("email"), request.get("client_id")
            lifetime = int(request.get("lifetime_s", 3600))
            if client_id != self.client_id:
                status, answer = 403, {"error": "this stand-in mints for the console only"}
            elif isinstance(email, str) and _EMAIL.fullmatch(email.strip()):
                token = mint(email.strip().lower(), self.client_id, lifetime_s=lifetime)
                status, answer = 200, {"credential": token}
        except (ValueError, TypeError, AttributeError):
            pass
        body = json.dumps(answer).encode()
        handler.send_response(status)
        self._cors(handler)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True
