"""``reconcile_worker``: a Pub/Sub push of one work message (``reconciliation.work``) -> one page
of one tenant's source (``reconciliation.chain``). The push identity's OIDC token is checked
first (as the Play function does). 200 only once the page is done and its continuation
published; a retryable failure (Firestore, Pub/Sub, a store API's 5xx or 429) answers 503 and the
message comes again (dead-lettered after the subscription's attempts); a message that is not one
of ours is quarantined and acknowledged."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..errors import RefundGuardError, method_not_allowed, rejected, transient
from ..http import App, Reply, read_body, serve
from ..playstore import envelope
from ..reconciliation import work as w
from ..reconciliation.chain import ChainWorker
from ..reconciliation.settings import ReconcileSettings
from ..refund_policy import policies
from ..storeapi import CallPolicy
from ..wiring import Wiring
from .settings import WorkerSettings

if TYPE_CHECKING:
    import flask

    from ..store import EntitlementStore
    from ..tenant_apis import TenantApis

FUNCTION = "reconcile_worker"
MAX_BODY_BYTES = 64 * 1024  # a work message is about 300 bytes
API_POLICY = CallPolicy(deadline_s=20.0)


def create_handler(
    env: Mapping[str, str],
    *,
    entitlements: EntitlementStore | None = None,
    apis: TenantApis | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> App:
    settings = WorkerSettings.from_env(env)  # refuse to start if wrong
    reconcile = settings.reconcile
    if settings.push_auth is None:
        logs.warning(
            "RECONCILE_PUSH_SERVICE_ACCOUNTS is not set: only Cloud Run IAM stands between the "
            "internet and this function (fine locally, not in production)",
            function=FUNCTION,
        )
    wiring = Wiring.build(
        entitlements,
        reconcile.firestore,
        reconcile.events,
        function=FUNCTION,
        default_tenant=reconcile.default_tenant(),
    )
    if apis is None:  # each registered tenant's own Apple key, opened with Cloud KMS
        apis = reconcile.tenant_apis(API_POLICY)
    worker = ChainWorker(
        wiring,
        apis,
        publish=publisher_of(reconcile),
        overlap_ms=reconcile.overlap_ms,
        budget_s=reconcile.budget_s,
        policy_for=policies(reconcile.policy),
        sleep=sleep,
    )

    def handle(request: flask.Request) -> Reply:
        if settings.push_auth is not None:  # before the body is read
            settings.push_auth.authenticate(request.headers.get("Authorization"))
        if request.method != "POST":
            raise method_not_allowed("POST", request.method)
        message = envelope.parse(request.headers, read_body(request, max_bytes=MAX_BODY_BYTES))
        logs.bind(message_id=message.message_id)
        try:
            item = w.parse(message.data)
        except RefundGuardError as err:
            raise rejected(err.code, err.message, message_id=message.message_id) from None
        answer = worker.handle(item)
        return Reply(answer, "reconciliation work done")

    def key_of(err: RefundGuardError) -> str | None:
        message_id = err.details.get("message_id")
        return f"reconcile-work:{message_id}" if isinstance(message_id, str) else None

    return serve(
        FUNCTION, handle, on_rejected=wiring.ingestion.quarantiner("reconcile-work", key_of=key_of)
    )


def publisher_of(reconcile: ReconcileSettings) -> Callable[[list[w.Work]], None]:
    """Publishes work messages to ``RECONCILE_WORK_TOPIC``; TRANSIENT when Pub/Sub fails (the
    message being handled comes again: nothing is lost)."""
    from ..publisher import Publisher, PublishError

    assert reconcile.work is not None
    publisher = Publisher(reconcile.work)

    def publish(items: list[w.Work]) -> None:
        try:
            publisher.publish_messages([item.message() for item in items])
        except PublishError as err:
            raise transient("work_not_published", str(err)) from err

    return publish
