"""A sample platform webhook for refundguard's access-change events (docs/integrating.md).

A functions-framework HTTP function (``receive``) that refundguard's Pub/Sub push subscription
calls. For every push it:

1. verifies the Google-signed OIDC token Pub/Sub attaches: signature (Google's published keys),
   issuer, audience (this webhook's URL) and the email of refundguard's push identity;
2. reads the CloudEvent from the Pub/Sub envelope; an alert (``com.refundguard.alert.v1``,
   docs/alerts.md) goes to ``on_alert``, a placeholder, and is acknowledged, as is any other
   refundguard type it does not know;
3. in one SQLite transaction: skips an event id already seen (Pub/Sub delivers at least once) and an
   event whose ``version`` is not newer than the last one applied to its entitlement (a late
   arrival: the newer state is already applied), else calls ``grant_access`` / ``revoke_access``,
   placeholders for your platform's code, and records it.

It never prints a Google purchase token: the guide asks you to treat one as a secret (it gives
access to the purchase's data), so a Google entitlement is shown as ``google:token_hash=<16 hex>``,
the token's short SHA-256, the same ``token_hash`` that refundguard's own log lines carry (grep for
it there); an Apple entitlement, whose original transaction id is not a secret, as it is.

Answers 2xx when done (including duplicates and stale events), 401/403 for a token that is not
refundguard's, 400 for a body that is not an event (dead-lettered after the retries), 5xx when the
placeholder fails (Pub/Sub retries).

Settings (environment variables):

- ``CONSUMER_AUDIENCE``: this webhook's URL, as given to refundguard's ``platform_webhook_url``;
- ``CONSUMER_PUSH_SERVICE_ACCOUNT``: ``terraform output -raw platform_push_service_account``;
- ``CONSUMER_CERTS_URL``: Google's keys (default ``https://www.googleapis.com/oauth2/v3/certs``);
- ``CONSUMER_DB``: the SQLite file (default ``consumer.sqlite3``);
- ``CONSUMER_VERIFY_TOKENS=false``: no token check, for the local Pub/Sub emulator only (it signs
  nothing); said loudly at start-up and on every push.

Deploy: ``gcloud functions deploy platform-consumer --gen2 --runtime=python312 --trigger-http
--entry-point=receive --source=examples/platform_consumer --set-env-vars=...`` (and keep its URL
private to Pub/Sub: ``--no-allow-unauthenticated`` plus run.invoker for the push identity).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flask
import jwt

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ["https://accounts.google.com", "accounts.google.com"]
EVENT_TYPE = "com.refundguard.entitlement.access.v1"
#: refundguard's alerts (docs/alerts.md) share the topic: acknowledged and passed to ``on_alert``.
ALERT_TYPE = "com.refundguard.alert.v1"


@dataclass(frozen=True)
class Config:
    audience: str
    push_service_account: str
    certs_url: str
    db_path: str
    verify_tokens: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        verify = env.get("CONSUMER_VERIFY_TOKENS", "true").strip().lower() != "false"
        config = cls(
            audience=env.get("CONSUMER_AUDIENCE", "").strip(),
            push_service_account=env.get("CONSUMER_PUSH_SERVICE_ACCOUNT", "").strip().lower(),
            certs_url=env.get("CONSUMER_CERTS_URL", "").strip() or GOOGLE_CERTS_URL,
            db_path=env.get("CONSUMER_DB", "").strip() or "consumer.sqlite3",
            verify_tokens=verify,
        )
        if verify and not (config.audience and config.push_service_account):
            raise SystemExit(
                "set CONSUMER_AUDIENCE (this webhook's URL) and CONSUMER_PUSH_SERVICE_ACCOUNT "
                "(refundguard's platform_push_service_account output)"
            )
        return config


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------ your platform


def grant_access(data: Mapping[str, Any]) -> None:
    """Placeholder: give the user the product (``data["user_id"]``, ``data["product_id"]``...)."""
    _say(f"GRANT  {_describe(data)}")


def revoke_access(data: Mapping[str, Any]) -> None:
    """Placeholder: take the product away (a refund, a revocation, an expiry...)."""
    _say(f"REVOKE {_describe(data)}")


def on_alert(data: Mapping[str, Any]) -> None:
    """Placeholder: tell the creator (``data["tenant"]``): ``summary`` and what to do
    (``action``). Each alert comes once (dedupe by event id all the same)."""
    _say(f"ALERT  {data.get('tenant')} {data.get('kind')} ({data.get('severity')}): "
         f"{data.get('summary')}")  # fmt: skip


def token_hash(purchase_id: str) -> str:
    """A purchase token's short digest, safe to log: refundguard logs the same ``token_hash``."""
    return hashlib.sha256(purchase_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def entitlement_label(data: Mapping[str, Any]) -> str:
    """The entitlement as it may be logged: ``apple:<id>`` / ``apple-sandbox:<id>`` as they are,
    anything else (a Google purchase token, a secret) as ``<namespace>:token_hash=<16 hex>``."""
    namespace, _, purchase_id = str(data.get("entitlement_id")).partition(":")
    if namespace in ("apple", "apple-sandbox"):
        return f"{namespace}:{purchase_id}"
    return f"{namespace}:token_hash={token_hash(purchase_id)}"


def _describe(data: Mapping[str, Any]) -> str:
    """One line about a change, without the purchase token (not even inside the admin's reason)."""
    cause = data.get("cause") or {}
    namespace, _, purchase_id = str(data.get("entitlement_id")).partition(":")
    secret = purchase_id if namespace not in ("apple", "apple-sandbox") and purchase_id else None

    def free_text(value: object) -> str:
        text = str(value)
        return text.replace(secret, f"[token_hash={token_hash(secret)}]") if secret else text

    by = f" by {free_text(cause['actor'])}" if cause.get("actor") else ""
    why = f" ({free_text(cause['reason'])})" if cause.get("reason") else ""
    return (
        f"{entitlement_label(data)}: {data.get('previous_status') or 'new'} -> {data['status']}"
        f" (version {data.get('version')}; {cause.get('source')} {cause.get('type')}{by}{why})"
    )


def _say(line: str) -> None:
    print(f"[platform] {line}", file=sys.stdout, flush=True)


# ------------------------------------------------------------------------------ the webhook


class Consumer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.keys = jwt.PyJWKClient(config.certs_url, cache_keys=True, lifespan=3600)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, outcome TEXT)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS applied (entitlement TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL, status TEXT NOT NULL, access INTEGER NOT NULL)"
            )
        if not config.verify_tokens:
            _say("WARNING: CONSUMER_VERIFY_TOKENS=false: pushes are NOT authenticated (local only)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.config.db_path, timeout=30, isolation_level=None)

    def verify(self, authorization: str | None) -> None:
        if not self.config.verify_tokens:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "no bearer token")
        try:
            key = self.keys.get_signing_key_from_jwt(token.strip())
            claims = jwt.decode(
                token.strip(),
                key.key,
                algorithms=["RS256"],
                audience=self.config.audience,
                issuer=GOOGLE_ISSUERS,
                leeway=30,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Refused(401, f"token refused: {type(exc).__name__}") from None
        email = str(claims.get("email", "")).lower()
        if claims.get("email_verified") is not True or email != self.config.push_service_account:
            raise Refused(403, "the token is not refundguard's push identity")

    def handle(self, body: Mapping[str, Any]) -> str:
        event = _event(body)
        if event.get("type") != EVENT_TYPE:  # an alert, or a type this consumer does not know
            if event.get("type") == ALERT_TYPE:
                on_alert(event["data"])
                return "alert"
            return "ignored"
        data = event["data"]
        entitlement, version = data["entitlement_id"], data["version"]
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM seen WHERE event_id = ?", (event["id"],)).fetchone():
                db.execute("ROLLBACK")
                return "duplicate"
            row = db.execute(
                "SELECT version FROM applied WHERE entitlement = ?", (entitlement,)
            ).fetchone()
            outcome = "stale" if row is not None and version <= row[0] else "applied"
            if outcome == "applied":
                (grant_access if data["access"] else revoke_access)(data)
                db.execute(
                    "INSERT OR REPLACE INTO applied VALUES (?, ?, ?, ?)",
                    (entitlement, version, data["status"], int(bool(data["access"]))),
                )
            db.execute("INSERT INTO seen VALUES (?, ?)", (event["id"], outcome))
            db.execute("COMMIT")
            return outcome
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()


def _event(body: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvent inside a Pub/Sub push envelope; Refused(400) when it is not one. Another
    refundguard type (``com.refundguard.*``: an alert) is returned as it is, acknowledged."""
    try:
        event = json.loads(base64.b64decode(body["message"]["data"], validate=True))
        data = event["data"]
        kind = event.get("type")
        if not isinstance(event.get("id"), str) or not isinstance(kind, str):
            raise ValueError("not a refundguard event")
        if kind != EVENT_TYPE and kind.startswith("com.refundguard.") and isinstance(data, dict):
            return event
        if kind != EVENT_TYPE:
            raise ValueError("not a refundguard access event")
        if not isinstance(data["version"], int) or not isinstance(data["entitlement_id"], str):
            raise ValueError("no version or entitlement")
        if not isinstance(data["access"], bool):
            raise ValueError("no access")
        return event
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused(400, f"not a refundguard access event: {exc}") from None


def receive(request: flask.Request) -> flask.Response:
    """The webhook: Pub/Sub pushes one event per request."""
    try:
        CONSUMER.verify(request.headers.get("Authorization"))
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise Refused(400, "the body is not a Pub/Sub push")
        outcome = CONSUMER.handle(body)
    except Refused as refused:
        _say(f"refused a push ({refused.status}): {refused}")
        return flask.jsonify({"error": str(refused)}), refused.status
    return flask.jsonify({"outcome": outcome}), 200


#: Built at start-up: missing settings stop the function before it takes a push.
CONSUMER = Consumer(Config.from_env(os.environ))
