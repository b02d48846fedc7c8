"""Look-up by order id (``GET /orders/{order_id}``): from Firestore when the order is known (one
query on ``order_ids``), else through the store's API (Google ``orders.get`` -> purchase token;
Apple Look Up Order ID -> verified transactions -> original transaction ids). A purchase found
through an API gets an informational ``ORDER_LOOKUP`` event carrying the order id, so the next
look-up is one Firestore query. ``link_event`` is pure; ``OrderFinder`` asks the APIs."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .. import logs
from ..errors import Kind, RefundGuardError, not_found, rejected, transient
from ..model import (
    DEFAULT_TENANT,
    PRODUCTION,
    Entitlement,
    LedgerEvent,
    Source,
    StoreName,
    check_purchase_id,
)
from ..serializer import to_json
from ..storeapi import StoreApiError, StoreAuthError

if TYPE_CHECKING:  # the clients are built (and imported) only when their API is on
    from ..appstore.api import AppStoreApiClient
    from ..appstore.verifier import AppleVerifier
    from ..playstore.api import PlayApiClient
    from ..store import EntitlementStore
    from ..tenant_apis import TenantApis
    from ..tenants import Tenant

T = TypeVar("T")
HISTORY_LIMIT = 500
MAX_RESULTS = 20
_ORDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
GOOGLE_PREFIX = "GPA."
#: A store's answer that means "not this app's order": try the next app, then 404.
_NOT_HERE = (Kind.NOT_FOUND, Kind.REJECTED)


def parse_order_id(raw: str) -> str:
    """Never dots only: ``.`` and ``..`` would be dot segments in a store API's URL path."""
    if not _ORDER_ID.fullmatch(raw) or not raw.strip("."):
        raise rejected(
            "bad_order_id",
            "order id must be 1-200 characters of letters, digits and . _ : -, not dots only",
        )
    return raw


def store_of(order_id: str) -> StoreName:
    """Google order ids start with ``GPA.``; anything else is taken for an Apple order id."""
    return StoreName.GOOGLE if order_id.startswith(GOOGLE_PREFIX) else StoreName.APPLE


@dataclass(frozen=True)
class Found:
    """A purchase a store's API named for an order."""

    store: StoreName
    purchase_id: str
    environment: str = PRODUCTION
    product_id: str | None = None
    user_id: str | None = None
    purchase_time_ms: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def link_event(order_id: str, found: Found, *, actor: str, via: str, now_ms: int) -> LedgerEvent:
    """The informational event that records the link order -> purchase (pure). Its id derives
    from the order id, so a second look-up through the API is a ledger duplicate."""
    digest = hashlib.sha256(order_id.encode()).hexdigest()[:40]
    return LedgerEvent(
        store=found.store,
        purchase_id=found.purchase_id,
        event_id=f"order-lookup-{digest}",
        source=Source.ADMIN,
        type="ORDER_LOOKUP",
        event_time_ms=now_ms,
        effect=None,
        environment=found.environment,
        product_id=found.product_id,
        user_id=found.user_id,
        order_id=order_id,
        purchase_time_ms=found.purchase_time_ms,
        actor=actor,
        reason=f"order {order_id} found through {via}",
        details=dict(found.details),
    )


def entitlement_view(entitlements: EntitlementStore, entitlement: Entitlement) -> dict[str, Any]:
    """An entitlement as ``POST /entitlements:lookup`` answers it."""
    history = entitlements.history(
        entitlement.store, entitlement.purchase_id, entitlement.environment, limit=HISTORY_LIMIT
    )
    return {
        "status": entitlement.status.value,
        "entitlement": to_json(entitlement),
        "history": [to_json(entry) for entry in history],
        "history_truncated": entitlement.history_count > len(history),
    }


