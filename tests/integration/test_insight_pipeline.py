"""Refund insight end to end, against the real Firestore and Pub/Sub emulators: refund requests
publish their events through the outbox in the same write as their change (never the pending
refund token; a Pub/Sub cut loses nothing, the sweep publishes it); the events the Play function
publishes reach a second subscription of the events topic (the BigQuery subscription's stand-in:
rows in its format) and GET /insight of the admin function computes the figures from them (the
local engine); GET /insight through BigQuery's REST stand-in answers each role what it may see,
as JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from google.cloud import firestore
from refundguard.config import EventsSettings
from refundguard.publisher import Publisher
from refundguard.refunds import RefundRequest
from refundguard.store import EntitlementStore, now_ms
from refundguard.wiring import Wiring
from refundguard_dev import insight_local
from refundguard_dev.fake_bigquery import FakeBigQuery
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner
from refundguard_dev.insight_local import LocalWarehouse
from refundguard_dev.play_messages import PACKAGE, play_request, post
from refundguard_dev.tcp_proxy import TcpProxy
from tenant_fixtures import ACME_ADMIN, ACME_SUPPORT, ADMIN, STRANGER, call, seed

pytestmark = pytest.mark.emulator

REFUND_TYPE = "com.refundguard.refund_request.v1"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def request_of(tenant: str = "default", token: str = "tok-r") -> RefundRequest:
    return RefundRequest(
        id="google:" + "ab" * 12,
        kind="google_refund_review",
        store="google",
        environment="Production",
        entitlement_id=f"google:{token}",
        purchase_id=token,
        app=PACKAGE,
        received_ms=now_ms() - 60_000,
        deadline_ms=now_ms() + 3_600_000,
        order_id="GPA.1234-5678-9012-34567",
        pending_refund_token="prt-secret-9f3a",
        tenant=tenant,
    )


# ------------------------------------------------------------------------- refund-request events


def test_each_refund_request_change_is_one_event_written_with_it(
    events_store: EntitlementStore, platform_events: Any
) -> None:
    refunds = Wiring(events_store).refunds
    request = request_of()
    assert refunds.record(request) is True
    assert refunds.record(request) is False  # a redelivery: nothing new, no event
    answered = refunds.update(
        request,
        state="answered",
        answer={"refundPreference": "DECLINE", "sampleContentProvided": False},
        attempts=1,
        updated_ms=now_ms(),
        answered_ms=now_ms(),
        rule="long-time-customers",
    )
    got = platform_events.received()  # each checked against docs/events.schema.json
    assert [g.event["type"] for g in got] == [REFUND_TYPE, REFUND_TYPE]
    received, done = got
    assert (received.data["state"], received.data["previous_state"]) == ("pending", None)
    assert (done.data["state"], done.data["previous_state"]) == ("answered", "pending")
    assert (done.data["refund_preference"], done.data["rule"]) == ("DECLINE", "long-time-customers")
    assert done.event["subject"] == request.id == done.ordering_key
    assert done.attributes["type"] == REFUND_TYPE
    assert answered.state == "answered"
    for message in got:  # Google's pending refund token never leaves Firestore
        assert "prt-secret-9f3a" not in json.dumps(message.event)


def test_events_off_writes_no_outbox_entry_for_a_request(store: EntitlementStore) -> None:
    refunds = Wiring(store).refunds
    assert refunds.record(request_of()) is True
    assert list(store.client.collection("outbox").stream()) == []


@pytest.fixture
def cut(
    emulator_env: dict[str, str], platform_events: Any, pubsub_emulator: Any
) -> Iterator[tuple[EntitlementStore, TcpProxy]]:
    proxy = TcpProxy(pubsub_emulator.host)
    store = EntitlementStore(
        firestore.Client(project=emulator_env["GOOGLE_CLOUD_PROJECT"]),
        publisher=Publisher(EventsSettings(platform_events.topic, proxy.address), timeout_s=(1, 2)),
        function="test",
    )
    try:
        yield store, proxy
    finally:
        proxy.close()


def test_a_pubsub_cut_keeps_the_request_event_for_the_sweep(
    cut: tuple[EntitlementStore, TcpProxy], platform_events: Any
) -> None:
    store, proxy = cut
    proxy.down()
    refunds = Wiring(store).refunds
    assert refunds.record(request_of()) is True  # committed although Pub/Sub is away
    (waiting,) = store.outbox.pending(limit=10)
    assert json.loads(waiting.data)["type"] == REFUND_TYPE
    assert platform_events.received(settle_s=0.2) == []
    proxy.up()
    assert store.outbox.sweep(now_ms=now_ms() + 60_000, grace_ms=0, budget_s=5).published == 1
    (got,) = platform_events.received()
    assert got.event["id"] == waiting.event_id and got.data["state"] == "pending"
    assert store.outbox.pending(limit=10) == []


# ------------------------------------------------------------------------- the figures, end to end


def rows_of(pubsub: Any, subscription: str) -> list[dict[str, Any]]:
    """What the BigQuery subscription would write: each pulled message as its row."""
    response = pubsub._http.post(
        f"{pubsub.base}/subscriptions/{subscription}:pull",
        json={"maxMessages": 1000, "returnImmediately": True},
        timeout=10,
    )
    response.raise_for_status()
    return [
        insight_local.row_of_pubsub_message(r["message"], subscription)
        for r in response.json().get("receivedMessages", [])
    ]


def test_the_play_functions_events_become_the_figures(
    make_client: Any,
    platform_events: Any,
    certs: CertServer,
    signer: TestSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pubsub = platform_events.pubsub
    insight_sub = pubsub.subscription(f"{platform_events.name}-insight", platform_events.name)
    play = make_client("play_notifications", PLAY_PACKAGE_NAMES=PACKAGE)
    order_a, order_b = "GPA.1111-0000-0000-00001", "GPA.1111-0000-0000-00002"
    for body in (
        play_request("one-time", "tok-a", time_ms=ms("2026-01-30T10:00:00"), order_id=order_a),
        play_request("one-time", "tok-b", time_ms=ms("2026-01-31T10:00:00"), order_id=order_b),
        play_request("refund-review", "tok-a", time_ms=ms("2026-02-01T10:00:00"), order_id=order_a),
        play_request("voided", "tok-a", time_ms=ms("2026-02-02T12:00:00"), order_id=order_a),
        play_request(
            "voided-partial", "tok-b", time_ms=ms("2026-02-03T12:00:00"), order_id=order_b
        ),
    ):
        assert post(play, *body).status_code == 200
    # The rows the BigQuery subscription writes: the CloudEvents' fields, the purchase id and the
    # user id dropped (the table has no such columns), the metadata beside them.
    rows = rows_of(pubsub, insight_sub.rsplit("/", 1)[1])
    assert len(rows) == 5  # 2 grants, the request received, the refund, the partial refund
    assert {r["type"] for r in rows} == {"com.refundguard.entitlement.access.v1", REFUND_TYPE}
    assert all("purchase_id" not in r["data"] and r["message_id"] for r in rows)
    assert all(r["tenant"] == "default" for r in rows)
    warehouse = LocalWarehouse()
    warehouse.insert(rows)

    # The admin function's GET /insight on the same kind of feed (INSIGHT_ENGINE=local).
    insight_local.reset_shared()
    monkeypatch.setenv("INSIGHT_LOCAL_SUBSCRIPTION", insight_sub)
    admin = make_client(
        "admin",
        ADMIN_AUDIENCES=AUDIENCE,
        ADMIN_EMAILS=ADMIN,
        ADMIN_CERTS_URL=certs.url,
        INSIGHT_ENGINE="local",
    )
    # The same events again on the topic, for the function's own feed.
    for row in rows:
        data = {k: row[k] for k in ("specversion", "id", "source", "type", "subject", "time")}
        data |= {"datacontenttype": row["datacontenttype"], "tenant": row["tenant"]}
        data["data"] = row["data"]
        pubsub.publish(platform_events.name, [json.dumps(data, default=str).encode()])
    try:
        answer = call(
            admin,
            ADMIN,
            signer,
            "GET",
            "/insight?tenant=default&period=month&from=2026-01-01&to=2026-02-28",
        )
    finally:
        insight_local.reset_shared()
    assert answer.status_code == 200, answer.get_json()
    got = {(r["product_id"], r["period_start"]): r for r in answer.get_json()["rows"]}
    january, february = got[("*", "2026-01-01")], got[("*", "2026-02-01")]
    assert (january["purchases"], january["refunds_of_purchases"], january["refunds"]) == (2, 1, 0)
    assert january["refund_rate"] == 0.5
    assert (february["refunds"], february["partial_refunds"]) == (1, 1)
    assert (february["requests_received"], february["requests_refunded"]) == (1, 1)
    assert february["revoke_p50_ms"] > 0  # applied now, dated by Google in February
    assert got[("course.premium", "2026-01-01")]["purchases"] == 2


# ------------------------------------------------------------------------- who sees what


@pytest.fixture
def bigquery() -> Iterator[FakeBigQuery]:
    from insight_cases import rows as story_rows

    warehouse = LocalWarehouse()
    warehouse.insert(story_rows())
    with FakeBigQuery(warehouse, project="demo-proj") as server:
        yield server


@pytest.fixture
def admin(
    make_client: Any, certs: CertServer, signer: TestSigner, store: Any, bigquery: FakeBigQuery
) -> Any:
    client = make_client(
        "admin",
        ADMIN_AUDIENCES=AUDIENCE,
        ADMIN_EMAILS=ADMIN,
        ADMIN_CERTS_URL=certs.url,
        INSIGHT_ENGINE="bigquery",
        INSIGHT_DATASET="demo-proj.refundguard_insight",
        INSIGHT_API_BASE_URL=bigquery.url,
        INSIGHT_CACHE_SECONDS="0",
    )
    seed(client, signer, store)  # tenants acme, globex, initech and their staff
    return client


RANGE = "period=month&from=2026-01-01&to=2026-02-28"


def test_each_role_sees_its_own_tenants_figures(admin: Any, signer: TestSigner) -> None:
    def get(who: str, query: str) -> Any:
        return call(admin, who, signer, "GET", f"/insight?{query}")

    mine = get(ACME_ADMIN, RANGE)  # their one tenant, named or not
    assert mine.status_code == 200, mine.get_json()
    assert mine.get_json()["tenant"] == "acme" and len(mine.get_json()["rows"]) == 5
    assert get(ACME_ADMIN, f"tenant=acme&{RANGE}").get_json() == mine.get_json()
    assert get(ACME_ADMIN, f"tenant=globex&{RANGE}").status_code == 404  # as if absent
    assert get(ACME_ADMIN, f"tenant=other&{RANGE}").status_code == 404
    assert get(ACME_SUPPORT, RANGE).status_code == 403  # support: no refund figures
    assert get(STRANGER, RANGE).status_code == 403
    everyone = get(ADMIN, RANGE).get_json()  # a platform admin: every tenant
    assert {r["tenant"] for r in everyone["rows"]} == {"acme", "other"}
    assert get(ADMIN, f"tenant=other&{RANGE}").get_json()["rows"][0]["tenant"] == "other"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("period=year", "bad_period"),
        ("from=2026-13-01", "bad_date"),
        ("from=2026-03-01&to=2026-01-01", "bad_range"),
        ("period=day&from=2020-01-01&to=2026-01-01", "range_too_long"),
        ("format=xml", "bad_format"),
        ("tenant=" + quote("Robert'); DROP TABLE events;--"), "bad_tenant_id"),
    ],
)
def test_bad_queries_are_400_and_ask_nothing(
    admin: Any, signer: TestSigner, bigquery: FakeBigQuery, query: str, code: str
) -> None:
    answer = call(admin, ADMIN, signer, "GET", f"/insight?{query}")
    assert answer.status_code == 400 and answer.get_json()["error"] == code
    assert bigquery.count("/queries") == 0


def test_csv_download_and_bigquery_failures_are_503(
    admin: Any, signer: TestSigner, bigquery: FakeBigQuery
) -> None:
    from refundguard_dev.fake_http import Fault

    answer = call(admin, ACME_ADMIN, signer, "GET", f"/insight?{RANGE}&format=csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert len(table) == 5 and {r["tenant"] for r in table} == {"acme"}
    bigquery.fail_next(Fault(status=500))
    failed = call(admin, ACME_ADMIN, signer, "GET", f"/insight?{RANGE}")
    assert failed.status_code == 503
    assert failed.get_json()["error"] == "insight_unavailable"
