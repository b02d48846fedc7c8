"""The admin routes that check Apple reaches the deployment: ``POST /apple/notifications:test``
asks the App Store Server API to send a ``TEST`` notification to the URL set in App Store
Connect for that environment (Request a Test Notification), and
``GET /apple/notifications/test/{token}`` says how Apple's attempts went (Get Test Notification
Status). ``tenant`` (in the body, or the query of the status) names a registered tenant: its
own key and apps are used; without it, the key and apps set in the environment. Shapes:
docs/admin.md."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import logs
from ..errors import Kind, RefundGuardError, rejected
from ..http import Reply
from ..model import PRODUCTION
from ..storeapi import CallPolicy

if TYPE_CHECKING:
    from ..appstore.credentials import AppleApiAccess

SANDBOX = "Sandbox"  # Apple's other environment (appstore.verifier.ENVIRONMENTS)
ROUTES = frozenset({"apple_test_notification", "apple_test_notification_status"})
POLICY = CallPolicy(deadline_s=15.0)


def dispatch(
    name: str,
    apple: AppleApiAccess | None,
    *,
    params: Mapping[str, str],
    args: Mapping[str, str],
    body: Mapping[str, Any] | None,
    tenant_apple: Callable[[str], AppleApiAccess | None] | None = None,
) -> Reply:
    """One of ``ROUTES``, for an authenticated admin; every argument checked before Apple is
    asked. ``tenant_apple``: a registered tenant's App Store Server API access (its own key),
    404 for an unknown tenant."""
    source = (body if name == "apple_test_notification" else args) or {}
    tenant = source.get("tenant")
    if tenant is not None:
        if not isinstance(tenant, str) or tenant_apple is None:
            raise rejected("bad_tenant", "tenant must be a registered tenant's id")
        logs.bind(tenant=tenant)
        apple = tenant_apple(tenant)
        if apple is None:
            raise RefundGuardError(
                Kind.CONFLICT,
                "apple_api_off",
                f"tenant {tenant} has no Apple key or no Apple apps: add its apps and upload its "
                "In-App Purchase key (PUT /tenants/{id}/apple-key, docs/deploy.md)",
            )
    if apple is None:
        raise RefundGuardError(
            Kind.CONFLICT,
            "apple_api_off",
            "the App Store Server API is off here: add the In-App Purchase key to its secret and "
            "set apple_api_key_id / apple_api_issuer_id (docs/deploy.md)",
        )
    environment, bundle_id = _target(apple, source)
    logs.bind(environment=environment, bundle_id=bundle_id)
    from ..appstore.api import AppStoreApiClient

    client = AppStoreApiClient(apple.api, policy=POLICY)
    if name == "apple_test_notification":
        token = client.request_test_notification(bundle_id=bundle_id, environment=environment)
        return Reply(
            {"test_notification_token": token, "environment": environment, "bundle_id": bundle_id},
            "admin action",
        )
    status = client.get_test_notification_status(
        params["token"], bundle_id=bundle_id, environment=environment
    )
    attempts = [
        {"attempt_date_ms": a.attempt_date_ms, "result": a.result} for a in status.send_attempts
    ]
    logs.bind(delivered=status.delivered, attempts=len(attempts))
    return Reply(
        {
            "environment": environment,
            "bundle_id": bundle_id,
            "delivered": status.delivered,
            "send_attempts": attempts,
        },
        "admin action",
    )


def _target(apple: AppleApiAccess, source: Mapping[str, Any]) -> tuple[str, str]:
    environment = source.get("environment", PRODUCTION)
    if environment not in (PRODUCTION, SANDBOX):
        raise rejected("bad_environment", "environment must be Production or Sandbox")
    bundle_id = source.get("bundle_id", apple.bundle_ids[0])
    if bundle_id not in apple.bundle_ids:
        raise rejected(
            "unknown_bundle_id",
            f"bundle_id must be one of the apps' bundle ids: {apple.bundle_ids}",
        )
    return str(environment), str(bundle_id)
