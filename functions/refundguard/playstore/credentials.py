"""The Play Developer API's settings (``config.PLAY_API_ENV``: ``read_play_api_settings``, read
without importing the client) and which credentials the client uses. Deployed (the API's real
URL): the function's own service account (application default credentials). Against a local
stand-in (an http:// base URL): only a service-account key file
(``GOOGLE_APPLICATION_CREDENTIALS``) whose ``token_uri`` is on this machine too, so a local run
never reaches Google with real credentials."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings, is_local_url
from ..storeapi import check_base_url

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
DEFAULT_BASE_URL = "https://androidpublisher.googleapis.com"


def read_play_credentials(settings: Settings, base_url: str) -> Any:
    """None (application default credentials) for the real API; for a local stand-in, the
    credentials of the key file named by ``GOOGLE_APPLICATION_CREDENTIALS`` (problems recorded)."""
    if not is_local_url(base_url):
        return None
    path = settings.raw("GOOGLE_APPLICATION_CREDENTIALS")
    why = (
        "PLAY_API_BASE_URL is a local stand-in, so GOOGLE_APPLICATION_CREDENTIALS must name a "
        "service-account key file whose token_uri is local too (make run writes one under .run/)"
    )
    if not path:
        settings.problem(why)
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        token_uri = document.get("token_uri", "") if isinstance(document, dict) else ""
    except (OSError, ValueError) as exc:
        settings.problem(f"GOOGLE_APPLICATION_CREDENTIALS: cannot read {path}: {exc}")
        return None
    if not is_local_url(str(token_uri)):
        settings.problem(f"{why}; its token_uri is not local")
        return None
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_info(document, scopes=[SCOPE])
    except (ValueError, KeyError) as exc:
        settings.problem(f"GOOGLE_APPLICATION_CREDENTIALS: {path} is not a key file: {exc}")
        return None


@dataclass(frozen=True)
class PlayApiSettings:
    base_url: str = DEFAULT_BASE_URL
    #: None: the runtime's service account (application default credentials); against a local
    #: stand-in, its key file's (``play.credentials``).
    credentials: Any = field(default=None, repr=False, compare=False)


def read_play_api_settings(settings: Settings) -> PlayApiSettings | None:
    """``PLAY_DEVELOPER_API`` (``on``/``off``, default off), ``PLAY_API_BASE_URL`` and the
    credentials to call it with; None when off. Problems are recorded on ``settings``."""
    switch = settings.text("PLAY_DEVELOPER_API", default="off").lower()
    if switch not in ("on", "off"):
        settings.problem(f"PLAY_DEVELOPER_API must be on or off, not {switch[:20]!r}")
    url = settings.check(
        lambda: check_base_url(
            settings.text("PLAY_API_BASE_URL", default=DEFAULT_BASE_URL),
            setting="PLAY_API_BASE_URL",
        )
    )
    if switch != "on" or url is None:
        return None
    return PlayApiSettings(url, read_play_credentials(settings, url))
