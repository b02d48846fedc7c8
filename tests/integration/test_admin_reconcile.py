"""The admin routes of the reconciler and the refund requests, through functions-framework's apps
against the Firestore emulator: ``POST /reconciliation:run`` starting a real reconciler served over
HTTP (202 with the run id; 409 while one runs; 503 when none is configured), ``GET
/reconciliation/runs`` and ``GET /refund-requests`` in the documented shapes, ``POST
/entitlements:consumption`` (validated, audited), and the CLI's ``runs``, ``run`` and
``refund-requests``."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard.model import LedgerEvent, Source, Status, StoreName
from refundguard.reconcile import function as reconcile_function
from refundguard.refund_store import RefundStore
from refundguard.refunds import DELIVERY_STATUSES, RefundRequest
from refundguard_admin import cli
from refundguard_dev import play_api_data as data
from refundguard_dev.fake_play_api import FakePlayApi, Fault
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner
from refundguard_dev.play_messages import PACKAGE
from support import STORE_API_POLICY, serve

pytestmark = pytest.mark.emulator

ADMIN = "admin@example.com"
NOW_MS = int(time.time() * 1000)


@pytest.fixture
def reconciler_url(
    emulator_env: dict[str, str],
    play_api: FakePlayApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    monkeypatch.setattr(reconcile_function, "API_POLICY", STORE_API_POLICY)
    env = {
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play_api.url,
        "PLAY_PACKAGE_NAMES": PACKAGE,
        "GOOGLE_APPLICATION_CREDENTIALS": str(
            play_api.write_service_account_key(tmp_path / "sa.json")
        ),
    }
    server = serve("reconcile", env, monkeypatch)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def admin_env(certs: CertServer, reconciler_url: str) -> dict[str, str]:
    return {
        "ADMIN_AUDIENCES": AUDIENCE,
        "ADMIN_EMAILS": ADMIN,
        "ADMIN_CERTS_URL": certs.url,
        "RECONCILE_URL": reconciler_url,
    }


@pytest.fixture
def client(make_client: Any, admin_env: dict[str, str]) -> Any:
    return make_client("admin", **admin_env)


def missed_void(play_api: FakePlayApi, token: str = "tok-adm", order: str = "GPA.1100-1") -> None:
    play_api.add_product_purchase(PACKAGE, token, data.product_purchase(order_id=order))
    play_api.add_voided(PACKAGE, data.voided(token, order, voided_ms=NOW_MS - 3_600_000))


def test_an_admin_starts_a_run_and_lists_it(
    client: Any, auth: dict[str, str], play_api: FakePlayApi, store: Any, capsys: Any
) -> None:
    missed_void(play_api)
    capsys.readouterr()
    started = client.post("/reconciliation:run", headers=auth)
    assert started.status_code == 202, started.get_data(as_text=True)
    body = started.get_json()
    assert body["state"] == "succeeded" and body["run"]["run_id"] == body["run_id"]
    assert store.get(StoreName.GOOGLE, "tok-adm").status is Status.REVOKED
    audit = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "audit" in line]
    assert audit[-1]["action"] == "run" and audit[-1]["actor"] == ADMIN
    runs = client.get("/reconciliation/runs?limit=5", headers=auth).get_json()["runs"]
    (run,) = runs
    assert set(run) >= {
        "run_id", "started_at", "finished_at", "state", "window", "sources", "error"
    }  # fmt: skip
    assert run["run_id"] == body["run_id"] and run["trigger"] == "admin" and run["actor"] == ADMIN
    (source,) = run["sources"]
    assert set(source) >= {
        "source", "app", "environment", "seen", "applied", "already_known", "errors", "cursor"
    }  # fmt: skip
    assert (source["source"], source["app"], source["applied"]) == ("google", PACKAGE, 1)
    assert source["cursor"] == run["window"]["end_at"]


def test_a_run_started_while_one_runs_is_409(
    client: Any, auth: dict[str, str], play_api: FakePlayApi
) -> None:
    play_api.fail_next(Fault(delay_s=2.0, path="voidedpurchases"))
    first: list[Any] = []
    thread = threading.Thread(
        target=lambda: first.append(client.post("/reconciliation:run", headers=auth))
    )
    thread.start()
    time.sleep(0.7)
    second = client.post("/reconciliation:run", headers=auth)
    thread.join()
    assert second.status_code == 409 and second.get_json()["error"] == "reconcile_running"
    assert first[0].status_code == 202


def test_a_long_run_answers_202_running(
    client: Any, auth: dict[str, str], play_api: FakePlayApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refundguard.adminapi import reconciliation

    monkeypatch.setattr(reconciliation, "TRIGGER_WAIT_S", 0.5)
    play_api.fail_next(Fault(delay_s=2.0, path="voidedpurchases"))
    started = client.post("/reconciliation:run", headers=auth)
    assert started.status_code == 202
    assert started.get_json()["state"] == "running"
    time.sleep(2.5)
    (run,) = client.get("/reconciliation/runs", headers=auth).get_json()["runs"]
    assert run["state"] == "succeeded" and run["run_id"] == started.get_json()["run_id"]


def test_without_a_reconciler_a_run_is_503(
    make_client: Any, certs: CertServer, emulator_env: dict[str, str], auth: dict[str, str]
) -> None:
    client = make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )
    answer = client.post("/reconciliation:run", headers=auth)
    assert answer.status_code == 503 and answer.get_json()["error"] == "reconciler_not_configured"
    assert client.get("/reconciliation/runs", headers=auth).get_json() == {"runs": []}
    assert client.post("/reconciliation:run").status_code == 401


def seed_requests(store: Any) -> None:
    refunds = RefundStore(store.client, timeout_s=store.deadline_s)
    common = {"store": "google", "environment": "Production", "app": PACKAGE, "purchase_id": "t"}
    refunds.record(
        RefundRequest(
            "google:done", "google_refund_review", entitlement_id="google:t", received_ms=NOW_MS,
            deadline_ms=NOW_MS + 1, state="answered", order_id="GPA.1", **common,
            answer={"refundPreference": "DECLINE"}, pending_refund_token="secret-token",
        )
    )  # fmt: skip
    refunds.record(
        RefundRequest(
            "google:open", "google_refund_review", entitlement_id="google:t",
            received_ms=NOW_MS - 5, deadline_ms=NOW_MS + 9, order_id="GPA.2", **common,
            reason="no_usage_data: the platform has not reported consumption",
        )
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "high"),
    [("/reconciliation/runs", 100), ("/refund-requests", 500), ("/events/unpublished", 500)],
)
@pytest.mark.parametrize("bad", ["0", "-1", "+5", "1e2", "2.0", " 5", "\u0663", "", "x", "HIGH+1"])
def test_a_list_takes_a_whole_number_limit_up_to_its_maximum(
    client: Any, auth: dict[str, str], path: str, high: int, bad: str
) -> None:
    limit = str(high + 1) if bad == "HIGH+1" else bad
    refused = client.get(path, query_string={"limit": limit}, headers=auth)
    assert refused.status_code == 400, (path, limit)
    assert refused.get_json()["error"] == "bad_limit"
    assert str(high) in refused.get_json()["message"]
    assert client.get(path, query_string={"limit": str(high)}, headers=auth).status_code == 200


def test_refund_requests_pending_first_without_tokens(
    client: Any, auth: dict[str, str], store: Any
) -> None:
    seed_requests(store)
    answer = client.get("/refund-requests", headers=auth)
    assert answer.status_code == 200
    requests = answer.get_json()["requests"]
    assert [r["id"] for r in requests] == ["google:open", "google:done"]
    assert set(requests[0]) >= {
        "id", "kind", "store", "entitlement_id", "order_id", "received_at", "deadline_at",
        "state", "reason", "answer",
    }  # fmt: skip
    assert "secret-token" not in answer.get_data(as_text=True)
    only = client.get("/refund-requests?state=answered", headers=auth).get_json()["requests"]
    assert [r["id"] for r in only] == ["google:done"]
    assert client.get("/refund-requests?state=x", headers=auth).status_code == 400


def test_consumption_reports_are_validated_and_stored(
    client: Any, auth: dict[str, str], store: Any
) -> None:
    store.apply(
        LedgerEvent(
            store=StoreName.GOOGLE, purchase_id="tok-c", event_id="e1", source=Source.GOOGLE,
            type="ONE_TIME_PRODUCT_PURCHASED", event_time_ms=NOW_MS, effect=Status.ACTIVE,
        )
    )  # fmt: skip
    good = {
        "store": "google",
        "purchase_id": "tok-c",
        "customer_consented": True,
        "consumption_percentage": 45.2,
        "delivery_status": "DELIVERED",
        "sample_content_provided": False,
    }
    answer = client.post("/entitlements:consumption", json=good, headers=auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    stored = RefundStore(store.client, timeout_s=store.deadline_s).consumption("google:tok-c")
    assert stored.percentage_milliunits == 45_200 and stored.actor == ADMIN
    for bad in ({"consumption_percentage": 101}, {"customer_consented": "yes"}, {"x": 1}):
        assert (
            client.post("/entitlements:consumption", json={**good, **bad}, headers=auth).status_code
            == 400
        )
    unknown = client.post(
        "/entitlements:consumption", json={**good, "purchase_id": "nope"}, headers=auth
    )
    assert unknown.status_code == 404


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities too (Python's JSON writes them)
    | st.text(max_size=20)
    | st.sampled_from(["DELIVERED", "UNDELIVERED_OTHER", "google", "apple-sandbox", "tok-c"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
GOOD_REPORT = {
    "store": "google",
    "purchase_id": "tok-c",
    "customer_consented": True,
    "consumption_percentage": 45.2,
    "delivery_status": "DELIVERED",
    "sample_content_provided": False,
}
REPORT_CODES = {"unknown_field", "missing_target", "unknown_store", "bad_purchase_id"}
REPORT_CODES |= {"bad_consumption", "bad_json"}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(field=st.sampled_from(sorted(GOOD_REPORT)), value=json_values)
def test_any_json_value_in_any_consumption_field_is_a_clear_400_or_accepted(
    client: Any, auth: dict[str, str], store: Any, field: str, value: Any
) -> None:
    """A list or object ``delivery_status`` used to be a TypeError, a 503 and an ERROR line:
    every field is checked before anything is read or written."""
    if store.get(StoreName.GOOGLE, "tok-c") is None:
        store.apply(
            LedgerEvent(
                store=StoreName.GOOGLE, purchase_id="tok-c", event_id="e1",
                source=Source.GOOGLE, type="ONE_TIME_PRODUCT_PURCHASED", event_time_ms=NOW_MS,
                effect=Status.ACTIVE,
            )
        )  # fmt: skip
    refunds = RefundStore(store.client, timeout_s=store.deadline_s)
    before = refunds.consumption("google:tok-c")
    body = json.dumps({**GOOD_REPORT, field: value})
    answer = client.post(
        "/entitlements:consumption", data=body, content_type="application/json", headers=auth
    )
    assert answer.status_code in (200, 400, 404), answer.get_data(as_text=True)
    if answer.status_code == 200:
        stored = refunds.consumption("google:tok-c")
        assert stored is not None and stored.delivery_status in DELIVERY_STATUSES
        assert isinstance(stored.percentage_milliunits, int)
        return
    if answer.status_code == 400:
        assert answer.get_json()["error"] in REPORT_CODES, answer.get_json()
    assert refunds.consumption("google:tok-c") == before  # refused: nothing written


def test_what_an_admin_reports_is_answered_by_an_admin_run_and_accepted(
    emulator_env: dict[str, str],
    make_client: Any,
    certs: CertServer,
    auth: dict[str, str],
    play_api: FakePlayApi,
    store: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole path an operator uses: consumption reported through the admin API, a run started
    through it, the answer built by the policy and accepted by the Play stand-in."""
    monkeypatch.setattr(reconcile_function, "API_POLICY", STORE_API_POLICY)
    key = play_api.write_service_account_key(tmp_path / "sa.json")
    server = serve(
        "reconcile",
        {
            "PLAY_DEVELOPER_API": "on",
            "PLAY_API_BASE_URL": play_api.url,
            "PLAY_PACKAGE_NAMES": PACKAGE,
            "GOOGLE_APPLICATION_CREDENTIALS": str(key),
            "REFUND_REQUESTS": "answer",
        },
        monkeypatch,
    )
    try:
        client = make_client(
            "admin",
            ADMIN_AUDIENCES=AUDIENCE,
            ADMIN_EMAILS=ADMIN,
            ADMIN_CERTS_URL=certs.url,
            RECONCILE_URL=f"http://127.0.0.1:{server.server_port}",
        )
        store.apply(
            LedgerEvent(
                store=StoreName.GOOGLE, purchase_id="tok-ans", event_id="e-ans",
                source=Source.GOOGLE, type="ONE_TIME_PRODUCT_PURCHASED", event_time_ms=NOW_MS,
                effect=Status.ACTIVE,
            )
        )  # fmt: skip
        play_api.add_pending_refund_review(PACKAGE, "GPA.5500-1", "prt-5500")
        RefundStore(store.client, timeout_s=store.deadline_s).record(
            RefundRequest(
                "google:ans", "google_refund_review", store="google", environment="Production",
                entitlement_id="google:tok-ans", purchase_id="tok-ans", app=PACKAGE,
                received_ms=NOW_MS, deadline_ms=NOW_MS + 3_600_000, order_id="GPA.5500-1",
                pending_refund_token="prt-5500",
            )
        )  # fmt: skip
        report = {**GOOD_REPORT, "purchase_id": "tok-ans", "delivery_status": "UNDELIVERED_OTHER"}
        reported = client.post("/entitlements:consumption", json=report, headers=auth)
        assert reported.status_code == 200, reported.get_data(as_text=True)
        started = client.post("/reconciliation:run", headers=auth)
        assert started.status_code == 202 and started.get_json()["state"] == "succeeded"
        assert play_api.reviews[(PACKAGE, "GPA.5500-1")] == {
            "pendingRefundToken": "prt-5500",
            "sampleContentProvided": False,
            "refundPreference": "APPROVE",  # not delivered: a refund is preferred
            "consumptionPercentageMilliunits": 45_200,
        }
        (request,) = [
            r
            for r in RefundStore(store.client, timeout_s=store.deadline_s).recent(limit=5)
            if r.id == "google:ans"
        ]
        assert request.state == "answered"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------- the CLI


