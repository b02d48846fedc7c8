"""``tenant_keys.TenantKeys`` and ``kms.KmsClient`` against the Cloud KMS stand-in over real HTTP
(google-auth's token flow included): a tenant's .p8 sealed and opened; what is stored is never the
key; a ciphertext moved to another tenant or key id never opens (AAD); KMS's documented errors
each answered with the fix (the missing IAM role named); the CRC32C integrity fields checked both
ways; bad keys refused before KMS is asked."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.oauth2 import service_account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refundguard import kms
from refundguard.config import ConfigError, Settings
from refundguard.errors import Kind, RefundGuardError
from refundguard.kms import KmsClient, KmsSettings, crc32c, read_kms_settings
from refundguard.tenant_keys import SEALED_PREFIX, TenantKeys, canonical_pem
from refundguard_dev.fake_appstore_api import new_api_key
from refundguard_dev.fake_kms import DEFAULT_ACCOUNT, DEFAULT_KEY, FakeKms, Fault
from refundguard_dev.fake_kms import crc32c as oracle_crc32c
from support import STORE_API_POLICY

P8 = new_api_key("KEYAAAA001").pem
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
tenant_ids = st.from_regex(r"[a-z][a-z0-9-]{1,10}[a-z0-9]", fullmatch=True)
key_ids = st.from_regex(r"[A-Z0-9]{10}", fullmatch=True)


@pytest.fixture(scope="module")
def fake_kms() -> Iterator[FakeKms]:
    with FakeKms() as server:
        yield server


@pytest.fixture(scope="module")
def key_file(fake_kms: FakeKms, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_kms.write_service_account_key(tmp_path_factory.mktemp("kms") / "sa.json")


@pytest.fixture
def server(fake_kms: FakeKms) -> Iterator[FakeKms]:
    yield fake_kms
    with fake_kms.lock:  # what a test switched on does not reach the next one
        fake_kms.faults.clear()
        fake_kms.denied.clear()
        fake_kms.disabled.clear()
        fake_kms.wrong_checksums = fake_kms.unverified = 0


def client_of(server: FakeKms, key_file: Path, key: str = DEFAULT_KEY) -> KmsClient:
    credentials = service_account.Credentials.from_service_account_info(
        {
            **json.loads(key_file.read_text()),
            "token_uri": server.token_uri,
        },
        scopes=[kms.SCOPE],
    )
    return KmsClient(KmsSettings(key, server.url, credentials), policy=STORE_API_POLICY)


@pytest.fixture
def keys(server: FakeKms, key_file: Path) -> TenantKeys:
    return TenantKeys(client_of(server, key_file), clock_ms=lambda: 1_700_000_000_000)


# ---------------------------------------------------------------------------------- round trip


def test_a_sealed_key_opens_for_its_tenant_and_is_never_the_key(keys: TenantKeys) -> None:
    sealed = keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert (sealed.key_id, sealed.issuer_id, sealed.added_ms) == (
        "KEYAAAA001",
        ISSUER,
        1_700_000_000_000,
    )
    assert sealed.sealed.startswith(SEALED_PREFIX)
    body = "".join(P8.strip().splitlines()[1:-1])
    for text in (sealed.sealed, repr(sealed), str(dataclasses.asdict(sealed))):
        assert "PRIVATE KEY" not in text and body[:40] not in text
    opened = keys.open("creator-a", sealed)
    assert opened.strip() == P8.strip()


def test_a_key_pasted_as_one_line_with_escapes_is_sealed_as_its_pem(keys: TenantKeys) -> None:
    one_line = P8.strip().replace("\n", "\\n")
    sealed = keys.seal("creator-a", "KEYAAAA001", ISSUER, one_line)
    assert keys.open("creator-a", sealed).strip() == P8.strip()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=st.tuples(tenant_ids, key_ids), b=st.tuples(tenant_ids, key_ids))
def test_a_ciphertext_opens_only_for_the_tenant_and_key_id_it_was_sealed_for(
    keys: TenantKeys, a: tuple[str, str], b: tuple[str, str]
) -> None:
    sealed = keys.seal(a[0], a[1], ISSUER, P8)
    moved = dataclasses.replace(sealed, key_id=b[1])
    if a == b:
        assert keys.open(b[0], moved).strip() == P8.strip()
        return
    with pytest.raises(RefundGuardError) as refused:
        keys.open(b[0], moved)
    assert refused.value.kind is Kind.UNPROCESSABLE
    assert refused.value.code == "apple_key_unreadable"
    assert "upload the key again" in refused.value.message


@pytest.mark.parametrize(
    "sealed", ["", "kms1:not base64!", "plain:" + base64.b64encode(b"x").decode(), "kms1:AAAA"]
)
def test_a_sealed_value_that_is_not_a_kms_ciphertext_is_refused_clearly(
    keys: TenantKeys, sealed: str
) -> None:
    key = dataclasses.replace(keys.seal("creator-a", "KEYAAAA001", ISSUER, P8), sealed=sealed)
    with pytest.raises(RefundGuardError) as refused:
        keys.open("creator-a", key)
    assert refused.value.code == "apple_key_unreadable"


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("key_id", "issuer", "pem", "code"),
    [
        ("KEYAAAA001", ISSUER, "not a key", "bad_private_key"),
        ("KEYAAAA001", ISSUER, "", "bad_private_key"),
        ("KEYAAAA001", ISSUER, None, "bad_private_key"),
        ("KEYAAAA001", "not-a-uuid", P8, "bad_issuer_id"),
        ("key id!", ISSUER, P8, "bad_key_id"),
        ("", ISSUER, P8, "bad_key_id"),
    ],
)
def test_a_bad_key_is_refused_before_kms_is_asked(
    keys: TenantKeys, server: FakeKms, key_id: str, issuer: str, pem: str, code: str
) -> None:
    asked = server.count(":encrypt")
    with pytest.raises(RefundGuardError) as refused:
        keys.seal("creator-a", key_id, issuer, pem)
    assert refused.value.kind is Kind.REJECTED and refused.value.code == code
    assert server.count(":encrypt") == asked


def test_an_rsa_key_is_not_an_app_store_key(keys: TenantKeys) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(RefundGuardError) as refused:
        keys.seal("creator-a", "KEYAAAA001", ISSUER, rsa_pem)
    assert refused.value.code == "bad_private_key"
    assert "PRIVATE KEY" not in refused.value.message


# ---------------------------------------------------------------------------------- KMS errors


def test_kms_unavailable_is_transient_after_the_retries(keys: TenantKeys, server: FakeKms) -> None:
    server.fail_next(*[Fault(status=503) for _ in range(STORE_API_POLICY.attempts)])
    with pytest.raises(RefundGuardError) as failed:
        keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert failed.value.kind is Kind.TRANSIENT and failed.value.code == "kms_unavailable"


def test_one_unavailable_answer_is_retried(keys: TenantKeys, server: FakeKms) -> None:
    server.fail_next(Fault(status=503))
    sealed = keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert keys.open("creator-a", sealed).strip() == P8.strip()


def test_kms_unreachable_is_transient(key_file: Path) -> None:
    with FakeKms() as gone:
        keys = TenantKeys(client_of(gone, key_file))
    with pytest.raises(RefundGuardError) as failed:
        keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert failed.value.kind is Kind.TRANSIENT


@pytest.mark.parametrize(
    ("action", "role"),
    [
        ("encrypt", "roles/cloudkms.cryptoKeyEncrypter"),
        ("decrypt", "roles/cloudkms.cryptoKeyDecrypter"),
    ],
)
def test_permission_denied_names_the_missing_role(
    keys: TenantKeys, server: FakeKms, action: str, role: str
) -> None:
    sealed = keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    server.deny(DEFAULT_ACCOUNT, action)
    with pytest.raises(RefundGuardError) as failed:
        if action == "encrypt":
            keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
        else:
            keys.open("creator-a", sealed)
    assert failed.value.code == "kms_permission_denied"
    assert role in failed.value.message and failed.value.details["missing_role"] == role
    assert failed.value.kind is Kind.TRANSIENT  # fixed by an operator, then retried


def test_an_unknown_key_says_to_check_the_setting(server: FakeKms, key_file: Path) -> None:
    keys = TenantKeys(client_of(server, key_file, key=DEFAULT_KEY + "-missing"))
    with pytest.raises(RefundGuardError) as failed:
        keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert failed.value.code == "kms_key_not_found"
    assert "TENANT_KEYS_KMS_KEY" in failed.value.message


def test_a_disabled_key_is_refused_with_the_fix(keys: TenantKeys, server: FakeKms) -> None:
    server.disable()
    with pytest.raises(RefundGuardError) as failed:
        keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert failed.value.code == "kms_refused" and "enable" in failed.value.message


def test_rotated_kms_versions_still_open_older_ciphertexts(
    keys: TenantKeys, server: FakeKms
) -> None:
    old = keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    server.rotate()
    new = keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert keys.open("creator-a", old) == keys.open("creator-a", new)


# ---------------------------------------------------------------------------------- CRC32C


@given(st.binary(max_size=300))
def test_crc32c_matches_an_independent_implementation(data: bytes) -> None:
    assert crc32c(data) == oracle_crc32c(data)


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def test_every_request_carries_its_checksums(keys: TenantKeys, server: FakeKms) -> None:
    sealed = keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    keys.open("creator-a", sealed)
    encrypt = [r for r in server.requests if r.path.endswith(":encrypt")][-1].json()
    decrypt = [r for r in server.requests if r.path.endswith(":decrypt")][-1].json()
    assert int(encrypt["plaintextCrc32c"]) == crc32c(base64.b64decode(encrypt["plaintext"]))
    assert int(encrypt["additionalAuthenticatedDataCrc32c"]) == crc32c(
        base64.b64decode(encrypt["additionalAuthenticatedData"])
    )
    assert int(decrypt["ciphertextCrc32c"]) == crc32c(base64.b64decode(decrypt["ciphertext"]))


@pytest.mark.parametrize("switch", ["wrong_checksums", "unverified"])
def test_an_answer_that_fails_its_checksum_is_asked_again(
    keys: TenantKeys, server: FakeKms, switch: str
) -> None:
    setattr(server, switch, 1)
    before = server.count(":encrypt")
    sealed = keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert server.count(":encrypt") == before + 2
    server.wrong_checksums = 1
    assert keys.open("creator-a", sealed).strip() == P8.strip()


def test_answers_that_keep_failing_their_checksum_are_a_transient_bad_answer(
    keys: TenantKeys, server: FakeKms
) -> None:
    server.wrong_checksums = kms.CHECKSUM_ATTEMPTS
    with pytest.raises(RefundGuardError) as failed:
        keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    assert failed.value.kind is Kind.TRANSIENT and failed.value.code == "kms_unavailable"


# ---------------------------------------------------------------------------------- settings


def test_settings_name_a_crypto_key_and_a_local_url_only_with_a_key_file(tmp_path: Path) -> None:
    assert read_kms_settings(Settings({})) is None
    s = Settings({"TENANT_KEYS_KMS_KEY": "projects/p/keyRings/r"})
    assert read_kms_settings(s) is None and "TENANT_KEYS_KMS_KEY" in s.problems[0]
    s = Settings({"TENANT_KEYS_KMS_KEY": DEFAULT_KEY, "TENANT_KEYS_KMS_BASE_URL": "http://x.com"})
    assert read_kms_settings(s) is None and "TENANT_KEYS_KMS_BASE_URL" in s.problems[0]
    s = Settings(
        {"TENANT_KEYS_KMS_KEY": DEFAULT_KEY, "TENANT_KEYS_KMS_BASE_URL": "http://127.0.0.1:9"}
    )
    assert read_kms_settings(s) is None and "GOOGLE_APPLICATION_CREDENTIALS" in s.problems[0]
    with pytest.raises(ConfigError):
        s.done()
    deployed = read_kms_settings(Settings({"TENANT_KEYS_KMS_KEY": DEFAULT_KEY}))
    assert deployed == KmsSettings(DEFAULT_KEY, kms.DEFAULT_BASE_URL)


# ---------------------------------------------------------------------------------- check access


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.sampled_from(["ok", "refused", "unreachable"]),
        max_size=6,
    )
)
def test_apple_states_from_each_apps_answer(results: dict[str, str]) -> None:
    from refundguard import store_access as sa

    state = sa.classify_apple(results)
    values = set(results.values())
    if not values or values == {"ok"}:
        assert state == sa.OK
    elif values == {"refused"}:
        assert state == sa.KEY_REFUSED  # every app refused: the key, not a bundle
    elif "refused" in values:
        assert state == sa.WRONG_BUNDLE  # the key works for another app of the tenant
    else:
        assert state == sa.UNREACHABLE


def test_google_states_from_the_play_apis_refusals() -> None:
    from refundguard import store_access as sa
    from refundguard.storeapi import (
        StoreAuthError,
        StoreNotFoundError,
        StoreQuotaError,
        StoreUnavailableError,
    )

    def auth(message: str, status: int | None = 403) -> StoreAuthError:
        return StoreAuthError(message, store="google", operation="x", status=status)

    assert sa.classify_google(auth("The caller does not have permission")) == sa.NOT_INVITED
    assert sa.classify_google(auth("it is disabled. Enable it by visiting")) == sa.API_OFF
    assert sa.classify_google(auth("the token endpoint refused", status=None)) == sa.KEY_REFUSED
    assert sa.classify_google(StoreNotFoundError("x", store="google", operation="x")) == (
        sa.WRONG_BUNDLE
    )
    for err in (StoreUnavailableError, StoreQuotaError):
        assert sa.classify_google(err("x", store="google", operation="x")) == sa.UNREACHABLE
    assert sa.worst({"a": sa.OK, "b": sa.NOT_INVITED, "c": sa.UNREACHABLE}) == sa.NOT_INVITED


def test_an_error_quoting_the_request_never_carries_the_key(
    keys: TenantKeys, server: FakeKms
) -> None:
    quoted = base64.b64encode(canonical_pem(P8)).decode()
    body = {
        "error": {
            "code": 400,
            "message": f"Invalid value at 'plaintext' (TYPE_BYTES), \"{quoted}\"",
            "status": "INVALID_ARGUMENT",
        }
    }
    server.fail_next(Fault(status=400, body=json.dumps(body).encode()))
    with pytest.raises(RefundGuardError) as failed:
        keys.seal("creator-a", "KEYAAAA001", ISSUER, P8)
    text = f"{failed.value.message} {failed.value.details}"
    assert quoted[:40] not in text and failed.value.code == "kms_refused"


# ---------------------------------------------------------------------------------- routes


@given(tenant=tenant_ids, prefix=st.sampled_from(["", "/refundguard-admin"]))
def test_a_tenants_routes_bind_its_id_with_or_without_the_function_name(
    tenant: str, prefix: str
) -> None:
    from refundguard.adminapi import routes

    check = routes.match("POST", f"{prefix}/tenants/{tenant}:check-access")
    assert (check.name, check.params) == ("tenant_check_access", {"tenant": tenant})
    put = routes.match("PUT", f"{prefix}/tenants/{tenant}/apple-key")
    assert (put.name, put.params) == ("tenant_apple_key_put", {"tenant": tenant})
    delete = routes.match("DELETE", f"{prefix}/tenants/{tenant}/apple-key/KEY1")
    assert delete.params == {"tenant": tenant, "key_id": "KEY1"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/tenants/:check-access"),  # no id before the verb
        ("POST", "/tenants/t1:check"),
        ("GET", "/tenants/t1:check-access"),
        ("POST", "/tenants/t1/apple-key"),
        ("POST", "/play/service-account"),
    ],
)
def test_what_is_not_a_tenants_route(method: str, path: str) -> None:
    from refundguard.adminapi import routes

    try:
        route = routes.match(method, path)
    except RefundGuardError as refused:
        assert refused.http_status in (404, 405)
        return
    assert route.name not in ("tenant_check_access", "tenant_apple_key_put", "play_account")
