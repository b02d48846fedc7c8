"""The Play Developer API's settings (``config.PLAY_API_ENV``: ``read_play_api_settings``, read
without importing the client) and which credentials the client uses (``play_credentials``).

Deployed (the API's real URL), with ``PLAY_API_SERVICE_ACCOUNT`` set (Terraform sets it): the
function's own service account (application default credentials) impersonates that one Play API
account (IAM Service Account Credentials ``generateAccessToken``), so every function calls the
Play API as the same account, the one account a creator invites in their Play Console. Unset (the
fallback): each function calls as its own service account, and each must be invited.

Against a local stand-in (an http:// base URL): only a service-account key file
(``GOOGLE_APPLICATION_CREDENTIALS``) whose ``token_uri`` is on this machine too, so a local run
never reaches Google with real credentials; with ``PLAY_API_SERVICE_ACCOUNT`` set, that key's
account impersonates it at the stand-in's own ``generateAccessToken`` (``iam_endpoint``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings, is_local_url
from ..storeapi import check_base_url

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
DEFAULT_BASE_URL = "https://androidpublisher.googleapis.com"
#: How long each impersonated access token lives (IAM's maximum without an organization policy);
#: google-auth mints the next one when it expires.
TOKEN_LIFETIME_S = 3600
#: A service account's email: ``name@project.iam.gserviceaccount.com`` (or a default one's domain).
_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9-]{4,61}[a-z0-9]@[a-z0-9.-]+\.gserviceaccount\.com")


def iam_endpoint(base_url: str, account: str) -> str:
    """IAM Service Account Credentials' ``generateAccessToken`` for ``account`` at a local
    stand-in's ``base_url`` (the same stand-in as the Play API's; google-auth's
    ``iam_endpoint_override``)."""
    return f"{base_url}/v1/projects/-/serviceAccounts/{account}:generateAccessToken"


def impersonate(source: Any, account: str, *, iam_url: str | None = None) -> Any:
    """Credentials of ``account`` for the Play API, minted by ``source`` (which must hold
    Service Account Token Creator on it); ``iam_url``: a local stand-in's endpoint (None:
    Google's)."""
    from google.auth import impersonated_credentials

    return impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=account,
        target_scopes=[SCOPE],
        lifetime=TOKEN_LIFETIME_S,
        iam_endpoint_override=iam_url,
    )


def read_play_account(settings: Settings) -> str | None:
    """``PLAY_API_SERVICE_ACCOUNT``: the one account every function calls the Play API as (None:
    unset, each function's own). Problems are recorded on ``settings``."""
    account = settings.text("PLAY_API_SERVICE_ACCOUNT").lower()
    if account and not _ACCOUNT.fullmatch(account):
        settings.problem(
            "PLAY_API_SERVICE_ACCOUNT must be a service account's email "
            f"(name@project.iam.gserviceaccount.com), not {account[:80]!r}"
        )
        return None
    return account or None


def read_play_credentials(settings: Settings, base_url: str, account: str | None = None) -> Any:
    """None (application default credentials, ``play_credentials``) for the real API; for a
    local stand-in, the credentials of the key file named by ``GOOGLE_APPLICATION_CREDENTIALS``
    (problems recorded), impersonating ``account`` at the stand-in when given."""
    if not is_local_url(base_url):
        return None
    source = _local_key_credentials(settings)
    if source is None or account is None:
        return source
    return impersonate(source, account, iam_url=iam_endpoint(base_url, account))


def _local_key_credentials(settings: Settings) -> Any:
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
    #: None: built by ``play_credentials`` (application default credentials, impersonating
    #: ``service_account`` when set); against a local stand-in, its key file's.
    credentials: Any = field(default=None, repr=False, compare=False)
    #: ``PLAY_API_SERVICE_ACCOUNT``: the account the Play API is called as (None: the runtime's).
    service_account: str | None = None


def play_credentials(settings: PlayApiSettings) -> Any:
    """The credentials the client calls with: ``settings.credentials`` when set (a local
    stand-in's), else the runtime's application default credentials, impersonating
    ``settings.service_account`` when set."""
    if settings.credentials is not None:
        return settings.credentials
    import google.auth

    if settings.service_account is None:
        credentials, _ = google.auth.default(scopes=[SCOPE])
        return credentials
    source, _ = google.auth.default()
    return impersonate(source, settings.service_account)


def read_play_api_settings(settings: Settings) -> PlayApiSettings | None:
    """``PLAY_DEVELOPER_API`` (``on``/``off``, default off), ``PLAY_API_BASE_URL``,
    ``PLAY_API_SERVICE_ACCOUNT`` and the credentials to call it with; None when off. Problems
    are recorded on ``settings``."""
    switch = settings.text("PLAY_DEVELOPER_API", default="off").lower()
    if switch not in ("on", "off"):
        settings.problem(f"PLAY_DEVELOPER_API must be on or off, not {switch[:20]!r}")
    url = settings.check(
        lambda: check_base_url(
            settings.text("PLAY_API_BASE_URL", default=DEFAULT_BASE_URL),
            setting="PLAY_API_BASE_URL",
        )
    )
    account = read_play_account(settings)
    if switch != "on" or url is None:
        return None
    return PlayApiSettings(url, read_play_credentials(settings, url, account), account)
