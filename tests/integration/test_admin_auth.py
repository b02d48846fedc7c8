"""Admin authentication: every 401 / 403 / 503 case through the real app (tokens signed by a test
key whose certificate a local HTTP server serves), plus the certificate cache and allow-list."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from refundguard.config import ConfigError
from refundguard.errors import Kind, RefundGuardError
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner, bearer, cert_server

ADMIN = "admin@example.com"
ROUTE = "/entitlements/google/some-token"


@pytest.fixture
def signer() -> TestSigner:
    return TestSigner("key-1")


@pytest.fixture
def certs(signer: TestSigner) -> Iterator[CertServer]:
    with cert_server(signer) as server:
        yield server


@pytest.fixture
def admin_env(emulator_env: dict[str, str], certs: CertServer) -> dict[str, str]:
    return {
        "ADMIN_AUDIENCES": f"{AUDIENCE},32555940559.apps.googleusercontent.com",
        "ADMIN_EMAILS": f"{ADMIN}, *@corp.example, *@proj-1234.iam.gserviceaccount.com",
        "ADMIN_CERTS_URL": certs.url,
    }


@pytest.fixture
def client(make_client: Any, admin_env: dict[str, str]) -> Any:
    return make_client("admin", **admin_env)


def _assert_401(response: Any, code: str) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# ------------------------------------------------------------------------------- 401


def test_no_authorization_header(client: Any) -> None:
    _assert_401(client.get(ROUTE), "missing_token")


@pytest.mark.parametrize("header", ["Basic YWRtaW46cGFzcw==", "Bearer", "Bearer   ", "token abc"])
def test_not_a_bearer_token(client: Any, header: str) -> None:
    _assert_401(client.get(ROUTE, headers={"Authorization": header}), "not_bearer")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "a.b", "x" * 9000, "eyJ.eyJ.!!"])
def test_garbage_token(client: Any, token: str) -> None:
    response = client.get(ROUTE, headers=bearer(token))
    _assert_401(response, "malformed_token")
    assert token not in response.get_data(as_text=True)


def test_expired_token(client: Any, signer: TestSigner) -> None:
    token = signer.token(ADMIN, issued_at=int(time.time()) - 7200, lifetime_s=3600)
    _assert_401(client.get(ROUTE, headers=bearer(token)), "token_expired")


def test_token_from_the_future(client: Any, signer: TestSigner) -> None:
    token = signer.token(ADMIN, issued_at=int(time.time()) + 600)
    _assert_401(client.get(ROUTE, headers=bearer(token)), "token_not_yet_valid")


def test_wrong_signature_same_key_id(client: Any) -> None:
    impostor = TestSigner("key-1", key_name="impostor")  # claims Google's key id, other key
    _assert_401(client.get(ROUTE, headers=bearer(impostor.token(ADMIN))), "bad_token_signature")


def test_tampered_payload(client: Any, signer: TestSigner) -> None:
    head, _, sig = signer.token("someone@else.com").split(".")
    claims = json.loads(base64.urlsafe_b64decode(signer.token(ADMIN).split(".")[1] + "=="))
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _assert_401(client.get(ROUTE, headers=bearer(f"{head}.{payload}.{sig}")), "bad_token_signature")


def test_unknown_key_id(client: Any, certs: CertServer) -> None:
    other = TestSigner("key-unknown")
    _assert_401(client.get(ROUTE, headers=bearer(other.token(ADMIN))), "unknown_token_key")


def test_no_key_id(client: Any, signer: TestSigner) -> None:
    token = signer.token(ADMIN, kid="")
    _assert_401(client.get(ROUTE, headers=bearer(token)), "bad_token_key")


def test_unsigned_alg_none_token(client: Any) -> None:
    def seg(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": ADMIN,
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
    }
    for alg in ("none", "HS256", "ES256"):
        token = f"{seg({'alg': alg, 'kid': 'key-1'})}.{seg(claims)}.c2ln"
        _assert_401(client.get(ROUTE, headers=bearer(token)), "bad_token_algorithm")


@pytest.mark.parametrize(
    "issuer",
    ["https://evil.example", "accounts.google.com.evil", None, "https://securetoken.google.com/p"],
)
def test_wrong_issuer(client: Any, signer: TestSigner, issuer: str | None) -> None:
    token = signer.token(ADMIN, issuer=issuer)
    _assert_401(client.get(ROUTE, headers=bearer(token)), "wrong_issuer")


def test_both_google_issuer_spellings_accepted(client: Any, signer: TestSigner) -> None:
    for issuer in ("accounts.google.com", "https://accounts.google.com"):
        response = client.get(ROUTE, headers=bearer(signer.token(ADMIN, issuer=issuer)))
        # authenticated: past the gate, no such entitlement
        assert response.status_code == 404, response.get_json()


@pytest.mark.parametrize("audience", ["https://other.example.run.app", None, AUDIENCE + "/"])
def test_wrong_audience(client: Any, signer: TestSigner, audience: str | None) -> None:
    token = signer.token(ADMIN, audience=audience)
    _assert_401(client.get(ROUTE, headers=bearer(token)), "wrong_audience")


def test_list_audience_is_rejected(client: Any, signer: TestSigner) -> None:
    token = signer.token(ADMIN, audience=[AUDIENCE, "other"])  # type: ignore[arg-type]
    _assert_401(client.get(ROUTE, headers=bearer(token)), "wrong_audience")


@pytest.mark.parametrize("verified", [False, None, "true", 1])
def test_email_not_verified(client: Any, signer: TestSigner, verified: Any) -> None:
    token = signer.token(ADMIN, email_verified=verified)
    _assert_401(client.get(ROUTE, headers=bearer(token)), "email_not_verified")


def test_no_email(client: Any, signer: TestSigner) -> None:
    _assert_401(client.get(ROUTE, headers=bearer(signer.token(None))), "no_email")


# ------------------------------------------------------------------------------- 403 / allowed


def test_valid_token_of_someone_not_allowed(client: Any, signer: TestSigner) -> None:
    response = client.get(ROUTE, headers=bearer(signer.token("mallory@example.com")))
    assert response.status_code == 403
    assert response.get_json()["error"] == "not_an_admin"


def test_email_is_compared_lower_cased(client: Any, signer: TestSigner) -> None:
    response = client.get(ROUTE, headers=bearer(signer.token("Admin@Example.COM")))
    assert response.status_code == 404  # allowed: past auth, no such entitlement


def test_domain_wildcard_needs_matching_hosted_domain(client: Any, signer: TestSigner) -> None:
    allowed = client.get(ROUTE, headers=bearer(signer.token("bob@corp.example", hd="corp.example")))
    assert allowed.status_code == 404
    for hd in (None, "other.example"):
        token = signer.token("bob@corp.example", hd=hd)
        assert client.get(ROUTE, headers=bearer(token)).status_code == 403
    lookalike = signer.token("bob@evilcorp.example", hd="evilcorp.example")
    assert client.get(ROUTE, headers=bearer(lookalike)).status_code == 403
    sub = signer.token("bob@x.corp.example", hd="corp.example")
    assert client.get(ROUTE, headers=bearer(sub)).status_code == 403


def test_service_account_domain_wildcard(client: Any, signer: TestSigner) -> None:
    token = signer.token("ops@proj-1234.iam.gserviceaccount.com")  # no hd, as Google issues them
    assert client.get(ROUTE, headers=bearer(token)).status_code == 404
    other = signer.token("ops@other.iam.gserviceaccount.com")
    assert client.get(ROUTE, headers=bearer(other)).status_code == 403


def test_any_listed_audience_is_accepted(client: Any, signer: TestSigner) -> None:
    token = signer.token(ADMIN, audience="32555940559.apps.googleusercontent.com")
    assert client.get(ROUTE, headers=bearer(token)).status_code == 404


# ------------------------------------------------------------------------------- before anything


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/entitlements/nostore/x"),
        ("GET", "/nothing/here/at/all/really"),
        ("POST", "/entitlements/google/x/regrant"),
        ("DELETE", "/entitlements/google/x"),
    ],
)
def test_unauthenticated_caller_learns_nothing(client: Any, method: str, path: str) -> None:
    response = client.open(path, method=method, data=b"{not json")
    _assert_401(response, "missing_token")


def test_forbidden_caller_learns_nothing(client: Any, signer: TestSigner) -> None:
    token = signer.token("mallory@example.com")
    for path in ("/entitlements/nostore/x", "/nowhere"):
        assert client.get(path, headers=bearer(token)).status_code == 403


# ------------------------------------------------------------------------------- certificates


def test_certificates_are_cached_between_requests(
    client: Any, signer: TestSigner, certs: CertServer
) -> None:
    for _ in range(3):
        assert client.get(ROUTE, headers=bearer(signer.token(ADMIN))).status_code == 404
    assert certs.requests == 1


def test_unknown_key_id_refetch_is_rate_limited(
    client: Any, signer: TestSigner, certs: CertServer
) -> None:
    assert client.get(ROUTE, headers=bearer(signer.token(ADMIN))).status_code == 404
    for i in range(5):
        _assert_401(
            client.get(ROUTE, headers=bearer(TestSigner(f"made-up-{i}").token(ADMIN))),
            "unknown_token_key",
        )
    assert certs.requests == 1  # fetched moments ago: no refetch storm


def test_certificate_endpoint_down_is_503(
    make_client: Any, admin_env: dict[str, str], signer: TestSigner, certs: CertServer
) -> None:
    certs.status = 500
    client = make_client("admin", **admin_env)
    response = client.get(ROUTE, headers=bearer(signer.token(ADMIN)))
    assert response.status_code == 503
    assert response.get_json()["error"] == "keys_unavailable"
    assert "Retry-After" in response.headers


def test_certificate_endpoint_unreachable_is_503(
    make_client: Any, admin_env: dict[str, str], signer: TestSigner
) -> None:
    with cert_server(signer) as gone:
        url = gone.url
    client = make_client("admin", **{**admin_env, "ADMIN_CERTS_URL": url})
    assert client.get(ROUTE, headers=bearer(signer.token(ADMIN))).status_code == 503


def test_bearer_token_is_never_logged(
    client: Any, signer: TestSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = [
        signer.token(ADMIN),
        signer.token("mallory@example.com"),
        signer.token(ADMIN, audience="x"),
        TestSigner("key-1", "imp").token(ADMIN),
    ]
    for token in tokens:
        client.get(ROUTE, headers=bearer(token))
    out = capsys.readouterr()
    for token in tokens:
        assert token.split(".")[2] not in out.out + out.err
        assert token.split(".")[1] not in out.out + out.err


# ------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"ADMIN_AUDIENCES": ""}, "ADMIN_AUDIENCES must be set"),
        ({"ADMIN_EMAILS": ""}, "ADMIN_EMAILS must list"),
        ({"ADMIN_EMAILS": "not-an-email"}, "neither an email nor"),
        ({"ADMIN_EMAILS": "*@"}, "not a valid *@domain"),
        ({"ADMIN_EMAILS": "a*@example.com"}, "neither an email nor"),
        ({"ADMIN_EMAILS": "*@developer.gserviceaccount.com"}, "shared across projects"),
        ({"ADMIN_EMAILS": "*@appspot.gserviceaccount.com"}, "shared across projects"),
        ({"ADMIN_EMAILS": "*@gserviceaccount.com"}, "shared across projects"),
        ({"ADMIN_EMAILS": "*@cloudbuild.gserviceaccount.com"}, "shared across projects"),
        ({"ADMIN_EMAILS": "*@gcp-sa-pubsub.iam.gserviceaccount.com"}, "shared across projects"),
        ({"ADMIN_CERTS_URL": "http://certs.example.com/certs"}, "ADMIN_CERTS_URL must be"),
        ({"ADMIN_CERTS_URL": "ftp://x"}, "ADMIN_CERTS_URL must be"),
    ],
)
def test_bad_configuration_refuses_to_start(override: dict[str, str], problem: str) -> None:
    from refundguard.adminapi.settings import AdminSettings

    env = {"ADMIN_AUDIENCES": AUDIENCE, "ADMIN_EMAILS": ADMIN, **override}
    with pytest.raises(ConfigError) as info:
        AdminSettings.from_env(env)
    assert len(info.value.problems) == 1 and problem in info.value.problems[0]


def test_every_configuration_problem_is_named_at_once(
    emulator_env: dict[str, str], refused_start: Any
) -> None:
    problems = refused_start(
        "admin",
        ADMIN_AUDIENCES="",
        ADMIN_EMAILS="*@developer.gserviceaccount.com, nobody",
        ADMIN_CERTS_URL="http://keys.example.com/",
        FIRESTORE_DEADLINE_SECONDS="0",
    )
    assert len(problems) == 5, problems


def test_a_projects_own_service_account_domain_is_accepted() -> None:
    from refundguard.adminapi.settings import AdminSettings

    settings = AdminSettings.from_env(
        {"ADMIN_AUDIENCES": AUDIENCE, "ADMIN_EMAILS": "*@my-project-42.iam.gserviceaccount.com"}
    )
    assert settings.auth.allow_list.allows("support@my-project-42.iam.gserviceaccount.com", None)
    assert not settings.auth.allow_list.allows("x@other-project.iam.gserviceaccount.com", None)


def test_default_keys_url_is_googles() -> None:
    from refundguard.adminapi.settings import AdminSettings

    settings = AdminSettings.from_env({"ADMIN_AUDIENCES": AUDIENCE, "ADMIN_EMAILS": ADMIN})
    assert settings.auth.verifier.keys.url == "https://www.googleapis.com/oauth2/v3/certs"


# ------------------------------------------------------------------------------- key set (unit)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _jwks(*kids: str) -> dict[str, Any]:
    return {"keys": [TestSigner(kid, "unit").jwk for kid in kids]}


class FakeFetch:
    def __init__(self, jwks: dict[str, Any], cache_control: str | None = "max-age=600") -> None:
        self.jwks = jwks
        self.cache_control = cache_control
        self.calls = 0
        self.fail = False

    def __call__(self, url: str, timeout_s: float) -> tuple[bytes, str | None]:
        self.calls += 1
        if self.fail:
            raise OSError("network down")
        return json.dumps(self.jwks).encode(), self.cache_control


def _keys(fetch: FakeFetch, clock: FakeClock, **kw: Any) -> Any:
    from refundguard.oidc import KeySet

    return KeySet("https://keys.test/", fetch=fetch, clock=clock, **kw)


def test_keys_respect_max_age_and_clamp_it() -> None:
    clock, fetch = FakeClock(), FakeFetch(_jwks("a"), "public, max-age=600, must-revalidate")
    keys = _keys(fetch, clock)
    keys.key("a")
    clock.now += 599
    keys.key("a")
    assert fetch.calls == 1
    clock.now += 2
    keys.key("a")
    assert fetch.calls == 2

    clock2, huge = FakeClock(), FakeFetch(_jwks("a"), "max-age=99999999")
    keys2 = _keys(huge, clock2, max_ttl_s=3600)
    keys2.key("a")
    clock2.now += 3601
    keys2.key("a")
    assert huge.calls == 2


def test_keys_follow_rotation_rate_limited() -> None:
    clock, fetch = FakeClock(), FakeFetch(_jwks("a"))
    keys = _keys(fetch, clock, refetch_interval_s=30)
    keys.key("a")
    fetch.jwks = _jwks("a", "b")
    assert keys.key("b") is None  # fetched just now: no refetch
    clock.now += 31
    assert keys.key("b") is not None  # rotation: one refetch finds it
    assert fetch.calls == 2
    keys.key("b")
    assert fetch.calls == 2


def test_keys_in_use_survive_a_failed_refresh_for_a_while() -> None:
    clock, fetch = FakeClock(), FakeFetch(_jwks("a"), "max-age=600")
    keys = _keys(fetch, clock, stale_grace_s=300)
    keys.key("a")
    fetch.fail = True
    clock.now += 700  # expired, within grace
    assert keys.key("a") is not None
    clock.now += 300  # beyond grace
    with pytest.raises(RefundGuardError) as info:
        keys.key("a")
    assert info.value.kind is Kind.TRANSIENT


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"keys": []}',
        b'{"keys": {"a": 1}}',
        b'{"keys": [{"kty": "RSA", "kid": "a"}]}',
        b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]}',
        json.dumps(_jwks(*(str(i) for i in range(40)))).encode(),
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_unexpected_key_documents_are_transient(body: bytes) -> None:
    from refundguard.oidc import KeySet

    keys = KeySet("https://keys.test/", fetch=lambda url, t: (body, None))
    with pytest.raises(RefundGuardError) as info:
        keys.key("a")
    assert info.value.kind is Kind.TRANSIENT


def test_http_fetch_against_real_server(signer: TestSigner) -> None:
    from refundguard.oidc import KeySet

    with cert_server(signer, max_age=120) as server:
        keys = KeySet(server.url)
        assert keys.key("key-1") is not None
        assert keys.expires_at - time.monotonic() == pytest.approx(120, abs=5)


# ------------------------------------------------------------------------------- allow-list


def test_allow_list_entries() -> None:
    from refundguard.oidc import AllowList

    allow = AllowList(["Alice@Example.com", "*@Corp.Example"], setting="ADMIN_EMAILS")
    assert allow.allows("alice@example.com", None)
    assert allow.allows("ALICE@example.com", None)
    assert not allow.allows("bob@example.com", "example.com")
    assert allow.allows("bob@corp.example", "corp.example")
    assert allow.allows("bob@corp.example", "CORP.example")
    assert not allow.allows("bob@corp.example", None)
    assert not allow.allows("corp.example@evil.example", "evil.example")


def test_local_settings_start_the_function() -> None:
    from refundguard.adminapi.settings import AdminSettings
    from refundguard_dev.local import admin_env as local_env

    env = local_env(8083, {})
    auth = AdminSettings.from_env(env).auth
    assert auth.verifier.audiences == ("http://127.0.0.1:8083", "http://localhost:8083")
    assert not auth.allow_list.allows("anyone@example.com", "example.com")
    assert local_env(8083, {"ADMIN_EMAILS": "me@example.com"})["ADMIN_EMAILS"] == "me@example.com"