class OrderFinder:
    """Asks the stores' APIs which purchases an order is (None: that store's API is off): the
    apps set in the environment with their clients, then each registered tenant's apps
    (``tenants``) with that tenant's API (``apis``: the Play API for a tenant whose play_api is
    on, the tenant's own Apple key)."""

    def __init__(
        self,
        *,
        play: PlayApiClient | None = None,
        packages: tuple[str, ...] = (),
        apple: AppStoreApiClient | None = None,
        verifier: AppleVerifier | None = None,
        bundle_ids: tuple[str, ...] = (),
        tenants: Callable[[], Iterable[Tenant]] | None = None,
        apis: TenantApis | None = None,
    ) -> None:
        self.play, self.packages = play, packages
        self.apple, self.verifier, self.bundle_ids = apple, verifier, bundle_ids
        self.tenants, self.apis = tenants, apis

    def _registered(self, asks: Callable[[str], bool]) -> Iterable[Tenant]:
        if self.tenants is None or self.apis is None:
            return ()
        return (t for t in self.tenants() if t.id != DEFAULT_TENANT and asks(t.id))

    def via(self, store: StoreName) -> str:
        if store is StoreName.GOOGLE:
            return "the Play Developer API (orders.get)"
        return "the App Store Server API (Look Up Order ID)"

    def enabled(self, store: StoreName) -> bool:
        if (self.play if store is StoreName.GOOGLE else self.apple) is not None:
            return True
        if self.tenants is None or self.apis is None:
            return False
        return self.apis.play_on if store is StoreName.GOOGLE else self.apis.apple_on

    def find(
        self, order_id: str, store: StoreName, *, asks: Callable[[str], bool] = lambda _: True
    ) -> list[Found]:
        """The purchases of ``order_id``, asking each app in turn (registered tenants' apps: of
        the tenants ``asks`` names). An app whose API refuses our credentials is skipped; when no
        app knows the order and one refused, that refusal is the answer (503 naming the fix: the
        order may be that app's)."""
        refused: list[StoreAuthError] = []
        found = self._google(order_id, refused, asks) if store is StoreName.GOOGLE else None
        if store is StoreName.APPLE:
            found = self._apple(order_id, refused, asks)
        if found or not refused:
            return found or []
        err = refused[0]
        raise transient(
            "store_permission",
            f"the {err.store} API refused refundguard's credentials: {err.message}",
            **err.details,
        ) from err

    def _google_apps(self, asks: Callable[[str], bool]) -> Iterable[tuple[PlayApiClient, str]]:
        if self.play is not None:
            yield from ((self.play, package) for package in self.packages)
        for tenant in self._registered(asks):
            client = self.apis.play(tenant) if self.apis is not None else None
            if client is not None:
                yield from ((client, package) for package in tenant.play_packages)

    def _google(
        self, order_id: str, refused: list[StoreAuthError], asks: Callable[[str], bool]
    ) -> list[Found]:
        for client, package in self._google_apps(asks):
            order = _ask(functools.partial(client.get_order, package, order_id), refused)
            if order is None:
                continue
            item = order.line_items[0] if order.line_items else None
            details = {"package": package, "orderState": order.state}
            if order.refund_time_ms:
                details["refundTimeMs"] = order.refund_time_ms
            return [
                Found(
                    StoreName.GOOGLE,
                    _purchase_id(order.purchase_token, "google"),
                    product_id=item.product_id if item else None,
                    purchase_time_ms=order.create_time_ms,
                    details=details,
                )
            ]
        return []

    def _apple_apps(
        self, unopened: list[RefundGuardError], asks: Callable[[str], bool]
    ) -> Iterable[tuple[AppStoreApiClient, AppleVerifier, str]]:
        """Each app with the client and verifier of its key; a tenant whose key cannot be opened
        now is skipped (kept in ``unopened``: KMS down is the answer if no other app knows)."""
        if self.apple is not None and self.verifier is not None:
            yield from ((self.apple, self.verifier, b) for b in self.bundle_ids)
        for tenant in self._registered(asks):
            if tenant.apple_key is None or self.apis is None:
                continue
            try:
                access = self.apis.apple_access(tenant)
                client = self.apis.apple(tenant)
            except RefundGuardError as err:
                logs.bind(apple_key_unopened=tenant.id)
                unopened.append(err)
                continue
            except ValueError:  # the stored key is not a .p8
                continue
            if access is None or client is None:
                continue
            for app in tenant.apple_apps:
                if PRODUCTION in app.environments:  # Look Up Order ID is Production only
                    yield client, access.verifier, app.bundle_id

    def _apple(
        self, order_id: str, refused: list[StoreAuthError], asks: Callable[[str], bool]
    ) -> list[Found]:
        from ..appstore import verified

        unopened: list[RefundGuardError] = []
        for client, verifier, bundle_id in self._apple_apps(unopened, asks):
            ask = functools.partial(
                verified.look_up_order, client, verifier, order_id, bundle_id=bundle_id
            )
            lookup = _ask(ask, refused)
            if lookup is None or not lookup.valid:
                continue
            found: dict[str, Found] = {}
            for tx in lookup.transactions:
                found.setdefault(
                    tx.original_transaction_id,
                    Found(
                        StoreName.APPLE,
                        _purchase_id(tx.original_transaction_id, "apple"),
                        environment=tx.environment,
                        product_id=tx.product_id,
                        user_id=tx.app_account_token,
                        purchase_time_ms=tx.purchase_date_ms,
                        details={"bundleId": bundle_id, "transactionId": tx.transaction_id},
                    ),
                )
            return list(found.values())[:MAX_RESULTS]
        transient_errors = [e for e in unopened if e.kind is Kind.TRANSIENT]
        if transient_errors:  # a tenant's key could not be opened: the order may be its
            raise transient_errors[0]
        return []


