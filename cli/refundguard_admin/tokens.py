"""Where the CLI's ID token comes from, in order:

1. ``--token`` / ``$REFUNDGUARD_ID_TOKEN``: a token you already have;
2. ``--impersonate-service-account SA`` / ``$REFUNDGUARD_IMPERSONATE``: the recommended path for a
   person. Your Google credentials (Application Default Credentials: ``gcloud auth
   application-default login``) ask IAM Credentials for an ID token of your own admin service
   account (Terraform creates one per admin and lets only you impersonate it), whose audience is
   the function's URL and which carries the account's email;
3. a service account's own credentials (a key file in ``$GOOGLE_APPLICATION_CREDENTIALS``, or the
   metadata server on Google Cloud): for automation.

There is no fallback to ``gcloud auth print-identity-token``: its audience is gcloud's, which the
admin function does not accept.
"""

from __future__ import annotations

import os
from urllib.parse import quote

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: IAM Credentials' base URL; ``$REFUNDGUARD_IAM_CREDENTIALS_URL`` points it at a local stand-in.
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com"


class TokenError(Exception):
    """No ID token could be obtained; the message says why and what to do."""


def get_id_token(audience: str, *, token: str | None = None, impersonate: str | None = None) -> str:
    """An ID token for ``audience`` from the first source given (see the module docstring)."""
    if token:
        return token.strip()
    if impersonate:
        return impersonated_id_token(impersonate, audience)
    try:
        return service_account_id_token(audience)
    except Exception as exc:
        raise TokenError(
            "no ID token: pass --impersonate-service-account with your admin service account "
            "(terraform output admin_service_accounts; sign in once with `gcloud auth "
            "application-default login`), or --token; for automation, a service account's "
            f"credentials ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def impersonated_id_token(service_account: str, audience: str) -> str:
    """IAM Credentials' generateIdToken for ``service_account``, with your own credentials."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    base = os.environ.get("REFUNDGUARD_IAM_CREDENTIALS_URL", "").rstrip("/") or IAM_CREDENTIALS_URL
    try:
        source, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        session = AuthorizedSession(source)
        url = f"{base}/v1/projects/-/serviceAccounts/{quote(service_account, safe='@.')}"
        response = session.post(
            f"{url}:generateIdToken",
            json={"audience": audience, "includeEmail": True},
            timeout=30,
        )
    except Exception as exc:
        raise TokenError(
            f"could not reach IAM Credentials as you (sign in with `gcloud auth "
            f"application-default login`): {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    if response.status_code == 403:
        raise TokenError(
            f"you may not impersonate {service_account}: you need "
            "roles/iam.serviceAccountTokenCreator on it (Terraform grants it to each admin on "
            "their own account)"
        )
    if response.status_code != 200:
        raise TokenError(
            f"IAM Credentials answered HTTP {response.status_code} for {service_account}"
        )
    try:
        return str(response.json()["token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("IAM Credentials answered without a token") from exc


def service_account_id_token(audience: str) -> str:
    """A service account's own ID token (key file or metadata server), via google-auth."""
    import google.oauth2.id_token
    from google.auth.transport.requests import Request

    return str(google.oauth2.id_token.fetch_id_token(Request(), audience))
