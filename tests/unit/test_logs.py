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
