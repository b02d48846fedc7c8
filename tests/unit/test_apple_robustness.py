"""Any input to the Apple verifier ends in ``AppleVerificationError`` (HTTP 400), never another
exception: generated text, bytes, JSON and nesting (hypothesis), validly signed payloads with odd
field types, and every exception PyJWT can raise. No emulator needed."""

from __future__ import annotations

import base64
import inspect
import json
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt import exceptions as jwt_exceptions
from refundguard.appstore.verifier import (
    _JWS,
    _JWT,
    PRODUCTION,
    SANDBOX,
    AppleVerificationError,
    AppleVerifier,
    VerificationStatus,
    _PyJWS,
)
from refundguard.errors import Kind
from refundguard_dev.apple_pki import (
    APP_APPLE_ID,
    BUNDLE_ID,
    SIGNED_DATE_MS,
    b64url,
    default_pki,
    notification_payload,
    sign_jws,
    sign_notification,
    transaction_payload,
)

S = VerificationStatus
GENERATED = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def verifier(**kw: Any) -> AppleVerifier:
    kw.setdefault("environments", [PRODUCTION, SANDBOX])
    kw.setdefault("app_apple_id", APP_APPLE_ID)
    return AppleVerifier([default_pki().root_der], bundle_ids=[BUNDLE_ID], **kw)


V = verifier()


def outcome(token: Any, v: AppleVerifier = V) -> VerificationStatus | None:
    """None when the notification verifies; its status when it is refused; anything else fails."""
    try:
        v.verify_notification(token)
    except AppleVerificationError as err:
        assert err.kind is Kind.REJECTED and err.http_status == 400
        assert err.code == f"apple_{err.status.code}"
        return err.status
    return None


def signed(payload: dict[str, Any] | bytes, **kw: Any) -> str:
    return default_pki().sign(payload, **kw)


def signed_notification(**data: Any) -> str:
    """A Sandbox TEST notification whose ``data`` fields are replaced by ``data``."""
    payload = notification_payload("TEST")
    payload["data"].update(data)
    return signed(payload)


def with_date_literal(literal: str) -> str:
    body = json.dumps(notification_payload("TEST"), separators=(",", ":"))
    edited = body.replace(f'"signedDate":{SIGNED_DATE_MS}', f'"signedDate":{literal}')
    assert edited != body
    return signed(edited.encode())


VALID = sign_notification("REFUND")
NON_UTF8 = b64url(b"\xff\xfe{")  # a header segment that is not UTF-8 (nor UTF-16/32) JSON


def test_the_baseline_verifies() -> None:
    assert outcome(VALID) is None


# --------------------------------------------------------------------------- generated input

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
#: Values a field is tried with: arbitrary JSON, and the near-misses of the right value.
field_values = json_values | st.sampled_from(
    [BUNDLE_ID, [BUNDLE_ID], {BUNDLE_ID: 1}, PRODUCTION, SANDBOX, [SANDBOX], APP_APPLE_ID,
     float(APP_APPLE_ID), str(APP_APPLE_ID), True, "", VALID]
)  # fmt: skip


def _segment(value: Any) -> str:
    return b64url(json.dumps(value).encode())


@GENERATED
@given(token=st.text(st.characters(codec=None, exclude_categories=()), max_size=300))
def test_any_text_is_refused_cleanly(token: str) -> None:
    assert outcome(token) is not None


@GENERATED
@given(raw=st.binary(max_size=300), dots=st.integers(min_value=0, max_value=4))
def test_any_bytes_are_refused_cleanly(raw: bytes, dots: int) -> None:
    text = raw.decode("utf-8", "surrogateescape")  # lone surrogates for the non-UTF-8 bytes
    assert outcome(text + "." * dots) is not None
    assert outcome(".".join([b64url(raw)] * 3)) is not None


@GENERATED
@given(header=json_values, payload=json_values, signature=st.binary(max_size=80))
def test_any_json_segments_are_refused_cleanly(header: Any, payload: Any, signature: bytes) -> None:
    token = f"{_segment(header)}.{_segment(payload)}.{b64url(signature)}"
    assert outcome(token) is not None


@GENERATED
@given(
    extra=st.dictionaries(st.sampled_from(["alg", "x5c", "kid", "crit", "b64", "typ"]), json_values)
)
def test_any_header_values_on_a_signed_token_end_in_the_one_exception(
    extra: dict[str, Any],
) -> None:
    outcome(signed(notification_payload("TEST"), header=extra))  # may verify (e.g. kid="x")


