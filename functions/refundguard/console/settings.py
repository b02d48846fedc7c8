"""The console function's settings: the one OAuth client id whose ID tokens it accepts (Google
Identity Services issues them to the console's page; no other audience is accepted), where the page
loads the sign-in library from, and everything else exactly as the admin function reads it (the
same ``ADMIN_EMAILS``, token certificates and store APIs)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..adminapi.settings import AdminSettings
from ..config import ConfigError, Settings, is_local_url
from ..oidc import read_authenticator

CLIENT_ID = "CONSOLE_OAUTH_CLIENT_ID"
SIGN_IN_URL = "CONSOLE_GIS_CLIENT_URL"
#: Google Identity Services' client library (https://developers.google.com/identity/gsi/web).
GOOGLE_SIGN_IN_URL = "https://accounts.google.com/gsi/client"
WHO = "the refundguard console"
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,200}\.apps\.googleusercontent\.com")
# A URL that can go into a Content-Security-Policy as it is: no spaces, quotes, ';' or ','.
_URL_CHARS = re.compile(r"[A-Za-z0-9:/._~-]+")


@dataclass(frozen=True)
class ConsoleSettings:
    admin: AdminSettings  # its auth accepts the console's client id as the only audience
    client_id: str
    sign_in_url: str

    @property
    def local(self) -> bool:
        """Whether the sign-in library is a local stand-in (``make run``), not Google's."""
        return urlsplit(self.sign_in_url).scheme == "http"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsoleSettings:
        settings = Settings(env)
        client_id = settings.text(CLIENT_ID)
        if client_id and not _CLIENT_ID.fullmatch(client_id):
            settings.problem(
                f"{CLIENT_ID} must be one OAuth client id of type Web application, "
                "NNNN-xxxx.apps.googleusercontent.com (docs/console.md)"
            )
        sign_in_url = settings.text(SIGN_IN_URL, default=GOOGLE_SIGN_IN_URL)
        settings.check(lambda: check_sign_in_url(sign_in_url))
        auth = read_authenticator(
            settings,
            emails="ADMIN_EMAILS",
            audiences=CLIENT_ID,
            keys_url="ADMIN_CERTS_URL",
            who=WHO,
            forbidden_code="not_an_admin",
        )
        admin = AdminSettings.read(settings, auth)  # raises, naming every problem
        return cls(admin, client_id, sign_in_url)


def check_sign_in_url(url: str) -> str:
    """Google's library over https, or a stand-in over http on this machine (``make run``); the
    URL goes into the page's Content-Security-Policy, so it must be a plain URL ending in
    ``/client`` (the directory above it is what the policy allows for frames and calls)."""
    parts = urlsplit(url)
    if not (
        (parts.scheme == "https" or is_local_url(url))
        and parts.hostname
        and _URL_CHARS.fullmatch(url)
        and not parts.query
        and parts.path.endswith("/client")
    ):
        raise ConfigError(
            f"{SIGN_IN_URL} must be an https:// URL of the sign-in library ending in /client "
            f"(default {GOOGLE_SIGN_IN_URL}; http:// only to localhost, for make run)"
        )
    return url
