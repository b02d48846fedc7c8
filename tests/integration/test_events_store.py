"""The outbox against the real Firestore and Pub/Sub emulators: an access change commits its event
in the same batch and publishes it, and the delete of the published entry rides on the next commit;
nothing else sends one; a Pub/Sub cut never fails a change and
loses nothing (a redelivery or the sweep publishes what was left, in version order per entitlement);
events off writes no outbox at all.

RPCs are counted by wrapping the client's generated API object (a private attribute, touched here,
in a test, never by the code under test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from refundguard import events as access_events
from refundguard.config import EventsSettings
from refundguard.errors import Kind, RefundGuardError
from refundguard.model import Effect, LedgerEvent, Source, Status, StoreName
from refundguard.outbox import OUTBOX
from refundguard.publisher import Publisher
from refundguard.store import EntitlementStore, now_ms
from refundguard_dev.rpc_counter import RpcCounter
from refundguard_dev.tcp_proxy import TcpProxy

pytestmark = pytest.mark.emulator

TOKEN = "tok.events-1"
ADMIN_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # an admin action's id (32 hex digits)
#: A store or admin event type that sets each status, as the functions send them (the published
#: schema, checked on every event received, names the types that change access).
GOOGLE_TYPES = {
    Status.ACTIVE: "SUBSCRIPTION_PURCHASED",
    Status.REVOKED: "SUBSCRIPTION_REVOKED",
    Status.EXPIRED: "SUBSCRIPTION_EXPIRED",
    Status.ON_HOLD: "SUBSCRIPTION_ON_HOLD",
    Status.PAUSED: "SUBSCRIPTION_PAUSED",
    Status.CANCELED: "SUBSCRIPTION_PENDING_PURCHASE_CANCELED",
    Status.PENDING: "ONE_TIME_PRODUCT_PURCHASED",
    None: "SUBSCRIPTION_CANCELED",  # informational
}


def event(
    event_id: str,
    time_ms: int,
    effect: Status | None,
    *,
    token: str = TOKEN,
    source: Source = Source.GOOGLE,
    **kw: Any,
) -> LedgerEvent:
    return LedgerEvent(
        store=StoreName.GOOGLE,
        purchase_id=token,
        event_id=event_id,
        source=source,
        type=(
            ("ADMIN_REGRANT" if effect is Status.ACTIVE else "ADMIN_REVOKE")
            if source is Source.ADMIN
            else GOOGLE_TYPES[effect]
        ),
        event_time_ms=time_ms,
        effect=effect,
        product_id="course.premium",
        **kw,
    )


def outbox_ids(store: EntitlementStore) -> list[str]:
    return sorted(e.event_id for e in store.outbox.pending(limit=1000))


@pytest.fixture
def cut_pubsub(
    emulator_env: dict[str, str], platform_events: Any, pubsub_emulator: Any
) -> Iterator[tuple[EntitlementStore, TcpProxy]]:
    """A store with events on whose Pub/Sub is behind a proxy the test can cut."""
    proxy = TcpProxy(pubsub_emulator.host)
    settings = EventsSettings(platform_events.topic, proxy.address)
    store = EntitlementStore(
        firestore.Client(project=emulator_env["GOOGLE_CLOUD_PROJECT"]),
        publisher=Publisher(settings, timeout_s=(1.0, 2.0)),
        function="test",
    )
    try:
        yield store, proxy
    finally:
        proxy.close()


# ------------------------------------------------------------------------------ the hot path


def test_an_access_change_commits_its_event_in_the_same_write_and_publishes_it(
    events_store: EntitlementStore, platform_events: Any
) -> None:
    counter = RpcCounter(events_store._client)
    result = events_store.apply(event("m-1", 1_000, Status.ACTIVE, order_id="GPA.1"))
    # One read (entitlement, history entry, outbox entry), one commit (the change and its
    # event), then the publish: the one extra round trip of events on. The published entry is
    # deleted by the next commit of this instance, whatever it commits.
    assert counter.take() == {"batch_get_documents": 1, "commit": 1}
    assert result.effect is Effect.APPLIED and result.published is True
    assert result.event is not None and outbox_ids(events_store) == [result.event.event_id]
    counter.take()
    assert events_store.apply(event("m-1", 1_000, Status.ACTIVE)).event is None  # not again
    events_store.apply(event("m-2", 1_500, None))  # informational: recorded, nothing sent
    assert counter.take() == {"batch_get_documents": 2, "commit": 1}
    assert outbox_ids(events_store) == []

    [got] = platform_events.received()
    assert got.event["id"] == result.event.event_id
    assert got.ordering_key == f"google:{TOKEN}"
    assert got.attributes == {
        "tenant": "default",
        "store": "google",
        "environment": "Production",
        "status": "active",
        "access": "true",
    }
    assert got.event["type"] == "com.refundguard.entitlement.access.v1"
    assert got.event["subject"] == f"google:{TOKEN}"
    assert got.data["purchase_id"] == TOKEN and got.data["order_id"] == "GPA.1"
    assert (got.data["status"], got.data["access"], got.data["previous_status"]) == (
        "active",
        True,
        None,
    )
    assert got.data["version"] == 1 == result.entitlement.history_count
    assert got.data["cause"]["event_id"] == "m-1"


def test_each_change_of_access_is_one_event_with_a_strictly_increasing_version(
    events_store: EntitlementStore, platform_events: Any
) -> None:
    base = now_ms()
    steps = [
        event("m-1", 1_000, Status.ACTIVE),  # unknown -> active: sends
        event("m-2", 1_500, None),  # informational: recorded, nothing sent
        event("m-3", 2_000, Status.ACTIVE),  # active -> active (renewal): nothing sent
        event("m-4", 3_000, Status.REVOKED),  # refund: sends
        event("m-0", 500, Status.ACTIVE),  # stale: nothing sent
        event("m-4", 3_000, Status.REVOKED),  # duplicate: nothing sent
        event(
            ADMIN_ID, base, Status.ACTIVE, source=Source.ADMIN, actor="a@x.com", reason="goodwill"
        ),
        event("m-5", 4_000, Status.EXPIRED),  # older than the admin action: stale
    ]
    effects = [events_store.apply(step).effect for step in steps]
    assert effects == [
        Effect.APPLIED,
        Effect.RECORDED,
        Effect.APPLIED,
        Effect.APPLIED,
        Effect.STALE,
        Effect.DUPLICATE,
        Effect.APPLIED,
        Effect.STALE,
    ]
    got = platform_events.received()
    assert [(g.data["cause"]["event_id"], g.data["status"], g.data["version"]) for g in got] == [
        ("m-1", "active", 1),
        ("m-4", "revoked", 4),
        (ADMIN_ID, "active", 6),
    ]
    assert len({g.event["id"] for g in got}) == 3
    admin = got[-1].data
    assert admin["previous_status"] == "revoked" and admin["previous_access"] is False
    assert admin["cause"] == {
        "source": "admin",
        "type": "ADMIN_REGRANT",
        "event_id": ADMIN_ID,
        "event_time": admin["cause"]["event_time"],
        "actor": "a@x.com",
        "reason": "goodwill",
    }
    assert outbox_ids(events_store) == []


def test_what_sends_nothing_costs_what_it_cost_without_events(
    events_store: EntitlementStore, platform_events: Any
) -> None:
    events_store.apply(event("m-1", 1_000, Status.ACTIVE))
    platform_events.received()
    counter = RpcCounter(events_store._client)
    events_store.apply(event("m-2", 2_000, Status.ACTIVE))  # renewal
    events_store.apply(event("m-3", 2_500, None))  # informational
    assert counter.take() == {"batch_get_documents": 2, "commit": 2}
    events_store.apply(event("m-3", 2_500, None))  # duplicate
    assert counter.take() == {"batch_get_documents": 1}
    assert platform_events.received(settle_s=0.3) == []


def test_events_off_reads_two_documents_and_writes_no_outbox(store: EntitlementStore) -> None:
    assert not store.events_on
    client = store._client
    original = client.get_all
    read: list[int] = []

    def get_all(refs: Any, *args: Any, **kw: Any) -> Any:
        read.append(len(refs))
        return original(refs, *args, **kw)

    client.get_all = get_all  # type: ignore[method-assign]
    counter = RpcCounter(client)
    result = store.apply(event("m-1", 1_000, Status.REVOKED))
    assert result.event is None and result.published is None
    assert read == [2] and counter.take() == {"batch_get_documents": 1, "commit": 1}
    assert list(client.collection(OUTBOX).stream()) == []


# ------------------------------------------------------------------------------ Pub/Sub cut


def test_pubsub_cut_never_fails_a_change_and_a_redelivery_publishes_its_event(
    cut_pubsub: tuple[EntitlementStore, TcpProxy],
    platform_events: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, proxy = cut_pubsub
    proxy.down()
    refund = event("m-refund", 2_000, Status.REVOKED)
    result = store.apply(refund)
    assert result.effect is Effect.APPLIED and result.published is False
    assert store.get(StoreName.GOOGLE, TOKEN).status is Status.REVOKED  # committed all the same
    assert result.event is not None and outbox_ids(store) == [result.event.event_id]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [warning] = [line for line in lines if line["severity"] == "WARNING"]
    assert warning["message"].startswith("access event not published")
    assert warning["platform_event_id"] == result.event.event_id
    assert TOKEN not in json.dumps(warning)  # the purchase token is never logged

    proxy.up()
    again = store.apply(refund)  # the store redelivers the same notification
    assert again.effect is Effect.DUPLICATE and again.published is True
    assert again.event == result.event
    [got] = platform_events.received()
    assert got.event["id"] == result.event.event_id and got.data["status"] == "revoked"
    assert outbox_ids(store) == []
    assert store.apply(refund).event is None  # published: a later duplicate has nothing to send


def test_pubsub_cut_then_the_sweep_publishes_every_event_in_version_order(
    cut_pubsub: tuple[EntitlementStore, TcpProxy], platform_events: Any
) -> None:
    store, proxy = cut_pubsub
    proxy.down()
    flips = [Status.ACTIVE, Status.REVOKED, Status.ACTIVE, Status.EXPIRED]
    committed = []
    for token in ("tok-a", "tok-b"):
        for i, status in enumerate(flips):
            result = store.apply(event(f"{token}-{i}", 1_000 + i, status, token=token))
            assert result.published is False
            committed.append(result.event.event_id)
    assert outbox_ids(store) == sorted(committed)

    with pytest.raises(RefundGuardError) as info:  # still cut: 503, nothing lost
        store.outbox.sweep(now_ms=now_ms(), grace_ms=0, budget_s=5)
    assert info.value.kind is Kind.TRANSIENT and info.value.code == "pubsub_unavailable"
    assert outbox_ids(store) == sorted(committed)

    proxy.up()
    swept = store.outbox.sweep(now_ms=now_ms(), grace_ms=0, budget_s=5)
    assert swept.published == len(committed) and not swept.more
    got = platform_events.received()
    assert sorted(g.event["id"] for g in got) == sorted(committed)
    for token in ("tok-a", "tok-b"):
        mine = [g for g in got if g.ordering_key == f"google:{token}"]
        assert [g.data["version"] for g in mine] == [1, 2, 3, 4]
        assert [g.data["status"] for g in mine] == [s.value for s in flips]
    assert outbox_ids(store) == []
    assert store.outbox.sweep(now_ms=now_ms(), grace_ms=0, budget_s=5).published == 0


def test_the_sweep_leaves_entries_younger_than_its_grace_period(
    cut_pubsub: tuple[EntitlementStore, TcpProxy], platform_events: Any
) -> None:
    store, proxy = cut_pubsub
    proxy.down()
    result = store.apply(event("m-1", 1_000, Status.ACTIVE))
    proxy.up()
    assert store.outbox.sweep(now_ms=now_ms(), grace_ms=60_000, budget_s=5).published == 0
    assert platform_events.received(settle_s=0.3) == []
    created = result.event.created_ms
    assert store.outbox.sweep(now_ms=created + 60_001, grace_ms=60_000, budget_s=5).published == 1
    assert [g.event["id"] for g in platform_events.received()] == [result.event.event_id]


def test_an_event_published_by_an_instance_that_stopped_before_its_next_commit_comes_again(
    events_store: EntitlementStore, platform_events: Any, emulator_env: dict[str, str]
) -> None:
    result = events_store.apply(event("m-1", 1_000, Status.REVOKED))
    assert result.published is True and outbox_ids(events_store) == [result.event.event_id]
    # The instance is gone (its deferred delete with it); another one sees the entry as unpublished.
    other = EntitlementStore(
        firestore.Client(project=emulator_env["GOOGLE_CLOUD_PROJECT"]),
        publisher=events_store.outbox.publisher,
    )
    again = other.apply(event("m-1", 1_000, Status.REVOKED))  # a redelivery elsewhere
    assert again.effect is Effect.DUPLICATE and again.published is True
    assert outbox_ids(events_store) == []  # the rare path deletes at once
    got = platform_events.received()
    assert [g.event["id"] for g in got] == [result.event.event_id] * 2  # consumers dedupe by id

    second = events_store.apply(event("m-2", 2_000, Status.ACTIVE))
    other.outbox.take_deletes()
    swept = other.outbox.sweep(now_ms=now_ms(), grace_ms=0, budget_s=5)
    assert swept.published == 1
    assert [g.event["id"] for g in platform_events.received()] == [second.event.event_id] * 2
    assert outbox_ids(events_store) == []


def test_deletes_of_published_entries_wait_for_a_commit_that_lands(
    events_store: EntitlementStore, platform_events: Any
) -> None:
    first = events_store.apply(event("m-1", 1_000, Status.ACTIVE))
    client = events_store.client
    original = client.batch

    def failing_batch() -> Any:
        batch = original()

        def commit(*args: Any, **kw: Any) -> Any:
            raise gexc.InvalidArgument("refused")

        batch.commit = commit  # type: ignore[method-assign]
        return batch

    client.batch = failing_batch  # type: ignore[method-assign]
    with pytest.raises(RefundGuardError):
        events_store.apply(event("m-2", 2_000, Status.REVOKED))
    del client.batch
    assert outbox_ids(events_store) == [first.event.event_id]  # given back, still to delete
    second = events_store.apply(event("m-3", 3_000, Status.REVOKED))
    assert outbox_ids(events_store) == [second.event.event_id]
    assert [g.event["id"] for g in platform_events.received()] == [
        first.event.event_id,
        second.event.event_id,
    ]


def test_sweep_order_groups_each_entitlement_in_one_request() -> None:
    def entry(entitlement: str, version: int, created: int) -> access_events.OutboxEntry:
        return access_events.OutboxEntry(
            event_id=f"{entitlement}-{version}",
            entitlement=entitlement,
            version=version,
            status="active",
            ordering_key=entitlement,
            data="{}",
            created_ms=created,
        )

    groups = access_events.publish_order(
        [entry("b", 2, 10), entry("a", 7, 30), entry("b", 1, 20), entry("a", 3, 5)]
    )
    assert [[e.event_id for e in g] for g in groups] == [["a-3", "a-7"], ["b-1", "b-2"]]


def test_a_missing_topic_is_named_in_the_warning_and_the_change_commits(
    emulator_env: dict[str, str], pubsub_emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"projects/{emulator_env['GOOGLE_CLOUD_PROJECT']}/topics/never-created"
    store = EntitlementStore(
        firestore.Client(project=emulator_env["GOOGLE_CLOUD_PROJECT"]),
        publisher=Publisher(EventsSettings(topic, pubsub_emulator.host)),
    )
    result = store.apply(event("m-1", 1_000, Status.ACTIVE))
    assert result.effect is Effect.APPLIED and result.published is False
    [warning] = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"WARNING"' in line
    ]
    assert warning["error"] == f"Pub/Sub answered HTTP 404 (NOT_FOUND) for {topic}"
    assert outbox_ids(store) == [result.event.event_id]
