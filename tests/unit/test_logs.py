"""Structured log lines: one JSON object per line, every field bounded, whatever goes in: no line
nears Cloud Logging's 256 KB entry limit, and nothing in it can break the JSON."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refundguard import logs

LIMIT = 256 * 1024

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**200), max_value=2**200),
        st.floats(),  # NaN and infinities included
        st.text(),
        st.text(min_size=1, max_size=4).map(lambda t: t * 3000),
        st.text(max_size=3).map(lambda t: t + "\ud800"),
        st.binary(max_size=50),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=80), st.dictionaries(st.text(max_size=300), inner, max_size=80)
    ),
    max_leaves=200,
)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr(logs, "_stream", stream)
    return stream


@settings(max_examples=60, deadline=None)
@given(fields=st.dictionaries(st.from_regex(r"[a-z_]{1,20}", fullmatch=True), values, max_size=20))
def test_any_fields_make_one_bounded_json_line(fields: dict[str, Any]) -> None:
    stream = io.StringIO()
    logs._stream = stream
    try:
        logs.warning("message " * 10_000, **fields)
    finally:
        logs._stream = None
    text = stream.getvalue()
    assert text.count("\n") == 1 and len(text.encode()) <= logs.MAX_LINE_BYTES + 1 < LIMIT
    entry = json.loads(text)
    assert entry["severity"] == "WARNING" and entry["message"].endswith("...[cut]")


def test_a_lone_surrogate_is_escaped_not_a_crash(captured: io.StringIO) -> None:
    logs.info("x", reason="bad \ud800 text", nested={"k\udfff": ["\ud800"]})
    entry = json.loads(captured.getvalue())
    assert entry["reason"] == "bad \\ud800 text"
    assert entry["nested"] == {"k\\udfff": ["\\ud800"]}


def test_fields_bound_to_a_request_join_its_one_line(captured: io.StringIO) -> None:
    token = logs.begin()
    logs.bind(message_id="m-1", token_hash=logs.token_hash("secret"))
    logs.bind(effect="applied", ignored=None)
    fields = logs.end(token)
    assert fields == {
        "message_id": "m-1",
        "token_hash": logs.token_hash("secret"),
        "effect": "applied",
    }
    logs.bind(outside="a request")  # no request: ignored, not an error
    assert captured.getvalue() == ""


# ------------------------------------------------------------------------------- quarantine records


@settings(max_examples=80, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=2000), st.text(max_size=600).map(str.encode)),
    key=st.one_of(st.none(), st.text(max_size=500)),
    details=st.dictionaries(st.text(max_size=20), values, max_size=5),
)
def test_any_rejected_request_makes_a_storable_quarantine_record(
    body: bytes, key: str | None, details: dict[str, Any]
) -> None:
    import hashlib

    from refundguard import quarantine

    doc_id, data = quarantine.record(
        source="play", code="bad_json", reason="x\ud800", body=body, key=key,
        details=details, now_ms=1_700_000_000_000,
    )  # fmt: skip
    doc_id.encode("utf-8")  # a valid document id: UTF-8, no slash, at most 400 bytes
    assert "/" not in doc_id and len(doc_id.encode()) <= 400 and not doc_id.startswith("__")
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert data["body_size"] == len(body) and data["body_truncated"] is False
    json.dumps(data, default=str).encode("utf-8")  # every text field is valid Unicode


def test_a_large_body_is_cut_by_bytes_not_characters() -> None:
    from refundguard import quarantine

    body = ("é" * 400_000).encode() + b"\xff"  # not UTF-8 as a whole: kept as base64
    _, data = quarantine.record(
        source="play", code="c", reason="r", body=body, key=None, details=None, now_ms=1
    )
    assert data["body_encoding"] == "base64" and data["body_truncated"] is True
    assert len(data["body"]) <= 4 * quarantine.MAX_BODY // 3 + 4
    text_body = ("é" * 400_000).encode()  # 800,000 bytes of text
    _, data = quarantine.record(
        source="play", code="c", reason="r", body=text_body, key=None, details=None, now_ms=1
    )
    assert data["body_encoding"] == "utf-8"
    assert len(data["body"].encode()) <= quarantine.MAX_BODY and data["body_size"] == 800_000


# ------------------------------------------------------------------------- credentials redacted

B64TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@st.composite
def bearer_tokens(draw: st.DrawFn) -> tuple[str, list[str]]:
    scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
    space = draw(st.sampled_from([" ", "  ", "\t", "%20", "+"]))
    token = draw(st.text(B64TOKEN, min_size=16, max_size=80)) + draw(st.sampled_from(["", "=="]))
    return f"{scheme}{space}{token}", [token]


@st.composite
def google_tokens(draw: st.DrawFn) -> tuple[str, list[str]]:
    body = draw(st.text(B64URL + ".", min_size=16, max_size=120))
    return f"ya29.{body}", [body]


@st.composite
def jwts(draw: st.DrawFn) -> tuple[str, list[str]]:
    import jwt

    claims = draw(st.dictionaries(st.text(B64URL, min_size=1, max_size=8), st.text(), max_size=4))
    key = draw(st.text(B64URL, min_size=32, max_size=40))
    token = jwt.encode({"iss": "x", **claims}, key, algorithm="HS256")
    _header, payload, signature = token.split(".")
    return token, [payload, signature]


@st.composite
def pem_keys(draw: st.DrawFn) -> tuple[str, list[str]]:
    import base64

    label = draw(st.sampled_from(["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"]))
    raw = base64.b64encode(draw(st.binary(min_size=24, max_size=200))).decode()
    lines = [raw[i : i + 64] for i in range(0, len(raw), 64)]
    newline = draw(st.sampled_from(["\n", "\r\n", "\\n"]))
    end = draw(st.sampled_from([f"-----END {label}-----", ""]))  # a text cut short: no END
    text = newline.join([f"-----BEGIN {label}-----", *lines, end])
    return text, [line for line in lines if len(line) >= 16]


secrets_in_text = st.one_of(bearer_tokens(), google_tokens(), jwts(), pem_keys())


@settings(max_examples=400, deadline=None)
@given(before=st.text(max_size=40), secret=secrets_in_text, after=st.text(max_size=40))
def test_a_credential_anywhere_in_a_text_never_survives_a_log_line(
    before: str, secret: tuple[str, list[str]], after: str
) -> None:
    text, parts = secret
    stream = io.StringIO()
    original, logs._stream = logs._stream, stream
    try:
        quoted = before + text + after
        logs.error("store said: " + quoted, detail=quoted, nested={quoted: [quoted]})
    finally:
        logs._stream = original
    line = json.loads(stream.getvalue())
    written = json.dumps(line, ensure_ascii=False)
    for part in parts:
        if part in before or part in after:
            continue  # the surrounding text holds the same characters by chance
        assert part not in written
        assert part not in logs.scrub(quoted)


@pytest.mark.parametrize(
    "text",
    [
        "GPA.3300-0000-0000-00001..0",
        "com.example.app",
        "keys.example.com answered HTTP 503",
        "the basic plan, version 1.2.3",
        "purchase token [6f791bc1a4c00624]",
        "Authorization header missing",
        "google API orders.get answered HTTP 404: Order not found.",
    ],
)
def test_ordinary_text_is_left_as_it_is(text: str) -> None:
    assert logs.scrub(text) == text


def test_what_is_redacted_still_says_what_it_was() -> None:
    quoted = 'error: "Authorization: Bearer ya29.a0AfH6SMBx-y_z" {"access_token": "ya29.q"}'
    assert logs.scrub(quoted) == (
        'error: "Authorization: Bearer [redacted]" {"access_token": "[redacted]"}'
    )
