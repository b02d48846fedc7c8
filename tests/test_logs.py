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
