"""The reconciler's Apple side and the refund requests, through functions-framework's apps, against
the Firestore emulator and both store APIs' stand-ins: Apple's missed notifications applied through
the verifier (a tampered one quarantined, never applied), consumption requests answered with the
right fields once and only with consent, Apple's history paged with retries and resumed where a
run stopped, Google refund reviews answered once (a 409 means
answered), requests without data left pending then expired at their deadline, policy off."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from refundguard.model import Status, StoreName
from refundguard.reconcile import function as reconcile_function
from refundguard.reconciliation import pages as reconcile_pages
from refundguard.refund_store import RefundStore
from refundguard.refunds import Consumption
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki
from refundguard_dev.fake_appstore_api import PAGE_SIZE, ApiKey, FakeAppStoreApi, Fault
from refundguard_dev.fake_play_api import FakePlayApi
from refundguard_dev.play_messages import PACKAGE, play_request, post
from support import STORE_API_POLICY

pytestmark = pytest.mark.emulator

NOW_MS = int(time.time() * 1000)
HOUR = 3_600_000
TX = "2000000000000101"


@pytest.fixture
def env(
    emulator_env: dict[str, str],
    play_api: FakePlayApi,
    appstore_sandbox: FakeAppStoreApi,
    appstore_production: FakeAppStoreApi,
    apple_api_key: ApiKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    monkeypatch.setattr(reconcile_function, "API_POLICY", STORE_API_POLICY)
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    return {
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play_api.url,
        "PLAY_PACKAGE_NAMES": PACKAGE,
        "GOOGLE_APPLICATION_CREDENTIALS": str(
            play_api.write_service_account_key(tmp_path / "sa.json")
        ),
        "APPLE_API_KEY_ID": apple_api_key.key_id,
        "APPLE_API_ISSUER_ID": apple_api_key.issuer_id,
        "APPLE_API_PRIVATE_KEY": apple_api_key.pem,
        "APPLE_API_BASE_URL": appstore_production.url,
        "APPLE_API_SANDBOX_BASE_URL": appstore_sandbox.url,
        "APPLE_BUNDLE_IDS": BUNDLE_ID,
        "APPLE_ENVIRONMENTS": "Sandbox",
        "APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
        "APPLE_ROOT_CERTS": str(root),
        "REFUND_REQUESTS": "answer",
    }


def reconciler(make_client: Any, env: dict[str, str], **extra: str) -> Any:
    return make_client("reconcile", **{**env, **extra})


def run(client: Any) -> dict[str, Any]:
    response = client.post("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def apple_source(body: dict[str, Any]) -> dict[str, Any]:
    (source,) = [s for s in body["sources"] if s["source"] == "apple"]
    return source


def report(store: Any, entitlement_id: str, **kw: Any) -> None:
    fields = {
        "customer_consented": True,
        "delivery_status": "DELIVERED",
        "sample_content_provided": False,
        "percentage_milliunits": 80_000,
    }
    RefundStore(store.client, timeout_s=store.deadline_s).report(
        Consumption(entitlement_id, **{**fields, **kw})
    )


def requests_of(store: Any) -> list[Any]:
    return RefundStore(store.client, timeout_s=store.deadline_s).recent(limit=50)


# ---------------------------------------------------------------------------------------- Apple


def test_missed_apple_notifications_go_through_the_verifier(
    make_client: Any, env: dict[str, str], appstore_sandbox: FakeAppStoreApi, store: Any
) -> None:
    appstore_sandbox.add_transaction(original_transaction_id=TX)
    appstore_sandbox.add_transaction(original_transaction_id="2000000000000102")
    appstore_sandbox.add_notification("REFUND", transaction_id=TX, results=("TIMED_OUT",) * 3)
    appstore_sandbox.add_notification(
        "REFUND", transaction_id="2000000000000102", results=("TIMED_OUT",), tampered=True
    )
    appstore_sandbox.add_notification("DID_RENEW", transaction_id=TX)  # reached us: not asked
    client = reconciler(make_client, env)
    source = apple_source(run(client))
    assert (source["seen"], source["applied"], source["rejected"]) == (2, 1, 1)
    assert source["environment"] == "Sandbox" and source["app"] == BUNDLE_ID
    ent = store.get(StoreName.APPLE, TX, "Sandbox")
    assert ent.status is Status.REVOKED
    assert store.get(StoreName.APPLE, "2000000000000102", "Sandbox") is None  # tampered: not
    quarantined = list(store.client.collection("quarantine").stream())
    assert [q.to_dict()["source"] for q in quarantined] == ["apple-history"]
    history = next(r for r in appstore_sandbox.requests if "notifications/history" in r.path)
    assert history.json()["onlyFailures"] is True
    again = apple_source(run(client))
    assert (again["applied"], again["already_known"]) == (0, 1)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"APPLE_BUNDLE_IDS": ""}, "APPLE_BUNDLE_IDS must list the apps whose notification"),
        ({"APPLE_ENVIRONMENTS": "Sandbox,Xcode"}, "APPLE_ENVIRONMENTS may list Production"),
        (
            {"APPLE_ENVIRONMENTS": "Production", "APPLE_APP_APPLE_ID": ""},
            "APPLE_APP_APPLE_ID must be set",
        ),
        # Apple's real API: Production's notifications must chain to Apple's root.
        (
            {
                "APPLE_ENVIRONMENTS": "Production",
                "APPLE_API_BASE_URL": "https://api.storekit.apple.com",
            },
            "APPLE_ROOT_CERTS must include Apple Root CA - G3",
        ),
    ],
)
def test_an_apple_history_that_could_not_verify_its_notifications_does_not_start(
    refused_start: Any, env: dict[str, str], changes: dict[str, str], problem: str
) -> None:
    problems = refused_start("reconcile", **{**env, **changes})
    assert any(p.startswith(problem) for p in problems), problems


def test_apple_history_pages_are_retried_and_a_stopped_run_resumes(
    make_client: Any,
    env: dict[str, str],
    appstore_sandbox: FakeAppStoreApi,
    store: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconcile_pages, "PAGE_BACKOFF_S", 0.01)
    ids = [f"20000000000{n:05d}" for n in range(PAGE_SIZE + 5)]  # two pages
    for n, tx in enumerate(ids):
        appstore_sandbox.add_transaction(original_transaction_id=tx, transaction_id=tx)
        appstore_sandbox.add_notification(
            "REFUND", transaction_id=tx, signed_date=NOW_MS - HOUR + n, results=("TIMED_OUT",)
        )
    history = "notifications/history"
    # The first page: a malformed answer, retried. The second: malformed past every retry.
    broken = [Fault(body=b"{not json", path=history) for _ in range(4)]
    appstore_sandbox.fail_next(broken[0], Fault(delay_s=0, path=history), *broken[1:])
    client = reconciler(make_client, env)
    first = run(client)
    source = apple_source(first)
    assert first["state"] == "partial" and source["more"] and source["errors"]
    assert (source["seen"], source["applied"], source["cursor"]) == (PAGE_SIZE, PAGE_SIZE, None)
    assert appstore_sandbox.count(history) == 5
    resumed = apple_source(run(client))  # from the second page, not from the start
    assert (resumed["seen"], resumed["applied"], resumed["more"]) == (5, 5, False)
    assert resumed["cursor"] is not None
    assert all(store.get(StoreName.APPLE, tx, "Sandbox").status is Status.REVOKED for tx in ids)


def test_a_consumption_request_is_answered_once_with_the_policy_fields(
    make_client: Any, env: dict[str, str], appstore_sandbox: FakeAppStoreApi, store: Any
) -> None:
    appstore_sandbox.add_transaction(original_transaction_id=TX)
    appstore_sandbox.add_notification(
        "CONSUMPTION_REQUEST",
        transaction_id=TX,
        results=("TIMED_OUT",),
        data={"consumptionRequestReason": "UNINTENDED_PURCHASE"},
    )
    client = reconciler(make_client, env)
    first = run(client)
    assert first["refund_requests"] == {"pending": 1}  # recorded; no usage data yet
    (request,) = requests_of(store)
    assert (request.state, request.reason) == (
        "pending",
        "no_usage_data: the platform has not reported consumption",
    )
    report(store, f"apple-sandbox:{TX}", percentage_milliunits=80_000)
    assert run(client)["refund_requests"] == {"answered": 1}
    assert appstore_sandbox.consumption[TX] == [
        {
            "customerConsented": True,
            "deliveryStatus": "DELIVERED",
            "sampleContentProvided": False,
            "consumptionPercentage": 80_000,
            "refundPreference": "DECLINE",
        }
    ]
    run(client)
    assert len(appstore_sandbox.consumption[TX]) == 1  # sent once
    (request,) = requests_of(store)
    assert request.state == "answered" and request.answer["refundPreference"] == "DECLINE"
    types = [h.type for h in store.history(StoreName.APPLE, TX, "Sandbox")]
    assert types == ["REFUND_REQUEST_ANSWERED", "CONSUMPTION_REQUEST"]


def test_no_answer_without_consent(
    make_client: Any, env: dict[str, str], appstore_sandbox: FakeAppStoreApi, store: Any
) -> None:
    appstore_sandbox.add_transaction(original_transaction_id=TX)
    appstore_sandbox.add_notification("CONSUMPTION_REQUEST", transaction_id=TX, results=("x",))
    client = reconciler(make_client, env)
    run(client)
    report(store, f"apple-sandbox:{TX}", customer_consented=False)
    assert run(client)["refund_requests"] == {"unanswerable": 1}
    assert TX not in appstore_sandbox.consumption
    (request,) = requests_of(store)
    assert request.state == "unanswerable" and request.reason.startswith("no_consent")


APPLE_TYPES = (
    "Consumable",
    "Non-Consumable",
    "Non-Renewing Subscription",
    "Auto-Renewable Subscription",
)
DELIVERIES = (
    "DELIVERED",
    "UNDELIVERED_QUALITY_ISSUE",
    "UNDELIVERED_WRONG_ITEM",
    "UNDELIVERED_SERVER_OUTAGE",
    "UNDELIVERED_OTHER",
)


def test_every_consumption_answer_is_one_apple_accepts(
    make_client: Any, env: dict[str, str], appstore_sandbox: FakeAppStoreApi, store: Any
) -> None:
    """Every product type x delivery status x a share that maps to each preference (0% -> full
    refund, 30% -> prorated, 100% -> decline): all answered, and the stand-in (which refuses what
    Apple's rules refuse) accepted each. Before, 39 of these 60 got Apple's 400."""
    cases = {}
    for n, (product_type, delivery, percent) in enumerate(
        (t, d, p) for t in APPLE_TYPES for d in DELIVERIES for p in (0, 30_000, 100_000)
    ):
        tx = f"20000000009{n:05d}"
        appstore_sandbox.add_transaction(
            original_transaction_id=tx, transaction_id=tx, product_type=product_type
        )
        appstore_sandbox.add_notification("CONSUMPTION_REQUEST", transaction_id=tx, results=("x",))
        report(
            store, f"apple-sandbox:{tx}", delivery_status=delivery, percentage_milliunits=percent
        )
        cases[tx] = (product_type, delivery, percent)
    client = reconciler(make_client, env, RECONCILE_BUDGET_SECONDS="300")
    assert run(client)["refund_requests"] == {"answered": len(cases)}
    for tx, (product_type, delivery, percent) in cases.items():
        (sent,) = appstore_sandbox.consumption[tx]
        if product_type == "Auto-Renewable Subscription":
            assert "consumptionPercentage" not in sent
        else:
            assert sent["consumptionPercentage"] == (percent if delivery == "DELIVERED" else 0)
        expected = "GRANT_FULL" if delivery != "DELIVERED" or percent == 0 else None
        assert sent["refundPreference"] == expected or (
            expected is None
            and sent["refundPreference"] == ("GRANT_PRORATED" if percent == 30_000 else "DECLINE")
        )
    assert all(r.state == "answered" for r in requests_of(store))


def test_a_prorated_answer_for_a_product_of_unknown_type_is_not_sent(
    make_client: Any, env: dict[str, str], appstore_sandbox: FakeAppStoreApi, store: Any
) -> None:
    """A request recorded before its product type was kept (an older document): a prorated
    answer cannot be valid for every type, so it is refused by refundguard, without a call."""
    appstore_sandbox.add_transaction(original_transaction_id=TX, product_type="Consumable")
    appstore_sandbox.add_notification("CONSUMPTION_REQUEST", transaction_id=TX, results=("x",))
    client = reconciler(make_client, env)
    run(client)
    (request,) = requests_of(store)
    refunds = RefundStore(store.client, timeout_s=store.deadline_s)
    refunds.update(request, product_type=None)  # as recorded before the type was kept
    report(store, f"apple-sandbox:{TX}", percentage_milliunits=30_000)
    assert run(client)["refund_requests"] == {"unanswerable": 1}
    assert TX not in appstore_sandbox.consumption
    (request,) = requests_of(store)
    assert request.reason.startswith("unknown_product_type")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"REFUND_GRANT_BELOW_PERCENT": "0"}, "REFUND_GRANT_BELOW_PERCENT=0 and"),
        ({"REFUND_DECLINE_FROM_PERCENT": "nan"}, "REFUND_DECLINE_FROM_PERCENT must be between"),
    ],
)
def test_a_policy_that_would_give_refused_answers_does_not_start(
    refused_start: Any, env: dict[str, str], changes: dict[str, str], problem: str
) -> None:
    problems = refused_start("reconcile", **{**env, **changes})
    assert any(p.startswith(problem) for p in problems), problems
    if "REFUND_GRANT_BELOW_PERCENT" in changes:
        (text,) = [p for p in problems if p.startswith(problem)]
        assert "GRANT_PRORATED needs 0 < consumptionPercentage < 100000" in text
        assert "set REFUND_GRANT_BELOW_PERCENT above 0" in text


# ---------------------------------------------------------------------------------------- Google


def send_review(make_client: Any, env: dict[str, str], order: str, *, time_ms: int) -> None:
    play = make_client("play_notifications", **env)
    body = play_request("refund-review", "tok-review", order_id=order, time_ms=time_ms)
    assert post(play, *body).status_code == 200


def test_a_google_refund_review_is_answered_once(
    make_client: Any, env: dict[str, str], play_api: FakePlayApi, store: Any
) -> None:
    order = "GPA.9000-0000-0000-00001"
    play_api.add_pending_refund_review(PACKAGE, order, f"prt-{order}")
    send_review(make_client, env, order, time_ms=NOW_MS - HOUR)
    (request,) = requests_of(store)
    assert (request.kind, request.order_id, request.state) == (
        "google_refund_review",
        order,
        "pending",
    )
    assert request.deadline_ms == NOW_MS - HOUR + 24 * HOUR
    report(store, "google:tok-review", percentage_milliunits=5_000, sample_content_provided=True)
    client = reconciler(make_client, env)
    assert run(client)["refund_requests"] == {"answered": 1}
    assert play_api.reviews[(PACKAGE, order)] == {
        "pendingRefundToken": f"prt-{order}",
        "sampleContentProvided": True,
        "refundPreference": "APPROVE",
        "consumptionPercentageMilliunits": 5_000,
    }
    run(client)
    assert play_api.count(":reviewrefund") == 1
    public = requests_of(store)[0].public()
    assert "pending_refund_token" not in public and public["state"] == "answered"


def test_a_review_google_already_has_an_answer_for_is_marked_answered(
    make_client: Any, env: dict[str, str], play_api: FakePlayApi, store: Any
) -> None:
    order = "GPA.9000-0000-0000-00002"
    play_api.add_pending_refund_review(PACKAGE, order, f"prt-{order}")
    play_api.reviews[(PACKAGE, order)] = {"refundPreference": "NEUTRAL"}  # answered elsewhere
    send_review(make_client, env, order, time_ms=NOW_MS - HOUR)
    report(store, "google:tok-review")
    assert run(reconciler(make_client, env))["refund_requests"] == {"answered": 1}
    (request,) = requests_of(store)
    assert request.state == "answered" and "409" in request.reason


def test_a_request_past_its_deadline_is_marked_not_answered(
    make_client: Any, env: dict[str, str], play_api: FakePlayApi, store: Any
) -> None:
    order = "GPA.9000-0000-0000-00003"
    play_api.add_pending_refund_review(PACKAGE, order, f"prt-{order}")
    send_review(make_client, env, order, time_ms=NOW_MS - 25 * HOUR)
    report(store, "google:tok-review")
    assert run(reconciler(make_client, env))["refund_requests"] == {"expired": 1}
    assert play_api.count(":reviewrefund") == 0
    (request,) = requests_of(store)
    assert request.state == "expired" and "deadline" in request.reason


def test_with_the_policy_off_requests_are_recorded_and_never_answered(
    make_client: Any, env: dict[str, str], play_api: FakePlayApi, store: Any
) -> None:
    order = "GPA.9000-0000-0000-00004"
    play_api.add_pending_refund_review(PACKAGE, order, f"prt-{order}")
    send_review(make_client, env, order, time_ms=NOW_MS - HOUR)
    report(store, "google:tok-review")
    client = reconciler(make_client, env, REFUND_REQUESTS="off")
    assert run(client)["refund_requests"] == {"unanswerable": 1}
    assert play_api.count(":reviewrefund") == 0
    (request,) = requests_of(store)
    assert request.reason.startswith("policy_off")


def test_the_policy_thresholds() -> None:
    from refundguard.refund_answers import Policy, preference

    policy = Policy(True, 10, 50)

    def pref(store: str, percent: float, delivery: str = "DELIVERED") -> str:
        facts = Consumption("x", True, delivery, False, int(percent * 1000))
        return preference(store, facts, policy)

    assert [pref("apple", p) for p in (0, 9.9, 10, 49.9, 50, 100)] == [
        "GRANT_FULL", "GRANT_FULL", "GRANT_PRORATED", "GRANT_PRORATED", "DECLINE", "DECLINE"
    ]  # fmt: skip
    assert [pref("google", p) for p in (5, 20, 80)] == ["APPROVE", "NEUTRAL", "DECLINE"]
    assert pref("apple", 90, "UNDELIVERED_SERVER_OUTAGE") == "GRANT_FULL"


def test_the_first_matching_rule_decides_the_answer_and_is_recorded(
    make_client: Any, env: dict[str, str], appstore_sandbox: FakeAppStoreApi, store: Any
) -> None:
    """REFUND_RULES over the thresholds: 80% consumed would be a DECLINE by the thresholds, but
    the rule for this product grants; the answer sent, the request and its history say which
    rule decided. A Google review of another product falls through to the thresholds."""
    rules = (
        '[{"name": "premium-goodwill", "answer": "refund", "stores": ["apple"],'
        ' "products": ["com.example.refundguard.*"], "min_consumed_percent": 50},'
        ' {"name": "never-small", "answer": "skip", "products": ["small.*"]}]'
    )
    appstore_sandbox.add_transaction(original_transaction_id=TX)
    appstore_sandbox.add_notification(
        "CONSUMPTION_REQUEST", transaction_id=TX, results=("TIMED_OUT",)
    )
    client = reconciler(make_client, env, REFUND_RULES=rules)
    run(client)
    report(store, f"apple-sandbox:{TX}", percentage_milliunits=80_000)
    assert run(client)["refund_requests"] == {"answered": 1}
    (sent,) = appstore_sandbox.consumption[TX]
    assert sent["refundPreference"] == "GRANT_FULL"
    (request,) = requests_of(store)
    assert (request.state, request.rule) == ("answered", "premium-goodwill")
    assert request.public()["rule"] == "premium-goodwill"
    (answered, _) = store.history(StoreName.APPLE, TX, "Sandbox")
    assert answered.details["rule"] == "premium-goodwill"


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ("[{", "JSON list"),
        ('[{"name": "x", "answer": "prorated"}]', "Apple's answer only"),
        ('{"name": "x"}', "a list"),
    ],
)
def test_rules_a_store_would_refuse_do_not_start(
    make_client: Any, env: dict[str, str], refused_start: Any, rules: str, problem: str
) -> None:
    problems = refused_start("reconcile", **{**env, "REFUND_RULES": rules})
    assert any("REFUND_RULES" in p and problem in p for p in problems), problems
