"""The one serializer: model <-> Firestore fields <-> admin JSON, derived from the dataclasses."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from refundguard.ledger import decide
from refundguard.model import (
    Effect,
    Entitlement,
    HistoryEntry,
    LedgerEvent,
    Source,
    Status,
    StoreName,
)
from refundguard.serializer import load, ms_to_iso, to_firestore, to_json

T0 = 1_764_139_800_123  # 2025-11-26T06:50:00.123Z


def sample() -> tuple[Entitlement, HistoryEntry]:
    purchase = LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id="tok-1",
        event_id="m-1",
        source=Source.GOOGLE,
        type="ONE_TIME_PRODUCT_PURCHASED",
        event_time_ms=T0,
        effect=Status.ACTIVE,
        product_id="course.a",
        order_id="GPA.1",
        purchase_time_ms=T0 - 1_000,
        details={"orderId": "GPA.1", "voidedQuantity": 2},
    )
    first = decide(None, purchase, already_seen=False, now_ms=T0 + 5)
    assert first.entitlement is not None and first.entitlement.order_ids == ("GPA.1",)
    assert first.entitlement is not None and first.history is not None
    return first.entitlement, first.history


def test_round_trips_through_firestore_fields_and_json() -> None:
    ent, entry = sample()
    assert load(Entitlement, to_firestore(ent)) == ent
    assert load(HistoryEntry, to_firestore(entry)) == entry
    assert load(Entitlement, json.loads(json.dumps(to_json(ent)))) == ent
    assert load(HistoryEntry, json.loads(json.dumps(to_json(entry)))) == entry


def test_every_field_is_written_enums_as_values() -> None:
    ent, entry = sample()
    for record in (ent, entry):
        names = {f.name for f in dataclasses.fields(record)}
        assert names <= set(to_firestore(record)) and names <= set(to_json(record))
    fields = to_firestore(ent)
    assert fields["order_ids"] == ["GPA.1"]  # a Firestore array, read back as a tuple
    assert fields["store"] == "google" and type(fields["store"]) is str
    assert fields["status"] == "active" and fields["last_source"] == "google"
    history = to_firestore(entry)
    assert history["effect"] == "applied" and history["status_before"] is None
    assert history["details"] == {"orderId": "GPA.1", "voidedQuantity": 2}


def test_ms_fields_keep_their_int_and_get_an_at_sibling() -> None:
    ent, entry = sample()
    moment = datetime(2025, 11, 26, 6, 50, 0, 123_000, tzinfo=UTC)
    fields = to_firestore(ent)
    assert fields["last_event_time_ms"] == T0 and fields["last_event_time_at"] == moment
    assert (
        fields["created_at"]
        == fields["updated_at"]
        == datetime.fromtimestamp((T0 + 5) / 1000, tz=UTC)
    )
    history = to_firestore(entry)
    assert history["event_time_ms"] == T0 and history["event_time_at"] == moment
    assert history["received_ms"] == T0 + 5 and "received_at" in history

    body = to_json(entry)
    assert body["event_time_at"] == "2025-11-26T06:50:00.123Z"
    assert body["received_at"] == "2025-11-26T06:50:00.128Z"
    assert to_json(ent)["last_event_time_at"] == "2025-11-26T06:50:00.123Z"


def test_a_missing_ms_value_has_a_null_sibling() -> None:
    ent = Entitlement(StoreName.APPLE, "2000", "Sandbox", Status.UNKNOWN)
    assert ent.last_event_time_ms is None
    assert to_firestore(ent)["last_event_time_at"] is None
    assert to_json(ent)["last_event_time_at"] is None


def test_entitlement_json_says_access_after_status() -> None:
    ent, entry = sample()
    body = to_json(ent)
    names = list(body)
    assert body["access"] is True and names[names.index("status") + 1] == "access"
    assert to_json(dataclasses.replace(ent, status=Status.REVOKED))["access"] is False
    assert "access" not in to_firestore(ent) and "access" not in to_json(entry)


def test_reading_ignores_siblings_and_unknown_fields_and_fills_defaults() -> None:
    ent, _ = sample()
    stored = {**to_firestore(ent), "a_field_of_tomorrow": 1, "updated_at": "garbage"}
    assert load(Entitlement, stored) == ent
    minimal = {
        "store": "apple",
        "purchase_id": "2000",
        "environment": "Sandbox",
        "status": "revoked",
    }
    old = load(Entitlement, minimal)
    assert old.status is Status.REVOKED and old.history_count == 0 and old.last_source is None
    assert load(Entitlement, {**minimal, "created_ms": None}).created_ms == 0
    entry = load(
        HistoryEntry,
        {
            "event_id": "m",
            "source": "admin",
            "type": "ADMIN_REVOKE",
            "event_time_ms": 1,
            "received_ms": 2,
            "effect": "stale",
            "status_before": "active",
            "status_after": "active",
            "event_time": datetime.now(tz=UTC),  # the name used before the _at rule
        },
    )
    assert entry.effect is Effect.STALE and entry.details == {} and entry.actor is None


def test_a_missing_required_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="status"):
        load(Entitlement, {"store": "google", "purchase_id": "x", "environment": "Production"})


def test_iso_is_utc_with_milliseconds_and_z() -> None:
    assert ms_to_iso(0) == "1970-01-01T00:00:00.000Z"
    assert ms_to_iso(1_000_000_000_001) == "2001-09-09T01:46:40.001Z"
    with pytest.raises(OverflowError):
        ms_to_iso(10**15)  # beyond year 9999: Firestore has no timestamp for it either
