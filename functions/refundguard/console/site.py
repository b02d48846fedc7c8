"""The console's page and files, read once at start-up from ``static/``, and the headers that go
with them: a Content-Security-Policy that allows this origin's own files and the sign-in library
only (no inline script or style, no framing), and the usual hardening headers on every answer.

Paths: ``/`` is the page and ``/assets/<file>`` its files, with or without one leading segment (the
function's name on a ``cloudfunctions.net`` URL), for GET and HEAD (not ``/static/``:
functions-framework's Flask app keeps that path for itself). Everything else is the admin API.
The page carries no data and no secret: what it shows comes from the API, as the signed-in
person."""

from __future__ import annotations

import html
import string
from dataclasses import dataclass
from pathlib import Path

from ..http import Reply

STATIC = Path(__file__).resolve().parent / "static"
PAGE = "index.html"
ASSETS = "assets"  # the URL path of the files
CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
#: On every answer of the console function, the API's JSON included.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def content_security_policy(sign_in_url: str) -> str:
    """Scripts and styles from this origin only, plus Google Identity Services' documented sources
    (the library, its stylesheet, its frames and calls under ``/gsi/``): no inline script or style,
    no plugins, no framing of the page, no form posts, no ``<base>``."""
    gsi = sign_in_url.rsplit("/", 1)[0] + "/"
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {sign_in_url}",
            f"style-src 'self' {gsi}style",
            f"connect-src 'self' {gsi}",
            f"frame-src {gsi}",
            "img-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def referrer_policy(local: bool) -> str:
    """``no-referrer``, except with Google's sign-in library, which checks the page's origin
    against the client's Authorized JavaScript origins from the Referer and refuses the button
    without it: ``strict-origin`` sends the origin alone (never a path, query or fragment), and
    nothing over plain http."""
    return "no-referrer" if local else "strict-origin"


@dataclass(frozen=True)
class Site:
    files: dict[str, tuple[bytes, str]]  # name -> (content, content type); PAGE is rendered
    page_headers: dict[str, str]
    api_headers: dict[str, str]

    @classmethod
    def load(cls, *, client_id: str, sign_in_url: str, local: bool) -> Site:
        files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(STATIC.iterdir()):
            if path.is_file() and path.suffix in CONTENT_TYPES:
                files[path.name] = (path.read_bytes(), CONTENT_TYPES[path.suffix])
        template = string.Template(files[PAGE][0].decode("utf-8"))
        page = template.substitute(
            client_id=html.escape(client_id, quote=True),
            sign_in_url=html.escape(sign_in_url, quote=True),
        )
        files[PAGE] = (page.encode("utf-8"), CONTENT_TYPES[".html"])
        common = {**COMMON_HEADERS, "Referrer-Policy": referrer_policy(local)}
        page_headers = {
            **common,
            "Content-Security-Policy": content_security_policy(sign_in_url),
            # Google's sign-in popup must be able to message this page back (GIS setup guide).
            "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
            "Cache-Control": "no-cache",
        }
        return cls(files, page_headers, {**common, "Content-Security-Policy": API_CSP})

    def find(self, method: str, path: str) -> Reply | None:
        """The page or one of its files for a GET/HEAD of their path; None: an API request."""
        if method not in ("GET", "HEAD"):
            return None
        name = self._file_name(path)
        if name is None or name not in self.files:
            return None
        content, content_type = self.files[name]
        return Reply(
            {},
            "console page" if name == PAGE else "console file",
            headers=self.page_headers,
            severity="DEBUG",
            content=content,  # werkzeug sends no body for HEAD
            content_type=content_type,
        )

    @staticmethod
    def _file_name(path: str) -> str | None:
        segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
        if segments and segments[-1] == "" and len(segments) <= 2:
            return PAGE  # "/" or "/<function name>/"
        for rest in (segments, segments[1:]):
            if len(rest) == 2 and rest[0] == ASSETS and rest[1] != PAGE:
                return rest[1]
        return None
