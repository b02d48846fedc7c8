"""The ``admin`` entry point's handler, built once from the environment.

Settings (see ``config.FUNCTION_ENV["admin"]`` and docs/admin.md):

- ``ADMIN_AUDIENCES``: comma list of accepted ``aud`` values: the function's URL(s), and, for
  people calling with their own ``gcloud auth print-identity-token``, gcloud's OAuth client id;
- ``ADMIN_EMAILS``: comma list of allowed emails and ``*@domain`` entries;
- ``ADMIN_CERTS_URL``: Google's signing certificates (default ``GOOGLE_CERTS_URL``), https only.
"""

from __future__ import annotations

from collections.abc import Mapping

import flask

from .. import config
from ..http import Handler, guarded
from ..oidc import (
    GOOGLE_CERTS_URL,
    AllowList,
    Authenticator,
    CertCache,
    IdTokenVerifier,
    check_certs_url,
)
from ..store import EntitlementStore
from .api import AdminApi


def create_authenticator(env: Mapping[str, str]) -> Authenticator:
    audiences = config.csv_list(env, "ADMIN_AUDIENCES", required=True)
    allow_list = AllowList(config.csv_list(env, "ADMIN_EMAILS", required=True))
    certs_url = check_certs_url(config.text(env, "ADMIN_CERTS_URL", default=GOOGLE_CERTS_URL))
    return Authenticator(IdTokenVerifier(audiences, CertCache(certs_url)), allow_list)


def create_handler(env: Mapping[str, str]) -> Handler:
    authenticator = create_authenticator(env)  # settings first: refuse to start if wrong
    api = AdminApi(EntitlementStore.from_env(env), authenticator)
    inner = guarded("admin", api.handle)

    def handler(request: flask.Request) -> flask.Response:
        response = inner(request)
        if response.status_code == 401:  # RFC 6750: say which scheme is expected
            response.headers["WWW-Authenticate"] = 'Bearer realm="refundguard-admin"'
        return response

    return handler
