"""What the Play Developer API says of an RTDN's or a void's event, combined with it (``verify``
decides what each answer means): ``consult`` for an event, ``judge_void`` for a voided-purchase row
(a notification's or the reconciler's), ``keyed`` for a refund review that names only an order.
Deadlines: a revocation never waits long for the API; a grant may."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import logs
from ..errors import Kind, RefundGuardError, rejected, transient
from ..model import LedgerEvent
from ..storeapi import StoreApiError, StoreAuthError, StoreNotFoundError
from . import rtdn, verify
from .api import MAX_BATCH, PlayApiClient

if TYPE_CHECKING:
    from .resources import Order

#: A revocation never waits long for the API: it is applied, judged or not, within this time.
REVOCATION_API_DEADLINE_S = 5.0
#: A purchase may wait longer: without the API's word it is not granted (503, Pub/Sub retries).
GRANT_API_DEADLINE_S = 15.0
#: The API's "not found" answers, the same on every retry.
_UNKNOWN_TO_THE_API = (Kind.NOT_FOUND, Kind.REJECTED)
_VOIDED = "voidedPurchaseNotification"
#: A batch Google refuses (an unknown order) is asked again in halves while this large or more.
MIN_SPLIT = 16


@dataclass(frozen=True)
class Consulted:
    """The event to apply, and the API's permission problem to raise an alarm about, if any."""

    event: LedgerEvent
    alarm: str | None = None


def permission_error(err: StoreAuthError) -> RefundGuardError:
    """The Play API refused our credentials: ours to fix, never the sender's; 503 keeps the
    notification coming back (nothing is lost) and the ERROR line names the fix."""
    return transient("play_api_permission", err.message, **err.details)


def consult(api: PlayApiClient, package: str, kind: str, event: LedgerEvent) -> Consulted:
    """Ask the Play API what ``event`` needs (``verify.check_for``) and combine its answer.

    A grant it cannot verify now raises TRANSIENT (503: nothing written, Pub/Sub retries); a
    purchase it does not know is recorded, not granted. A revocation is applied whatever happens:
    a failure leaves it unjudged or unenriched (and a permission failure raises the alarm)."""
    check = verify.check_for(kind, event)
    if check is verify.Check.NONE:
        return Consulted(event)
    logs.bind(api_check=check.value)
    deadline = GRANT_API_DEADLINE_S if check.grants else REVOCATION_API_DEADLINE_S
    try:
        if check.subscription:
            answer = api.get_subscription(package, event.purchase_id, deadline_s=deadline)
        else:
            answer = api.get_product_purchase(package, event.purchase_id, deadline_s=deadline)
    except StoreApiError as err:
        logs.bind(api_error=err.code)
        if check.grants:
            if isinstance(err, StoreAuthError):
                raise permission_error(err) from err
            if err.kind in _UNKNOWN_TO_THE_API:
                return Consulted(verify.not_verified(event, err))
            raise
        alarm = err.message if isinstance(err, StoreAuthError) else None
        unjudged = check is verify.Check.SUBSCRIPTION_VOID
        fallback = verify.unjudged_void if unjudged else verify.not_enriched
        return Consulted(fallback(event, err), alarm)
    return Consulted(_COMBINE[check](event, answer))


_COMBINE: dict[verify.Check, Callable[[LedgerEvent, Any], LedgerEvent]] = {
    verify.Check.PRODUCT_GRANT: verify.product_grant,
    verify.Check.SUBSCRIPTION_GRANT: verify.subscription_grant,
    verify.Check.SUBSCRIPTION_VOID: verify.subscription_void,
    verify.Check.PRODUCT_ENRICH: verify.enriched,
    verify.Check.SUBSCRIPTION_ENRICH: verify.enriched,
}


def judge_void(api: PlayApiClient, package: str, event: LedgerEvent) -> LedgerEvent:
    """The same judgement as a voided-purchase notification, for a row of ``voidedpurchases``.
    A row does not say whether it voided a subscription: a renewal order does, else
    subscriptionsv2 is asked (a token it does not know is a one-time purchase's)."""
    if event.effect is None:
        return event  # a partial refund: recorded, nothing to judge
    if "productType" in event.details:
        return consult(api, package, _VOIDED, event).event
    try:
        sub = api.get_subscription(package, event.purchase_id, deadline_s=REVOCATION_API_DEADLINE_S)
    except StoreApiError as err:
        if err.kind in _UNKNOWN_TO_THE_API:
            return consult(api, package, _VOIDED, _typed(event, "one_time")).event
        return verify.unjudged_void(event, err)
    return verify.subscription_void(_typed(event, "subscription"), sub)