@GENERATED
@given(depth=st.integers(min_value=1, max_value=3000), opener=st.sampled_from(["[", '{"a":', '["']))
def test_any_nesting_is_refused_cleanly(depth: int, opener: str) -> None:
    nested = b64url((opener * depth).encode())
    good_header, good_payload, good_signature = VALID.split(".")
    assert outcome(f"{nested}.{good_payload}.{good_signature}") is not None
    assert outcome(f"{good_header}.{nested}.{good_signature}") is not None
    assert outcome(signed((opener * depth).encode())) is S.MALFORMED  # signed: PyJWT refuses it


@pytest.mark.parametrize("opener", ["[", "{", '{"a":', '{"a":['])
@pytest.mark.parametrize("where", ["header", "payload", "signed_payload", "inner_payload"])
def test_2kb_of_nesting_is_malformed(opener: str, where: str) -> None:
    """json raises RecursionError (or ValueError) on these; PyJWT turns both into DecodeError. An
    unsigned payload may fail its signature first (PyJWT checks it before parsing the payload)."""
    nested = (opener * (2048 // len(opener))).encode()
    header, payload, signature = VALID.split(".")
    token = {
        "header": lambda: f"{b64url(nested)}.{payload}.{signature}",
        "payload": lambda: f"{header}.{b64url(nested)}.{signature}",
        "signed_payload": lambda: signed(nested),
        "inner_payload": lambda: signed_notification(signedTransactionInfo=signed(nested)),
    }[where]()
    expected = {S.MALFORMED, S.INVALID_SIGNATURE} if where == "payload" else {S.MALFORMED}
    assert outcome(token) in expected
    assert outcome(token, verifier()) in expected  # nothing cached


@GENERATED
@given(
    field=st.sampled_from(
        ["bundleId", "environment", "appAppleId", "signedTransactionInfo", "signedRenewalInfo"]
    ),
    value=field_values,
)
def test_any_value_of_a_data_field_in_a_signed_notification(field: str, value: Any) -> None:
    status = outcome(signed_notification(**{field: value}))
    if field in ("bundleId", "environment") and status is None:
        assert value in {"bundleId": [BUNDLE_ID], "environment": [SANDBOX, PRODUCTION]}[field]


@GENERATED
@given(
    name=st.sampled_from(
        [
            *("data", "summary", "externalPurchaseToken", "appData", "signedDate", "exp", "nbf"),
            *("iat", "aud", "sub", "jti", "iss", "receiptCreationDate"),
        ]
    ),
    value=field_values,
)
def test_any_value_of_a_top_level_field_in_a_signed_notification(name: str, value: Any) -> None:
    payload = notification_payload("TEST")
    payload[name] = value
    outcome(signed(payload))


@GENERATED
@given(payload=json_values)
def test_any_signed_json_payload_ends_in_the_one_exception(payload: Any) -> None:
    outcome(signed(json.dumps(payload).encode()))


# --------------------------------------------------------------------------- named odd inputs


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (None, S.MALFORMED),
        (b"a.b.c", S.MALFORMED),
        (5, S.MALFORMED),
        (["a", "b", "c"], S.MALFORMED),
        ("", S.MALFORMED),
        ("..", S.MALFORMED),
        ("a" * (256 * 1024 + 1), S.MALFORMED),
        ("\ud800.\udfff.x", S.MALFORMED),  # lone surrogates
        (VALID[:20] + "é" + VALID[20:], S.MALFORMED),
        (f"{NON_UTF8}.{VALID.split('.', 1)[1]}", S.MALFORMED),
        (f"{_segment({'alg': 'ES256', 'x5c': [1, 2, 3]})}.e30.AA", S.INVALID_CERTIFICATE),
        (f"{_segment({'alg': 'ES256', 'x5c': [[], {}, None]})}.e30.AA", S.INVALID_CERTIFICATE),
        (f"{_segment({'alg': 'ES256', 'x5c': ['!', '?', '']})}.e30.AA", S.INVALID_CERTIFICATE),
        (f"{_segment({'alg': 'ES256', 'x5c': {'a': 1, 'b': 2, 'c': 3}})}.e30.AA", S.INVALID_CHAIN_LENGTH),  # noqa: E501
        (f"{_segment({'alg': 'ES256', 'x5c': 'abc'})}.e30.AA", S.INVALID_CHAIN_LENGTH),
        (f"{_segment({'alg': ['ES256']})}.e30.AA", S.INVALID_ALGORITHM),
        (f"{_segment({'alg': 256})}.e30.AA", S.INVALID_ALGORITHM),
        (f"{_segment({'alg': 'ES256', 'kid': {}})}.e30.AA", S.MALFORMED),
        (f"{_segment({'alg': 'ES256', 'crit': [['b64']]})}.e30.AA", S.MALFORMED),
        (f"{_segment([1])}.e30.AA", S.MALFORMED),
    ],
    ids=[
        "none", "bytes", "int", "list", "empty", "dots", "too_large", "lone_surrogates",
        "non_ascii", "non_utf8_header", "x5c_numbers", "x5c_containers", "x5c_not_base64",
        "x5c_object", "x5c_string", "alg_list", "alg_number", "kid_object", "crit_nested",
        "header_array",
    ],
)  # fmt: skip
def test_odd_tokens_get_their_status(token: Any, status: VerificationStatus) -> None:
    assert outcome(token) is status


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (with_date_literal(str(10**400)), S.CERTIFICATE_EXPIRED),
        (with_date_literal(str(-(10**400))), S.CERTIFICATE_EXPIRED),
        (with_date_literal("1" + "0" * 5000), S.MALFORMED),  # beyond Python's int parsing limit
        (with_date_literal("1e400"), S.INVALID_CLAIMS),  # Infinity
        (with_date_literal("NaN"), S.INVALID_CLAIMS),
        (with_date_literal("Infinity"), S.INVALID_CLAIMS),
        (with_date_literal("-Infinity"), S.INVALID_CLAIMS),
        (with_date_literal("true"), S.INVALID_CLAIMS),
        (with_date_literal('"1780000000000"'), S.INVALID_CLAIMS),
        (with_date_literal("[1780000000000]"), S.INVALID_CLAIMS),
        (with_date_literal(f"{SIGNED_DATE_MS}.5"), None),
    ],
    ids=[
        "pow400", "minus_pow400", "5000_digits", "1e400", "nan", "infinity", "minus_infinity",
        "boolean", "digit_string", "list", "fraction",
    ],
)  # fmt: skip
def test_odd_signed_dates(token: str, status: VerificationStatus | None) -> None:
    assert outcome(token) is status


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"exp": 1_000_000}, S.INVALID_CLAIMS),  # ExpiredSignatureError
        ({"nbf": 4_000_000_000}, S.INVALID_CLAIMS),  # ImmatureSignatureError
        ({"iat": 4_000_000_000}, S.INVALID_CLAIMS),  # ImmatureSignatureError
        ({"iat": "x"}, S.INVALID_CLAIMS),  # InvalidIssuedAtError
        ({"aud": "someone"}, S.INVALID_CLAIMS),  # InvalidAudienceError
        ({"sub": 5}, S.INVALID_CLAIMS),  # InvalidSubjectError
        ({"jti": []}, S.INVALID_CLAIMS),  # InvalidJTIError
        ({"exp": "soon"}, S.MALFORMED),  # DecodeError
        ({"nbf": {}}, S.MALFORMED),  # DecodeError
        ({"exp": 4_000_000_000, "nbf": 1, "iat": 1, "sub": "s", "jti": "j", "iss": 5}, None),
    ],
    ids=["exp", "nbf", "iat", "iat_type", "aud", "sub", "jti", "exp_type", "nbf_type", "all_ok"],
)
def test_registered_claims_are_judged_by_pyjwt(
    claims: dict[str, Any], status: VerificationStatus | None
) -> None:
    payload = notification_payload("TEST") | claims
    assert outcome(signed(payload)) is status


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"bundleId": [BUNDLE_ID]}, S.INVALID_APP_IDENTIFIER),
        ({"bundleId": {BUNDLE_ID: BUNDLE_ID}}, S.INVALID_APP_IDENTIFIER),
        ({"bundleId": 5}, S.INVALID_APP_IDENTIFIER),
        ({"bundleId": None}, S.INVALID_APP_IDENTIFIER),
        ({"environment": [SANDBOX]}, S.INVALID_ENVIRONMENT),
        ({"environment": {SANDBOX: 1}}, S.INVALID_ENVIRONMENT),
        ({"environment": 1}, S.INVALID_ENVIRONMENT),
        ({"environment": PRODUCTION, "appAppleId": [APP_APPLE_ID]}, S.INVALID_APP_IDENTIFIER),
        ({"environment": PRODUCTION, "appAppleId": {}}, S.INVALID_APP_IDENTIFIER),
        ({"environment": PRODUCTION, "appAppleId": float(APP_APPLE_ID)}, S.INVALID_APP_IDENTIFIER),
        ({"environment": PRODUCTION, "appAppleId": 10**400}, S.INVALID_APP_IDENTIFIER),
        ({"environment": PRODUCTION, "appAppleId": True}, S.INVALID_APP_IDENTIFIER),
        ({"environment": PRODUCTION}, None),
        ({"signedTransactionInfo": 5}, S.MALFORMED),
        ({"signedTransactionInfo": ["a.b.c"]}, S.MALFORMED),
        ({"signedTransactionInfo": ""}, S.MALFORMED),
        ({"signedRenewalInfo": {}}, S.MALFORMED),
    ],
    ids=[
        "bundle_list", "bundle_object", "bundle_int", "bundle_null", "env_list", "env_object",
        "env_int", "app_id_list", "app_id_object", "app_id_float", "app_id_huge", "app_id_bool",
        "production_ok", "tx_int", "tx_list", "tx_empty", "renewal_object",
    ],
)  # fmt: skip
def test_field_types_in_a_signed_notification(
    fields: dict[str, Any], status: VerificationStatus | None
) -> None:
    assert outcome(signed_notification(**fields)) is status


