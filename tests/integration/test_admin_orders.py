"""``GET /orders/{order_id}`` through functions-framework's app, against the Firestore emulator and
both store APIs' stand-ins (real HTTP, google-auth's token flow, Apple's answers through the real
verifier): found in Firestore; found through the store's API, then in Firestore; not found; store
unreachable; malformed, untrusted and refused answers; the CLI's order commands."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from refundguard.adminapi import handler as admin_function
from refundguard.model import LedgerEvent, Source, Status, StoreName
from refundguard.storeapi import CallPolicy
from refundguard_admin import cli
from refundguard_dev import play_api_data as data
from refundguard_dev.apple_pki import APP_APPLE_ID, BUNDLE_ID, default_pki, generate_pki
from refundguard_dev.fake_appstore_api import ApiKey, FakeAppStoreApi
from refundguard_dev.fake_play_api import FakePlayApi, Fault
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner
from support import STORE_API_POLICY, served

pytestmark = pytest.mark.emulator

ADMIN = "admin@example.com"
GOOGLE_ORDER = "GPA.3301-1111-2222-33333"
APPLE_ORDER = "MQ3ZRTV4X1"
FAILURES = [Fault(status=503) for _ in range(10)]


@pytest.fixture
def admin_env(
    emulator_env: dict[str, str],
    certs: CertServer,
    play_api: FakePlayApi,
    appstore_production: FakeAppStoreApi,
    apple_api_key: ApiKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    play_api.packages = {"com.example.first", data.PACKAGE}  # both apps invited
    fast = CallPolicy(**{**STORE_API_POLICY.__dict__, "deadline_s": 3})
    monkeypatch.setattr(admin_function, "API_POLICY", fast)
    root = tmp_path / "root.der"
    root.write_bytes(default_pki().root_der)
    return {
        "ADMIN_AUDIENCES": AUDIENCE,
        "ADMIN_EMAILS": ADMIN,
        "ADMIN_CERTS_URL": certs.url,
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play_api.url,
        "PLAY_PACKAGE_NAMES": f"com.example.first,{data.PACKAGE}",
        "GOOGLE_APPLICATION_CREDENTIALS": str(
            play_api.write_service_account_key(tmp_path / "sa.json")
        ),
        "APPLE_API_KEY_ID": apple_api_key.key_id,
        "APPLE_API_ISSUER_ID": apple_api_key.issuer_id,
        "APPLE_API_PRIVATE_KEY": apple_api_key.pem,
        "APPLE_API_BASE_URL": appstore_production.url,
        "APPLE_API_SANDBOX_BASE_URL": appstore_production.url,
        "APPLE_BUNDLE_IDS": BUNDLE_ID,
        "APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
        "APPLE_ROOT_CERTS": str(root),
    }


@pytest.fixture
def client(make_client: Any, admin_env: dict[str, str]) -> Any:
    return make_client("admin", **admin_env)


def get_order(client: Any, auth: dict[str, str], order_id: str) -> Any:
    return client.get(f"/orders/{order_id}", headers=auth)


def seed_google(play_api: FakePlayApi, order_id: str = GOOGLE_ORDER, token: str = "tok-o") -> None:
    play_api.add_order(data.PACKAGE, data.order(order_id, token))


def seed_apple(api: FakeAppStoreApi, *transactions: str, order_id: str = APPLE_ORDER) -> None:
    for tx in transactions:
        api.add_transaction(original_transaction_id=tx, product_id=f"pro.{tx[-1]}")
    api.add_order(order_id, *transactions)


# ---------------------------------------------------------------------------------------- found


def test_an_order_already_in_firestore_is_one_query_and_the_lookup_shape(
    client: Any, auth: dict[str, str], store: Any, play_api: FakePlayApi
) -> None:
    store.apply(
        LedgerEvent(
            store=StoreName.GOOGLE,
            purchase_id="tok-known",
            event_id="m-1",
            source=Source.GOOGLE,
            type="ONE_TIME_PRODUCT_PURCHASED",
            event_time_ms=1_000,
            effect=Status.ACTIVE,
            order_id=GOOGLE_ORDER,
        )
    )
    response = get_order(client, auth, GOOGLE_ORDER)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["order_id"], body["store"], body["found_by"]) == (
        GOOGLE_ORDER,
        "google",
        "firestore",
    )
    lookup = client.post(
        "/entitlements:lookup", json={"store": "google", "purchase_id": "tok-known"}, headers=auth
    ).get_json()
    assert body["results"] == [lookup]
    assert play_api.count("/orders/") == 0


def test_a_google_order_is_found_through_the_api_then_in_firestore(
    client: Any, auth: dict[str, str], store: Any, play_api: FakePlayApi
) -> None:
    seed_google(play_api)
    first = get_order(client, auth, GOOGLE_ORDER).get_json()
    assert first["found_by"] == "store_api" and first["store"] == "google"
    (result,) = first["results"]
    assert result["status"] == "unknown" and result["entitlement"]["order_id"] == GOOGLE_ORDER
    (entry,) = result["history"]
    assert entry["type"] == "ORDER_LOOKUP" and entry["actor"] == ADMIN
    assert entry["effect"] == "recorded" and "orders.get" in entry["reason"]
    assert entry["details"]["package"] == data.PACKAGE  # the first package did not know it
    asked = play_api.count("/orders/")
    second = get_order(client, auth, GOOGLE_ORDER).get_json()
    assert second["found_by"] == "firestore" and play_api.count("/orders/") == asked
    assert second["results"][0]["entitlement"] == result["entitlement"]


def test_an_apple_order_is_found_through_the_api_then_in_firestore(
    client: Any, auth: dict[str, str], appstore_production: FakeAppStoreApi
) -> None:
    seed_apple(appstore_production, "2000000000000101")
    first = get_order(client, auth, APPLE_ORDER).get_json()
    assert first["found_by"] == "store_api" and first["store"] == "apple"
    ent = first["results"][0]["entitlement"]
    assert (ent["store"], ent["environment"], ent["purchase_id"]) == (
        "apple",
        "Production",
        "2000000000000101",
    )
    assert ent["order_ids"] == [APPLE_ORDER] and ent["product_id"] == "pro.1"
    assert get_order(client, auth, APPLE_ORDER).get_json()["found_by"] == "firestore"
    assert appstore_production.count("/lookup/") == 1


def test_an_apple_order_of_several_purchases_answers_each(
    client: Any, auth: dict[str, str], appstore_production: FakeAppStoreApi
) -> None:
    seed_apple(appstore_production, "2000000000000201", "2000000000000202")
    body = get_order(client, auth, APPLE_ORDER).get_json()
    ids = sorted(r["entitlement"]["purchase_id"] for r in body["results"])
    assert ids == ["2000000000000201", "2000000000000202"]


# ---------------------------------------------------------------------------------------- not found


def test_an_order_of_another_tenants_app_is_404_and_links_nothing(
    make_client: Any,
    admin_env: dict[str, str],
    signer: TestSigner,
    store: Any,
    play_api: FakePlayApi,
) -> None:
    """The store knows the order, in an app of tenant globex: globex's admin finds it (and the
    purchase becomes globex's); acme's admin hears the 404 of an unknown order, and nothing is
    written."""
    from tenant_fixtures import call, dump

    # Tenants' own apps: none of the environment's (those are tenant default's).
    client = make_client("admin", **{**admin_env, "PLAY_PACKAGE_NAMES": ""})
    for tenant, package in (("globex", data.PACKAGE), ("acme", "com.example.first")):
        body = {"id": tenant, "display_name": tenant, "play_packages": [package], "play_api": True}
        assert call(client, ADMIN, signer, "POST", "/tenants", body).status_code == 201
        put = {"role": "admin"}
        path = f"/tenants/{tenant}/staff/boss@{tenant}.example"
        assert call(client, ADMIN, signer, "PUT", path, put).status_code == 200
    seed_google(play_api)
    before = dump(store.client)
    theirs = call(client, "boss@acme.example", signer, "GET", f"/orders/{GOOGLE_ORDER}")
    assert theirs.status_code == 404 and theirs.get_json()["error"] == "order_not_found"
    assert dump(store.client) == before
    mine = call(client, "boss@globex.example", signer, "GET", f"/orders/{GOOGLE_ORDER}")
    assert mine.status_code == 200, mine.get_json()
    assert mine.get_json()["results"][0]["entitlement"]["tenant"] == "globex"
    again = call(client, "boss@acme.example", signer, "GET", f"/orders/{GOOGLE_ORDER}")
    assert again.status_code == 404 and again.get_json()["error"] == "order_not_found"


def test_an_order_found_nowhere_is_404(
    client: Any, auth: dict[str, str], store: Any, appstore_production: FakeAppStoreApi
) -> None:
    for order_id, store_name in (("GPA.0000-nobody", "google"), ("NOBODY0001", "apple")):
        response = get_order(client, auth, order_id)
        assert response.status_code == 404, response.get_data(as_text=True)
        assert response.get_json()["error"] == "order_not_found"
        assert response.get_json()["details"]["store"] == store_name
    assert list(store._client.collection("entitlements").stream()) == []


def test_with_the_apis_off_an_unknown_order_is_404_saying_so(
    make_client: Any, emulator_env: dict[str, str], certs: CertServer, auth: dict[str, str]
) -> None:
    client = make_client(
        "admin", ADMIN_AUDIENCES=AUDIENCE, ADMIN_EMAILS=ADMIN, ADMIN_CERTS_URL=certs.url
    )
    response = get_order(client, auth, GOOGLE_ORDER)
    assert response.status_code == 404 and "off here" in response.get_json()["message"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"APPLE_BUNDLE_IDS": ""}, "APPLE_BUNDLE_IDS must list the apps whose orders"),
        ({"APPLE_APP_APPLE_ID": ""}, "APPLE_APP_APPLE_ID must be set"),
        ({"APPLE_APP_APPLE_ID": "12ab"}, "APPLE_APP_APPLE_ID must be the app's numeric"),
        # Apple's real API answers from Production: its answers must chain to Apple's root.
        (
            {"APPLE_API_BASE_URL": "https://api.storekit.apple.com"},
            "APPLE_ROOT_CERTS must include Apple Root CA - G3",
        ),
    ],
)
def test_an_apple_lookup_that_could_not_verify_its_answers_does_not_start(
    refused_start: Any, admin_env: dict[str, str], changes: dict[str, str], problem: str
) -> None:
    problems = refused_start("admin", **{**admin_env, **changes})
    assert any(p.startswith(problem) for p in problems), problems


def test_a_bad_order_id_is_400(client: Any, auth: dict[str, str]) -> None:
    response = get_order(client, auth, "GPA.1%20x;y")
    assert response.status_code == 400 and response.get_json()["error"] == "bad_order_id"


# ---------------------------------------------------------------------------------------- failures


def test_a_store_that_cannot_be_reached_is_503_naming_it(
    client: Any, auth: dict[str, str], play_api: FakePlayApi, store: Any
) -> None:
    play_api.fail_next(*FAILURES)
    response = get_order(client, auth, GOOGLE_ORDER)
    assert response.status_code == 503 and response.headers["Retry-After"]
    body = response.get_json()
    assert body["error"] == "store_unavailable" and body["details"]["store"] == "google"
    assert list(store._client.collection("entitlements").stream()) == []


def test_an_unreachable_apple_api_is_503(
    client: Any, auth: dict[str, str], appstore_production: FakeAppStoreApi
) -> None:
    appstore_production.stop()
    response = get_order(client, auth, APPLE_ORDER)
    assert response.status_code == 503
    assert response.get_json()["details"]["store"] == "apple"


def test_a_malformed_google_answer_is_503_naming_the_store(
    client: Any, auth: dict[str, str], play_api: FakePlayApi
) -> None:
    play_api.fail_next(Fault(body=b'{"orderId": "GPA.x"}'))  # no purchaseToken, no state
    body = get_order(client, auth, GOOGLE_ORDER).get_json()
    assert body["error"] == "store_bad_answer" and body["details"]["store"] == "google"


def test_an_apple_answer_that_does_not_verify_is_503_and_unused(
    client: Any, auth: dict[str, str], appstore_production: FakeAppStoreApi, store: Any
) -> None:
    seed_apple(appstore_production, "2000000000000301")
    appstore_production.pki = generate_pki("Someone Else")
    response = get_order(client, auth, APPLE_ORDER)
    assert response.status_code == 503
    assert response.get_json()["error"] == "store_untrusted_answer"
    assert list(store._client.collection("entitlements").stream()) == []


def test_an_app_that_refuses_us_is_skipped_and_named_when_nobody_knows_the_order(
    client: Any, auth: dict[str, str], play_api: FakePlayApi
) -> None:
    play_api.packages = {data.PACKAGE}  # not invited for com.example.first
    seed_google(play_api)
    assert get_order(client, auth, GOOGLE_ORDER).get_json()["found_by"] == "store_api"
    response = get_order(client, auth, "GPA.0000-nobody")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "store_permission" and "View financial data" in body["message"]


def test_a_refused_key_is_503_naming_the_fix(
    client: Any, auth: dict[str, str], appstore_production: FakeAppStoreApi
) -> None:
    appstore_production.keys.clear()
    response = get_order(client, auth, APPLE_ORDER)
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "store_permission" and "APPLE_API_KEY_ID" in body["message"]


# ------------------------------------------------------------------- deadlines, ids, secrets


def store_requests(play_api: FakePlayApi, apple: FakeAppStoreApi) -> list[str]:
    return [r.path for r in [*play_api.requests, *apple.requests] if r.path != "/token"]


@pytest.mark.parametrize("order_id", [".", "..", "...", "GPA.."])
def test_a_dot_order_id_is_400_without_asking_a_store(
    client: Any,
    auth: dict[str, str],
    play_api: FakePlayApi,
    appstore_production: FakeAppStoreApi,
    order_id: str,
) -> None:
    response = get_order(client, auth, order_id)
    if order_id == "GPA..":  # dots, but not dots only: one segment, asked as it is
        assert [p.rsplit("/", 1)[-1] for p in store_requests(play_api, appstore_production)] == [
            "GPA..",
            "GPA..",
        ]
        return
    assert response.status_code == 400 and response.get_json()["error"] == "bad_order_id"
    assert store_requests(play_api, appstore_production) == []


def test_a_trickling_store_is_503_within_the_deadline(
    client: Any, auth: dict[str, str], play_api: FakePlayApi
) -> None:
    seed_google(play_api)
    play_api.fail_next(Fault(trickle_s=0.2))  # the body a byte every 0.2 s: reads never time out
    started = time.monotonic()
    response = get_order(client, auth, GOOGLE_ORDER)
    assert time.monotonic() - started < 3 + 3.0  # the admin's deadline (3 s) and a margin
    assert response.status_code == 503 and response.get_json()["error"] == "store_timeout"


def test_a_store_error_quoting_our_token_reaches_neither_the_audit_line_nor_the_answer(
    client: Any,
    auth: dict[str, str],
    play_api: FakePlayApi,
    appstore_production: FakeAppStoreApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    echo = Fault(status=403, quote_headers=("Authorization",))
    capsys.readouterr()
    play_api.fail_next(echo, echo)
    google = get_order(client, auth, GOOGLE_ORDER)
    appstore_production.fail_next(Fault(status=401, quote_headers=("Authorization",)))
    apple = get_order(client, auth, APPLE_ORDER)
    out = capsys.readouterr().out
    answers = google.get_data(as_text=True) + apple.get_data(as_text=True)
    assert google.status_code == apple.status_code == 503
    assert "Bearer [redacted]" in google.get_json()["message"]
    assert "Bearer [redacted]" in apple.get_json()["message"]
    audit = [json.loads(x) for x in out.splitlines() if '"admin' in x]
    assert audit and any("Bearer [redacted]" in json.dumps(x) for x in audit)
    sent = [
        r.headers.get("authorization", "")
        for r in [*play_api.requests, *appstore_production.requests]
    ]
    secrets = {h.split(" ", 1)[1] for h in sent if h.lower().startswith("bearer ")}
    assert any(s.startswith("ya29.") for s in secrets) and any(s.startswith("eyJ") for s in secrets)
    for secret in secrets:
        assert secret not in out and secret not in answers
        assert secret.split(".")[-1] not in out + answers  # not even a JWT's signature


# ---------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def server_url(admin_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with served("admin", admin_env, monkeypatch) as url:
        yield url


def run(url: str, token: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--url", url, "--token", token, *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_order_then_revoke_and_regrant_by_order(
    server_url: str, signer: TestSigner, play_api: FakePlayApi, store: Any
) -> None:
    token = signer.token(ADMIN)
    seed_google(play_api, token="tok-cli")
    code, out, err = run(server_url, token, "order", GOOGLE_ORDER)
    assert code == 0, err
    assert f"Order {GOOGLE_ORDER} (google), found by store_api: 1 entitlement(s)" in out
    assert "ORDER_LOOKUP" in out and f"order        {GOOGLE_ORDER}" in out
    code, out, err = run(server_url, token, "revoke", "--order", GOOGLE_ORDER, "--reason", "cb")
    assert code == 0 and "Revoked: now revoked" in out, err
    assert "google tok-cli" in err
    code, out, err = run(server_url, token, "regrant", "--order", GOOGLE_ORDER, "--reason", "ok")
    assert code == 0 and "Re-granted: now active" in out, err
    assert store.get(StoreName.GOOGLE, "tok-cli").status is Status.ACTIVE


def test_cli_refuses_an_order_of_several_entitlements_without_acting(
    server_url: str, signer: TestSigner, appstore_production: FakeAppStoreApi, store: Any
) -> None:
    token = signer.token(ADMIN)
    seed_apple(appstore_production, "2000000000000401", "2000000000000402")
    code, _, err = run(server_url, token, "revoke", "--order", APPLE_ORDER, "--reason", "cb")
    assert code == cli.EXIT_USAGE
    assert "2 entitlements" in err and "apple 2000000000000401" in err
    for tx in ("2000000000000401", "2000000000000402"):
        assert store.get(StoreName.APPLE, tx).status is Status.UNKNOWN


def test_cli_order_not_found_and_usage(server_url: str, signer: TestSigner) -> None:
    token = signer.token(ADMIN)
    code, _, err = run(server_url, token, "order", "GPA.0000-nobody")
    assert code == cli.EXIT_API_ERROR and "HTTP 404 order_not_found" in err
    code, _, err = run(server_url, token, "revoke", "--reason", "x")
    assert code == cli.EXIT_USAGE and "--order ORDER_ID" in err
    code, _, err = run(
        server_url, token, "revoke", "google", "t", "--order", "GPA.1", "--reason", "x"
    )
    assert code == cli.EXIT_USAGE and "not both" in err


def test_cli_prints_store_text_through_safe(
    server_url: str, signer: TestSigner, play_api: FakePlayApi
) -> None:
    order = data.order(GOOGLE_ORDER, "tok-evil", product_id="\x1b[31mred\u202e")
    play_api.add_order(data.PACKAGE, order)
    code, out, err = run(server_url, signer.token(ADMIN), "order", GOOGLE_ORDER)
    assert code == 0, err
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[31mred\\u202e" in out


def test_cli_order_id_cannot_add_a_path_segment() -> None:
    assert cli.order_url("http://fn/", "../entitlements:revoke") == (
        "http://fn/orders/..%2Fentitlements%3Arevoke"
    )