def cli_run(url: str, token: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", url, "--token", token, *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_run_runs_and_refund_requests(
    admin_env: dict[str, str],
    signer: TestSigner,
    play_api: FakePlayApi,
    store: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = serve("admin", admin_env, monkeypatch)
    url = f"http://127.0.0.1:{server.server_port}"
    token = signer.token(ADMIN)
    try:
        missed_void(play_api, "tok-cli", "GPA.1200-1")
        code, out, err = cli_run(url, token, "run")
        assert code == 0, err
        assert out.startswith("Run ") and "succeeded" in out
        assert f"google {PACKAGE} Production: seen 1, applied 1" in out
        code, out, err = cli_run(url, token, "runs", "--limit", "3")
        assert code == 0 and "Reconciliation runs (newest first, 1):" in out, err
        seed_requests(store)
        code, out, err = cli_run(url, token, "refund-requests", "--state", "pending")
        assert code == 0, err
        assert "pending      google_refund_review" in out and "google:done" not in out
        assert "no_usage_data" in out
    finally:
        server.shutdown()
        server.server_close()


def test_cli_prints_run_text_through_safe() -> None:
    from refundguard_admin import ops

    text = ops.render("runs", {"runs": [{"run_id": "r\x1b[2J", "state": "ok", "sources": []}]})
    assert "\x1b" not in text and "\\x1b" in text