@pytest.mark.parametrize(
    "top",
    [
        {"data": []},
        {"data": "x"},
        {"data": None, "summary": 5},
        {"data": None, "externalPurchaseToken": ["x"]},
        {"data": None, "appData": "x"},
    ],
    ids=["data_list", "data_string", "summary_int", "token_list", "app_data_string"],
)
def test_sections_must_be_objects(top: dict[str, Any]) -> None:
    assert outcome(signed(notification_payload("TEST") | top)) is S.MALFORMED


def test_an_empty_data_object_is_not_skipped_for_summary() -> None:
    """Apple's library takes ``data`` whenever it is present, even ``{}``; so does this one."""
    summary = {"bundleId": BUNDLE_ID, "environment": SANDBOX}
    token = signed(notification_payload("TEST", data={}, summary=summary))
    assert outcome(token) is S.INVALID_APP_IDENTIFIER
    without_data = notification_payload("TEST", data={}) | {"data": None, "summary": summary}
    assert outcome(signed(without_data)) is None


def test_external_purchase_token_picks_its_environment() -> None:
    token = {"bundleId": BUNDLE_ID, "appAppleId": APP_APPLE_ID, "externalPurchaseId": 5}
    payload = notification_payload("EXTERNAL_PURCHASE_TOKEN") | {"data": None}
    v = verifier(environments=[SANDBOX], app_apple_id=None)
    assert outcome(signed(payload | {"externalPurchaseToken": token}), v) is S.INVALID_ENVIRONMENT
    sandbox = token | {"externalPurchaseId": "SANDBOX_1"}
    assert outcome(signed(payload | {"externalPurchaseToken": sandbox}), v) is None