def _ask(call: Callable[[], T], refused: list[StoreAuthError]) -> T | None:
    """One app's answer; None when its API refused our credentials (kept in ``refused``) or
    does not know the order (``_NOT_HERE``): the caller asks the next app."""
    try:
        return call()
    except StoreAuthError as err:
        refused.append(err)
        return None
    except StoreApiError as err:
        if err.kind in _NOT_HERE:
            return None
        raise


def _purchase_id(value: str, store: str) -> str:
    """A purchase id from a store's answer; one we could never key by is a bad answer."""
    try:
        return check_purchase_id(value)
    except RefundGuardError:
        raise transient(
            "store_bad_answer", f"the {store} API answered a purchase id refundguard cannot use"
        ) from None


def lookup(
    order_id: str,
    *,
    entitlements: EntitlementStore,
    finder: OrderFinder,
    actor: str,
    now_ms: int,
    visible: Callable[[str], bool] = lambda _: True,
    app_tenant: Callable[[Found], str] = lambda _: DEFAULT_TENANT,
    asks: Callable[[str], bool] = lambda _: True,
) -> dict[str, Any]:
    """The ``/orders/{order_id}`` answer, or NOT_FOUND; TRANSIENT when a store cannot answer.
    Only the entitlements of tenants ``visible`` to the caller are shown; an order whose every one
    is another tenant's is NOT_FOUND, and its store is not asked; a purchase the store names in an
    app (``app_tenant``) of a tenant the caller may not see is neither linked nor shown (nothing
    is written); one it may see, never seen before, becomes that tenant's. Registered tenants'
    stores are asked only for the tenants ``asks`` names (the caller's)."""
    found_here = entitlements.find_by_order(order_id, limit=MAX_RESULTS)
    known = [e for e in found_here if visible(e.tenant)]
    if found_here and not known:
        raise not_found(
            "order_not_found", f"order {order_id} is not known here", store=store_of(order_id).value
        )
    if known:
        return {
            "order_id": order_id,
            "store": known[0].store.value,
            "found_by": "firestore",
            "results": [entitlement_view(entitlements, e) for e in known],
        }
    guess = store_of(order_id)
    if not finder.enabled(guess):
        raise not_found(
            "order_not_found",
            f"no entitlement has seen order {order_id}, and the {guess.value} store's API is "
            "off here, so it was not asked",
            store=guess.value,
        )
    found = finder.find(order_id, guess, asks=asks)
    if not found:
        raise not_found(
            "order_not_found",
            f"order {order_id} is not in Firestore and {finder.via(guess)} does not know it",
            store=guess.value,
        )
    results = []
    for item in found:
        tenant = app_tenant(item)
        if not visible(tenant):
            continue
        try:
            event = link_event(order_id, item, actor=actor, via=finder.via(guess), now_ms=now_ms)
        except RefundGuardError:  # the store's text cannot be stored: link the ids alone
            bare = replace(item, product_id=None, user_id=None, details={"api": "not storable"})
            event = link_event(order_id, bare, actor=actor, via=finder.via(guess), now_ms=now_ms)
        applied = entitlements.apply(replace(event, tenant=tenant))
        assert applied.entitlement is not None
        if visible(applied.entitlement.tenant):
            results.append(entitlement_view(entitlements, applied.entitlement))
    if not results:
        raise not_found("order_not_found", f"order {order_id} is not known here", store=guess.value)
    return {"order_id": order_id, "store": guess.value, "found_by": "store_api", "results": results}
