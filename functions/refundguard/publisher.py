"""Publishes outbox entries to the events topic through Pub/Sub's REST API: google-auth's
``AuthorizedSession`` (the function's own service account) in Google Cloud, a plain ``requests``
session to ``PUBSUB_EMULATOR_HOST`` locally, never both.

REST rather than google-cloud-pubsub (docs/integrating.md has the figures): on top of the Firestore
client that every function loads anyway, ``AuthorizedSession`` + ``requests`` add about 12 ms of
import against about 60 ms for the client library, and a call is one synchronous request whose
failure the caller sees, with no background batching threads (Cloud Functions throttles the CPU
once a function has answered)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import outbound
from .events import OutboxEntry, pubsub_message

if TYPE_CHECKING:
    import requests

    from .config import EventsSettings

PUBSUB_URL = "https://pubsub.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/pubsub"
#: (connect, read) seconds of one publish request; their sum bounds the request as a whole: a
#: request that changed access waits at most this long for Pub/Sub before it answers anyway (the
#: outbox keeps the event for the sweep).
TIMEOUT_S = (2.0, 5.0)
MAX_MESSAGES_PER_REQUEST = 100  # Pub/Sub takes 1,000 and 10 MB; an event is about 1 KB


class PublishError(Exception):
    """Pub/Sub did not take the messages (unreachable, refused, timed out): nothing is known to be
    published, so the entries stay in the outbox."""


class Publisher:
    """Publishes to one topic; ``publish`` raises ``PublishError`` on any failure, nothing else."""

    def __init__(
        self,
        settings: EventsSettings,
        *,
        session: requests.Session | None = None,
        timeout_s: tuple[float, float] = TIMEOUT_S,
    ) -> None:
        self.topic = settings.topic
        self.source = settings.source
        self.emulator_host = settings.emulator_host
        base = f"http://{settings.emulator_host}" if settings.emulator_host else PUBSUB_URL
        self.url = f"{base}/v1/{settings.topic}:publish"
        self._session = session
        self._timeout_s = timeout_s

    def _http(self) -> requests.Session:
        """Built at the first publish: Google credentials are looked up only when needed. Its
        connections (token fetches included) obey ``outbound.deadline``."""
        if self._session is None:
            if self.emulator_host:
                self._session = outbound.session()
            else:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials, _ = google.auth.default(scopes=[SCOPE])
                self._session = outbound.mount(
                    AuthorizedSession(credentials, auth_request=outbound.google_auth_request())
                )
        return self._session

    def publish(self, entries: Sequence[OutboxEntry]) -> list[str]:
        """Publish ``entries`` in this order (requests of at most ``MAX_MESSAGES_PER_REQUEST``);
        returns Pub/Sub's message ids."""
        return self.publish_messages([pubsub_message(e) for e in entries])

    def publish_messages(
        self, messages: Sequence[dict[str, Any]], *, per_request: int = MAX_MESSAGES_PER_REQUEST
    ) -> list[str]:
        """Publish REST ``PubsubMessage`` objects as they are (the reconciler's work messages),
        ``per_request`` at most per request; returns Pub/Sub's message ids."""
        ids: list[str] = []
        for start in range(0, len(messages), per_request):
            ids.extend(self._post({"messages": list(messages[start : start + per_request])}))
        return ids

    def _post(self, body: dict[str, Any]) -> list[str]:
        try:
            with outbound.deadline(sum(self._timeout_s)):  # connect + read: the whole request
                response = self._http().post(self.url, json=body, timeout=self._timeout_s)
        except Exception as exc:  # network, credentials, anything: the entries stay in the outbox
            raise PublishError(f"Pub/Sub unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            # Only the status: an error's text might quote a message (purchase tokens are secret).
            raise PublishError(
                f"Pub/Sub answered HTTP {response.status_code} ({_error_status(response)}) "
                f"for {self.topic}"
            )
        try:
            ids = response.json()["messageIds"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PublishError("Pub/Sub answered an unexpected body") from exc
        if not isinstance(ids, list) or len(ids) != len(body["messages"]):
            raise PublishError("Pub/Sub did not answer one message id per message")
        return [str(i) for i in ids]


def _error_status(response: requests.Response) -> str:
    """Google's error status name (``NOT_FOUND``, ``PERMISSION_DENIED``...), or ``?``."""
    try:
        status = response.json()["error"]["status"]
    except (ValueError, KeyError, TypeError):
        return "?"
    return status if isinstance(status, str) and status.isupper() and len(status) < 40 else "?"