def test_messages_never_echo_the_input() -> None:
    marker = "<script>alert(1)</script>"
    tokens = [
        signed(notification_payload("TEST"), header={"crit": [marker], marker: 1}),
        signed(notification_payload("TEST") | {"exp": marker}),
        signed_notification(bundleId=marker),
        f"{_segment({'alg': marker})}.e30.AA",
    ]
    for token in tokens:
        with pytest.raises(AppleVerificationError) as info:
            V.verify_notification(token)
        assert marker not in info.value.message and marker not in str(info.value)


# --------------------------------------------------------------------------- PyJWT's exceptions

PYJWT_ERRORS = sorted(
    (cls for _, cls in inspect.getmembers(jwt_exceptions, inspect.isclass)
     if issubclass(cls, jwt.PyJWTError)),
    key=lambda cls: cls.__name__,
)  # fmt: skip
EXPECTED = {
    "InvalidSignatureError": S.INVALID_SIGNATURE,
    "InvalidAlgorithmError": S.INVALID_ALGORITHM,
    "ExpiredSignatureError": S.INVALID_CLAIMS,
    "ImmatureSignatureError": S.INVALID_CLAIMS,
    "InvalidIssuedAtError": S.INVALID_CLAIMS,
    "InvalidAudienceError": S.INVALID_CLAIMS,
    "InvalidIssuerError": S.INVALID_CLAIMS,
    "InvalidSubjectError": S.INVALID_CLAIMS,
    "InvalidJTIError": S.INVALID_CLAIMS,
    "MissingRequiredClaimError": S.INVALID_CLAIMS,
    "InvalidKeyError": S.INVALID_CHAIN,
}


def _instance(cls: type[Exception]) -> Exception:
    return cls("claim") if cls is jwt.MissingRequiredClaimError else cls("injected")


