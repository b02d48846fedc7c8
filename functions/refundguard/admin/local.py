"""Settings for running the admin function on a workstation (``make run``).

The function refuses to start without ``ADMIN_AUDIENCES`` and ``ADMIN_EMAILS``. Locally it verifies
real Google ID tokens (Google's certificates), so a developer calls it with their own
``gcloud auth print-identity-token``, whose audience is gcloud's OAuth client id. ``ADMIN_EMAILS``
comes from the caller's environment; unset, it names nobody who can sign in, so every call is 403
until it is set (``ADMIN_EMAILS=me@example.com make run``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The audience of ``gcloud auth print-identity-token`` for a user account (gcloud's client id).
GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"
NOBODY = "nobody@example.invalid"


def local_env(port: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    audiences = [f"http://127.0.0.1:{port}", f"http://localhost:{port}", GCLOUD_CLIENT_ID]
    extra = environ.get("ADMIN_AUDIENCES", "").strip()
    return {
        "ADMIN_AUDIENCES": ",".join([*audiences, extra] if extra else audiences),
        "ADMIN_EMAILS": environ.get("ADMIN_EMAILS", "").strip() or NOBODY,
        "ADMIN_CERTS_URL": environ.get("ADMIN_CERTS_URL", "").strip()
        or "https://www.googleapis.com/oauth2/v1/certs",
    }
