"""The pure decision, exhaustively: no Firestore needed for the rules themselves."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard.errors import RefundGuardError
from refundguard.ledger import MAX_CLOCK_SKEW_MS, decide
from refundguard.model import (
    MAX_TEXT_CHARS,
    PRODUCTION,
    Effect,
    Entitlement,
    HistoryEntry,
    LedgerEvent,
    Source,
    Status,
    StoreName,
    document_id,
    history_id,
    parse_namespace,
)

TOKEN = "tok.ABC-def_123"


def event(
    event_id: str,
    time_ms: int,
    effect: Status | None,
    *,
    source: Source = Source.GOOGLE,
    type_: str | None = None,
    **kw: object,
) -> LedgerEvent:
    return LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id=TOKEN,
        event_id=event_id,
        source=source,
        type=type_ or (effect.value if effect else "INFO"),
        event_time_ms=time_ms,
        effect=effect,
        **kw,
    )  # type: ignore[arg-type]


def fold(events: Iterable[LedgerEvent]) -> tuple[Entitlement | None, list[HistoryEntry]]:
    """Apply events one by one as the store does: the entitlement plus the set of seen ids."""
    current: Entitlement | None = None
    seen: set[str] = set()
    history: list[HistoryEntry] = []
    for now, ev in enumerate(events, start=10_000):
        decision = decide(current, ev, already_seen=ev.history_id in seen, now_ms=now)
        if decision.writes:
            assert decision.history is not None
            current = decision.entitlement
            seen.add(ev.history_id)
            history.append(decision.history)
        else:
            assert decision.effect is Effect.DUPLICATE
            assert decision.entitlement == current  # nothing changes
    return current, history


PURCHASE = event("m-purchase", 1_000, Status.ACTIVE, type_="ONE_TIME_PRODUCT_PURCHASED")
VOID = event("m-void", 2_000, Status.REVOKED, type_="VOIDED_PURCHASE")


def test_first_event_creates_the_entitlement() -> None:
    ent, history = fold([PURCHASE])
    assert ent is not None and ent.status is Status.ACTIVE
    assert ent.last_event_time_ms == 1_000 and ent.last_event_id == "m-purchase"
    assert [h.effect for h in history] == [Effect.APPLIED]
    assert history[0].status_before is None and history[0].status_after is Status.ACTIVE


def test_same_event_id_twice_changes_nothing_and_writes_nothing() -> None:
    ent, history = fold([VOID, VOID, VOID])
    assert ent is not None and ent.status is Status.REVOKED
    assert len(history) == 1 and ent.history_count == 1


@pytest.mark.parametrize("order", list(itertools.permutations([PURCHASE, VOID, VOID, PURCHASE])))
def test_every_ordering_of_purchase_and_void_ends_revoked(order: tuple[LedgerEvent, ...]) -> None:
    ent, history = fold(order)
    assert ent is not None and ent.status is Status.REVOKED
    assert len(history) == 2  # duplicates never add an entry


def test_refund_for_unknown_purchase_is_a_tombstone_that_a_late_purchase_cannot_lift() -> None:
    ent, history = fold([VOID, PURCHASE])
    assert ent is not None and ent.status is Status.REVOKED
    assert [h.effect for h in history] == [Effect.APPLIED, Effect.STALE]
    assert history[1].status_before is Status.REVOKED and history[1].status_after is Status.REVOKED


def test_stale_event_is_recorded_but_changes_nothing() -> None:
    renewed = event("m-renew", 3_000, Status.ACTIVE)
    expired_late = event("m-exp", 2_500, Status.EXPIRED)
    ent, history = fold([renewed, expired_late])
    assert ent is not None and ent.status is Status.ACTIVE and ent.last_event_id == "m-renew"
    assert history[-1].effect is Effect.STALE


def test_informational_event_never_blocks_an_older_revocation() -> None:
    info = event("m-info", 5_000, None, type_="SUBSCRIPTION_CANCELED")
    ent, history = fold([PURCHASE, info, VOID])  # the void (t=2000) arrives after the info (t=5000)
    assert ent is not None and ent.status is Status.REVOKED
    assert [h.effect for h in history] == [Effect.APPLIED, Effect.RECORDED, Effect.APPLIED]


def test_informational_event_on_unknown_purchase_creates_unknown_status() -> None:
    ent, history = fold([event("m-info", 5_000, None)])
    assert ent is not None and ent.status is Status.UNKNOWN and not ent.status.grants_access
    assert history[0].effect is Effect.RECORDED


def test_admin_regrant_wins_over_store_events_older_than_itself() -> None:
    regrant = event(
        "a-1",
        3_000,
        Status.ACTIVE,
        source=Source.ADMIN,
        type_="ADMIN_REGRANT",
        actor="ops@example.com",
        reason="customer paid by bank transfer",
    )
    replayed_void = event("m-void-redelivered-under-new-id", 2_000, Status.REVOKED)
    ent, history = fold([PURCHASE, VOID, regrant, VOID, replayed_void])
    assert ent is not None and ent.status is Status.ACTIVE
    assert [h.effect for h in history] == [
        Effect.APPLIED,
        Effect.APPLIED,
        Effect.APPLIED,
        Effect.STALE,
    ]
    assert history[2].actor == "ops@example.com" and history[2].reason


def test_newer_store_refund_after_regrant_revokes_again() -> None:
    regrant = event("a-1", 3_000, Status.ACTIVE, source=Source.ADMIN)
    new_refund = event("m-void-2", 4_000, Status.REVOKED)
    ent, _ = fold([VOID, regrant, new_refund])
    assert ent is not None and ent.status is Status.REVOKED and ent.last_source is Source.GOOGLE


@pytest.mark.parametrize("first_is_grant", [True, False])
def test_equal_times_resolve_to_the_more_restrictive_status_in_either_order(
    first_is_grant: bool,
) -> None:
    grant = event("m-a", 2_000, Status.ACTIVE)
    void = event("m-b", 2_000, Status.REVOKED)
    ent, _ = fold([grant, void] if first_is_grant else [void, grant])
    assert ent is not None and ent.status is Status.REVOKED


@pytest.mark.parametrize("admin_first", [True, False])
def test_admin_wins_a_tie_with_a_store_event(admin_first: bool) -> None:
    admin = event("a-1", 2_000, Status.ACTIVE, source=Source.ADMIN)
    void = event("m-b", 2_000, Status.REVOKED)
    ent, _ = fold([admin, void] if admin_first else [void, admin])
    assert ent is not None and ent.status is Status.ACTIVE


def test_product_and_user_are_filled_and_never_erased() -> None:
    ent, _ = fold(
        [
            event("m1", 1, Status.ACTIVE, product_id="course.a", user_id="u-1"),
            event("m2", 2, Status.REVOKED),
        ]
    )
    assert ent is not None and ent.product_id == "course.a" and ent.user_id == "u-1"


def test_namespaces_keep_stores_and_environments_apart() -> None:
    ids = {
        document_id(StoreName.GOOGLE, "123"),
        document_id(StoreName.APPLE, "123"),
        document_id(StoreName.APPLE, "123", "Sandbox"),
    }
    assert ids == {"google:123", "apple:123", "apple-sandbox:123"}
    assert parse_namespace("apple-sandbox") == (StoreName.APPLE, "Sandbox")
    assert parse_namespace("google") == (StoreName.GOOGLE, PRODUCTION)
    for bad in ("amazon", "google-sandbox", "", "apple-"):
        with pytest.raises(RefundGuardError) as info:
            parse_namespace(bad)
        assert info.value.http_status == 400


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 1025, "tok en", "tok\n", "é"])
def test_purchase_ids_that_cannot_be_keys_are_rejected(bad: str) -> None:
    with pytest.raises(RefundGuardError) as info:
        event(
            "m1",
            1,
            Status.ACTIVE,
        ).__class__(
            store=StoreName.GOOGLE,
            purchase_id=bad,
            event_id="m1",
            source=Source.GOOGLE,
            type="X",
            event_time_ms=1,
            effect=Status.ACTIVE,
        )
    assert info.value.code == "bad_purchase_id"


def test_history_ids_are_safe_document_ids() -> None:
    assert history_id(Source.GOOGLE, "136969346945") == "google:136969346945"
    weird = history_id(Source.ADMIN, "a/b" * 300)
    assert "/" not in weird and len(weird) < 100


_EFFECTS = [Status.ACTIVE, Status.REVOKED, Status.EXPIRED, Status.ON_HOLD, Status.PAUSED, None]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    specs=st.lists(st.tuples(st.integers(1, 6), st.sampled_from(_EFFECTS)), min_size=1, max_size=6),
    data=st.data(),
)
def test_final_state_does_not_depend_on_arrival_order(specs: list, data: st.DataObject) -> None:
    """Any set of events, delivered in any order with any redeliveries, ends in the same state:
    that of the newest state-setting event (ties: the most restrictive)."""
    events = [event(f"m{i}", t, eff) for i, (t, eff) in enumerate(specs)]
    reference, _ = fold(events)
    shuffled = data.draw(st.permutations(events))
    redelivered = shuffled + data.draw(st.lists(st.sampled_from(events), max_size=4))
    other, history = fold(redelivered)
    assert reference is not None and other is not None
    assert other.status == reference.status
    assert len(history) == len(events)


# ------------------------------------------------------------------------------- clock errors

DAY_MS = 86_400_000


def test_a_future_dated_event_is_ordered_at_its_receipt_and_cannot_freeze_access() -> None:
    now = 1_700_000_000_000
    future_grant = event("m-future", now + DAY_MS, Status.ACTIVE)
    granted = decide(None, future_grant, already_seen=False, now_ms=now)
    assert granted.effect is Effect.APPLIED and granted.entitlement is not None
    assert granted.entitlement.last_event_time_ms == now  # clamped to when it was received
    assert granted.history is not None and granted.history.event_time_ms == now
    assert granted.history.details["stated_event_time_ms"] == now + DAY_MS
    refund = event("m-refund", now + 60_000, Status.REVOKED)
    revoked = decide(granted.entitlement, refund, already_seen=False, now_ms=now + 61_000)
    assert revoked.effect is Effect.APPLIED
    assert revoked.entitlement is not None and revoked.entitlement.status is Status.REVOKED


def test_an_event_within_the_clock_skew_keeps_its_own_time() -> None:
    now = 1_700_000_000_000
    within = event("m-soon", now + MAX_CLOCK_SKEW_MS, Status.ACTIVE)
    decision = decide(None, within, already_seen=False, now_ms=now)
    assert (
        decision.history is not None and decision.history.event_time_ms == now + MAX_CLOCK_SKEW_MS
    )
    assert "stated_event_time_ms" not in decision.history.details


@given(
    ahead_ms=st.integers(MAX_CLOCK_SKEW_MS + 1, 10**14 - 1_700_000_000_000),
    later_ms=st.integers(1, DAY_MS),
    effect=st.sampled_from([Status.ACTIVE, Status.EXPIRED, Status.ON_HOLD, Status.PAUSED]),
)
def test_no_future_dated_event_outranks_a_later_refund(
    ahead_ms: int, later_ms: int, effect: Status
) -> None:
    now = 1_700_000_000_000
    first = decide(None, event("m-1", now + ahead_ms, effect), already_seen=False, now_ms=now)
    refund = event("m-2", now + later_ms, Status.REVOKED)
    after = decide(first.entitlement, refund, already_seen=False, now_ms=now + later_ms)
    assert after.entitlement is not None and after.entitlement.status is Status.REVOKED


@pytest.mark.parametrize("action", [Status.REVOKED, Status.ACTIVE])
def test_an_admin_action_takes_effect_even_over_a_state_dated_in_the_future(action: Status) -> None:
    """An entitlement frozen by a future-dated event written before the clamp existed."""
    now = 1_700_000_000_000
    frozen = Entitlement(
        store=StoreName.GOOGLE,
        purchase_id=TOKEN,
        environment=PRODUCTION,
        status=Status.PAUSED,
        last_event_time_ms=now + 365 * DAY_MS,
        last_source=Source.GOOGLE,
    )
    admin = event("a-1", now, action, source=Source.ADMIN, actor="ops@example.com", reason="fix")
    decision = decide(frozen, admin, already_seen=False, now_ms=now)
    assert decision.effect is Effect.APPLIED and decision.entitlement is not None
    assert decision.entitlement.status is action and decision.entitlement.last_event_time_ms == now
    newer_store = event("m-new", now + 1, Status.EXPIRED)
    after = decide(decision.entitlement, newer_store, already_seen=False, now_ms=now + 1)
    assert after.effect is Effect.APPLIED  # the stores stay the arbiters of what comes later


def test_an_admin_action_takes_effect_over_a_newer_store_event_within_the_skew() -> None:
    now = 1_700_000_000_000
    refund = event("m-1", now + 1_000, Status.REVOKED)
    store_first = decide(None, refund, already_seen=False, now_ms=now)
    admin = event("a-1", now, Status.ACTIVE, source=Source.ADMIN)
    after = decide(store_first.entitlement, admin, already_seen=False, now_ms=now)
    assert after.effect is Effect.APPLIED and after.entitlement is not None
    assert after.entitlement.status is Status.ACTIVE


# ------------------------------------------------------------------------------- storable events

_UNSTORABLE_TEXT = st.one_of(
    st.text(min_size=1).map(lambda t: t + "\ud800"),  # a lone surrogate
    st.text(min_size=MAX_TEXT_CHARS + 1, max_size=MAX_TEXT_CHARS + 50, alphabet="ab"),
)


@given(bad=_UNSTORABLE_TEXT, field=st.sampled_from(["event_id", "type", "product_id", "reason"]))
def test_text_firestore_cannot_store_is_refused(bad: str, field: str) -> None:
    fields = {"type_": bad} if field == "type" else {field: bad}
    event_id = fields.pop("event_id", "m-1")
    with pytest.raises(RefundGuardError) as info:
        event(event_id, 1_000, Status.ACTIVE, **fields)
    assert info.value.code == "unstorable_event"


@given(
    value=st.one_of(
        st.integers(min_value=2**63),
        st.integers(max_value=-(2**63) - 1),
        st.sampled_from([float("nan"), float("inf"), float("-inf")]),
        st.lists(st.integers(), min_size=1),
        st.dictionaries(st.text(), st.integers(), min_size=1),
        _UNSTORABLE_TEXT,
    )
)
def test_details_firestore_cannot_store_are_refused(value: object) -> None:
    with pytest.raises(RefundGuardError) as info:
        event("m-1", 1_000, Status.ACTIVE, details={"orderId": value})
    assert info.value.code == "unstorable_event"


@given(time_ms=st.one_of(st.integers(max_value=0), st.integers(min_value=10**14 + 1)))
def test_event_times_that_are_not_times_are_refused(time_ms: int) -> None:
    with pytest.raises(RefundGuardError):
        event("m-1", time_ms, Status.ACTIVE)


# ------------------------------------------------------------------------------- orders


def test_order_ids_are_collected_and_the_applied_ones_name_the_current_order() -> None:
    purchase = event("m1", 1_000, Status.ACTIVE, order_id="GPA.1", purchase_time_ms=900)
    renewal = event("m2", 2_000, Status.ACTIVE, order_id="GPA.1..0")
    old_void = event("m3", 1_500, Status.REVOKED, order_id="GPA.1")  # stale: older than renewal
    info = event("m4", 2_500, None, order_id="GPA.1..1")
    ent, history = fold([purchase, renewal, old_void, info])
    assert ent is not None
    assert ent.order_ids == ("GPA.1", "GPA.1..0", "GPA.1..1")
    assert ent.order_id == "GPA.1..0"  # the newest applied event's order
    assert ent.purchase_time_ms == 900
    assert [h.effect for h in history] == [
        Effect.APPLIED,
        Effect.APPLIED,
        Effect.STALE,
        Effect.RECORDED,
    ]


def test_order_ids_keep_the_newest_hundred() -> None:
    events = [event(f"m{i}", 1_000 + i, Status.ACTIVE, order_id=f"GPA.{i}") for i in range(130)]
    ent, _ = fold(events)
    assert ent is not None and len(ent.order_ids) == 100
    assert ent.order_ids[0] == "GPA.30" and ent.order_ids[-1] == "GPA.129"