@pytest.mark.parametrize("cls", PYJWT_ERRORS, ids=lambda cls: cls.__name__)
def test_every_pyjwt_exception_becomes_the_one_exception(
    cls: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    def decode(*_: Any, **__: Any) -> Any:
        raise _instance(cls)

    monkeypatch.setattr(jwt.PyJWT, "decode", decode)  # the class: the verifier has its instance
    assert outcome(VALID) is EXPECTED.get(cls.__name__, S.MALFORMED)
    monkeypatch.setattr(jwt.PyJWS, "get_unverified_header", decode)
    assert outcome(VALID, verifier()) is EXPECTED.get(cls.__name__, S.MALFORMED)  # fresh cache


@pytest.mark.parametrize(
    "exc", [ValueError("x"), TypeError("x"), RecursionError(), OverflowError()]
)
def test_odd_exceptions_from_pyjwt_are_malformed(
    exc: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    def decode(*_: Any, **__: Any) -> Any:
        raise exc

    monkeypatch.setattr(jwt.PyJWT, "decode", decode)
    assert outcome(VALID) is S.MALFORMED


def test_an_inner_token_goes_through_the_same_checks() -> None:
    inner = signed(transaction_payload() | {"signedDate": 10**400})
    assert outcome(sign_notification("REFUND", transaction={"signed_date": 10**400})) is not None
    with pytest.raises(AppleVerificationError) as info:
        V.verify_jws(inner)
    assert info.value.status is S.CERTIFICATE_EXPIRED
    header, payload, _ = inner.split(".")
    assert (
        outcome(signed_notification(signedTransactionInfo=f"{header}.{payload}."))
        is S.INVALID_SIGNATURE
    )


# --------------------------------------------------------------------------- segments at C speed

_SEGMENT_CHARS = st.sampled_from(
    "ABCXYZabcxyz0189-_" + "AQgw" + "===" + "+/ \n\t%.\x00\x7f"
)  # the alphabet, the 4 endings that carry no spare bits, padding, and characters outside it


def _stock_segment(segment: bytes) -> bytes | str:
    try:
        return jwt.PyJWS._decode_base64url_segment(segment, "payload")
    except jwt.DecodeError as err:
        return str(err)


def _our_segment(segment: bytes) -> bytes | str:
    try:
        return _PyJWS._decode_base64url_segment(segment, "payload")
    except jwt.DecodeError as err:
        return str(err)


def test_the_segment_hook_is_pyjwts() -> None:
    """The verifier's PyJWS replaces a hook PyJWT 2.15 has: renamed, the speed-up would be lost."""
    assert isinstance(jwt.PyJWS.__dict__["_decode_base64url_segment"], staticmethod)
    assert _JWT._jws is _JWS and isinstance(_JWS, _PyJWS)


@GENERATED
@given(st.text(_SEGMENT_CHARS, max_size=40), st.binary(max_size=40))
def test_segments_decode_as_pyjwt_decodes_them(text: str, data: bytes) -> None:
    """The C-speed segment check gives PyJWT's own verdict: the same bytes or the same error."""
    for segment in (text.encode(), b64url(data).encode() + text.encode(), data):
        assert _our_segment(segment) == _stock_segment(segment)


@GENERATED
@given(st.integers(0, 2), st.integers(0, 100), st.text(_SEGMENT_CHARS, max_size=12))
def test_mutated_segments_get_pyjwts_verdict(index: int, cut: int, tail: str) -> None:
    """A valid JWS with one segment cut and extended: refused as malformed exactly when stock PyJWT
    cannot decode it, as a bad signature exactly when stock PyJWT says so, else valid."""
    segments = VALID.split(".")
    kept = segments[index][: max(0, len(segments[index]) - cut)]
    segments[index] = kept + tail.replace(".", "")
    token = ".".join(segments)
    try:
        jwt.decode(token, default_pki().leaf.key.public_key(), algorithms=["ES256"])
        stock = None
    except jwt.InvalidSignatureError:
        stock = S.INVALID_SIGNATURE
    except jwt.PyJWTError:
        stock = S.MALFORMED
    try:
        verifier().verify_jws(token)
        ours = None
    except AppleVerificationError as err:
        ours = err.status
    if index == 0 and ours not in (None, S.MALFORMED, S.INVALID_SIGNATURE):
        return  # a header that still decodes can fail its x5c or alg check first: not a segment
    assert ours is stock


def test_base64_padding_and_x5c_spelling_are_pyjwt_and_rfc_7515() -> None:
    header, payload, signature = VALID.split(".")
    assert outcome(f"{header}.{payload}.{signature}==") is None  # PyJWT accepts '=' padding
    assert outcome(f"{header}.{payload}.{signature}===") is S.MALFORMED
    x5c = [base64.b64encode(default_pki().leaf.der).decode() + " ", *default_pki().x5c()[1:]]
    assert outcome(sign_jws(notification_payload("TEST"), default_pki().leaf.key, x5c=x5c)) is (
        S.INVALID_CERTIFICATE
    )
