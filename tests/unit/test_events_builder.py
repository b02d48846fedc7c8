"""The access-event builder, pure (refundguard/events.py): which history entries send an event,
the stable id, the CloudEvent and its Pub/Sub message; and, property-based over any sequence of
events through the ledger, that the events a platform receives chain exactly: each one's
``previous_status`` is the status the one before set, versions strictly increase, the last one is
the entitlement's status."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard import events
from refundguard.ledger import decide
from refundguard.model import (
    Effect,
    Entitlement,
    HistoryEntry,
    LedgerEvent,
    Source,
    Status,
    StoreName,
    history_id,
)

SOURCE = "//refundguard/projects/demo"
NOW = 1_800_000_000_000


def entry(effect: Effect, before: Status | None, after: Status, **kw: Any) -> HistoryEntry:
    fields: dict[str, Any] = {
        "event_id": "m-1",
        "source": Source.GOOGLE,
        "type": "VOIDED_PURCHASE",
        "event_time_ms": 1_700_000_000_000,
        "received_ms": 1_700_000_000_250,
        "effect": effect,
        "status_before": before,
        "status_after": after,
    }
    fields.update(kw)
    return HistoryEntry(**fields)


def entitlement(status: Status, version: int = 3, **kw: Any) -> Entitlement:
    return Entitlement(
        store=StoreName.GOOGLE,
        purchase_id="tok-1",
        environment="Production",
        status=status,
        product_id="course.premium",
        order_id="GPA.1",
        history_count=version,
        **kw,
    )


def test_what_sends_an_event() -> None:
    A, R, U = Status.ACTIVE, Status.REVOKED, Status.UNKNOWN
    assert events.sends(entry(Effect.APPLIED, A, R))  # a refund
    assert events.sends(entry(Effect.APPLIED, R, A))  # a re-grant
    assert events.sends(entry(Effect.APPLIED, None, A))  # a first grant, never seen before
    assert events.sends(entry(Effect.APPLIED, U, A))  # a first grant after informational events
    assert events.sends(entry(Effect.APPLIED, None, R))  # a refund tombstone
    assert events.sends(entry(Effect.APPLIED, Status.ON_HOLD, Status.EXPIRED))  # status, not access
    assert not events.sends(entry(Effect.APPLIED, A, A))  # a renewal
    assert not events.sends(entry(Effect.RECORDED, None, U))
    assert not events.sends(entry(Effect.RECORDED, A, A))
    assert not events.sends(entry(Effect.STALE, R, R))


def test_the_cloudevent_and_its_message() -> None:
    history = entry(Effect.APPLIED, Status.ACTIVE, Status.REVOKED)
    built = events.access_event(entitlement(Status.REVOKED), history, source=SOURCE)
    assert built is not None
    event = json.loads(built.data)
    assert event == events.cloudevent(entitlement(Status.REVOKED), history, source=SOURCE)
    assert set(event) == {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "tenant",
        "data",
    }
    assert (event["specversion"], event["type"]) == ("1.0", "com.refundguard.entitlement.access.v1")
    assert event["subject"] == "google:tok-1" == built.entitlement == built.ordering_key
    assert event["time"] == "2023-11-14T22:13:20.250Z"
    assert re.fullmatch(r"[0-9a-f]{32}", event["id"]) and event["id"] == built.event_id
    assert event["data"] == {
        "entitlement_id": "google:tok-1",
        "tenant": "default",
        "store": "google",
        "environment": "Production",
        "purchase_id": "tok-1",
        "status": "revoked",
        "access": False,
        "previous_status": "active",
        "previous_access": True,
        "product_id": "course.premium",
        "user_id": None,
        "order_id": "GPA.1",
        "version": 3,
        "cause": {
            "source": "google",
            "type": "VOIDED_PURCHASE",
            "event_id": "m-1",
            "event_time": "2023-11-14T22:13:20.000Z",
            "actor": None,
            "reason": None,
        },
    }
    message = events.pubsub_message(built)
    assert message["attributes"] == {
        "tenant": "default",
        "store": "google",
        "environment": "Production",
        "status": "revoked",
        "access": "false",
    }
    assert message["orderingKey"] == "google:tok-1"
    assert (
        events.access_event(
            entitlement(Status.ACTIVE), entry(Effect.STALE, None, Status.ACTIVE), source=SOURCE
        )
        is None
    )


def test_the_id_is_the_change_and_nothing_else() -> None:
    one = events.event_id("google:tok-1", "google:m-1")
    assert one == events.event_id("google:tok-1", "google:m-1")
    assert one != events.event_id("google:tok-2", "google:m-1")
    assert one != events.event_id("google:tok-1", "admin:m-1")
    history = entry(Effect.APPLIED, None, Status.ACTIVE)
    later = events.access_event(entitlement(Status.ACTIVE, version=9), history, source="//other")
    assert later is not None and later.event_id == events.event_id(
        "google:tok-1", history_id(Source.GOOGLE, "m-1")
    )


def test_an_entitlement_id_beyond_pubsubs_key_limit_is_hashed() -> None:
    long_id = "google:" + "x" * 1100
    key = events.ordering_key(long_id)
    assert key.startswith("sha256:") and len(key) == 71
    assert events.ordering_key("google:tok-1") == "google:tok-1"


# ------------------------------------------------------------------------------ properties

STATES = [*(s for s in Status if s is not Status.UNKNOWN), None]
event_specs = st.lists(
    st.tuples(
        st.sampled_from(STATES),
        st.integers(min_value=1, max_value=50),
        st.sampled_from([Source.GOOGLE, Source.ADMIN]),
        st.booleans(),  # a redelivery of the previous event
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(event_specs)
def test_the_events_a_platform_receives_chain_exactly(specs: list[Any]) -> None:
    current: Entitlement | None = None
    seen: dict[str, LedgerEvent] = {}
    sent: list[dict[str, Any]] = []
    previous: LedgerEvent | None = None
    for i, (effect, minute, source, redeliver) in enumerate(specs):
        if redeliver and previous is not None:
            ledger_event = previous
        else:
            ledger_event = LedgerEvent(
                store=StoreName.GOOGLE,
                purchase_id="tok-p",
                event_id=f"e-{i}",
                source=source,
                type="ADMIN_REGRANT" if source is Source.ADMIN else "X",
                event_time_ms=1_700_000_000_000 + minute * 60_000,
                effect=effect,
                actor="a@example.com" if source is Source.ADMIN else None,
            )
        decision = decide(
            current, ledger_event, already_seen=ledger_event.event_id in seen, now_ms=NOW + i
        )
        seen[ledger_event.event_id] = ledger_event
        previous = ledger_event
        if decision.history is None:
            continue  # a duplicate writes nothing, sends nothing
        assert decision.entitlement is not None
        built = events.access_event(decision.entitlement, decision.history, source=SOURCE)
        again = events.access_event(decision.entitlement, decision.history, source=SOURCE)
        assert built == again  # deterministic: the same change, the same bytes
        if built is not None:
            sent.append(json.loads(built.data))
        current = decision.entitlement

    ids = [e["id"] for e in sent]
    assert len(ids) == len(set(ids))
    versions = [e["data"]["version"] for e in sent]
    assert versions == sorted(set(versions))
    for before, after in itertools.pairwise(sent):
        assert after["data"]["previous_status"] == before["data"]["status"]
        assert after["data"]["previous_access"] == before["data"]["access"]
    for e in sent:
        assert e["data"]["access"] == (e["data"]["status"] == "active")
        assert e["data"]["status"] != e["data"]["previous_status"]
    assert current is not None
    if sent:
        assert sent[0]["data"]["previous_status"] in (None, "unknown")
        assert sent[-1]["data"]["status"] == current.status.value
    else:
        assert current.status is Status.UNKNOWN