class VoidJudge:
    """Judges a page of voids at about one Play API call each: ``prepare`` asks
    ``orders.batchGet`` once per 1,000 orders what each bought; then a one-time void is judged by
    its order alone (no call), a subscription void by ``subscriptionsv2`` (one call). Google fails
    a whole batch when one order is unknown to it: the batch is asked again in halves down to
    ``MIN_SPLIT`` orders; a void whose order no batch answered is judged alone (``judge_void``:
    one or two calls)."""

    def __init__(self, api: PlayApiClient, package: str) -> None:
        self.api, self.package = api, package
        self.orders: dict[str, Order] = {}

    def prepare(self, events: Sequence[LedgerEvent]) -> None:
        """What the orders of ``events`` bought, for those that need judging."""
        wanted = [
            e.order_id
            for e in events
            if e.effect is not None and e.order_id and "productType" not in e.details
        ]
        ids = list(dict.fromkeys(wanted))
        for start in range(0, len(ids), MAX_BATCH):
            self._batch(ids[start : start + MAX_BATCH])

    def _batch(self, ids: list[str]) -> None:
        """One ``orders.batchGet``. Google fails the whole batch (404) when one order is unknown
        to it: a batch of ``MIN_SPLIT`` or more is then asked again in halves, so that one
        unknown order costs a few more batches, not a call or two for every void of the page."""
        try:
            found = self.api.batch_get_orders(self.package, ids, deadline_s=GRANT_API_DEADLINE_S)
        except StoreNotFoundError:
            if len(ids) >= MIN_SPLIT:
                half = len(ids) // 2
                self._batch(ids[:half])
                self._batch(ids[half:])
                return
            logs.warning(
                "orders.batchGet: an order is unknown to Google; these voids are judged alone",
                package=self.package,
                orders=len(ids),
            )
            return
        except StoreApiError as err:
            logs.warning(
                "orders.batchGet failed: each void of this batch is judged alone",
                package=self.package,
                error=err.code,
            )
            return
        self.orders.update((order.order_id, order) for order in found)

    def __call__(self, event: LedgerEvent) -> LedgerEvent:
        order = self.orders.get(event.order_id or "")
        if event.effect is None or order is None or "productType" in event.details:
            return judge_void(self.api, self.package, event)
        kind = verify.order_kind(order)
        if kind in ("one_time", "paid_app"):
            return verify.order_void(event, order)
        if kind == "subscription":
            return consult(self.api, self.package, _VOIDED, _typed(event, "subscription")).event
        return judge_void(self.api, self.package, event)


def _typed(event: LedgerEvent, product_type: str) -> LedgerEvent:
    return replace(event, details={**event.details, "productType": product_type})


def keyed(
    notification: rtdn.PlayNotification,
    message_id: str,
    *,
    known_token: Callable[[str], str | None],
    api: PlayApiClient | None,
) -> LedgerEvent:
    """A refund review naming only an order: its purchase token from what we hold
    (``known_token``: an order seen before), else from the Play API's orders.get; REJECTED
    (quarantined) when neither knows it."""
    unkeyed = notification.unkeyed
    assert unkeyed is not None
    token = known_token(unkeyed.order_id)
    if token is None and api is not None:
        try:
            token = api.get_order(notification.package_name, unkeyed.order_id).purchase_token
        except StoreAuthError as err:
            raise permission_error(err) from err
        except StoreApiError as err:
            if err.kind not in _UNKNOWN_TO_THE_API:
                raise
    if token is None:
        raise rejected(
            "unknown_order",
            "the refund review names an order that neither Firestore nor the Play API knows",
            message_id=message_id,
        )
    try:
        return rtdn.keyed(unkeyed, token)
    except RefundGuardError as err:
        raise rejected(err.code, err.message, message_id=message_id) from None
