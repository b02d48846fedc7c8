"""The fanned-out run's work messages and the worker's decision, pure (``reconciliation.work``):
every message the schedule or the worker publishes reads back as itself; a page is processed only
when it is the chain's next (or a newer run's first), a page already done only sees its sequel
sent, anything else is stale; and a page's counts add up across pages (``chain.add_counts``)."""

from __future__ import annotations

import base64
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from refundguard.reconciliation import work as w
from refundguard.reconciliation.chain import add_counts
from refundguard.reconciliation.plan import Cursor, SourceTally

RUN_IDS = st.builds(
    lambda d, h: f"2026{d:04d}T{h:06d}Z-{h % 0xFFFFFF:06x}",
    st.integers(101, 1231),
    st.integers(0, 235959),
)
TENANTS = st.one_of(
    st.just("default"), st.from_regex(r"[a-z][a-z0-9-]{1,38}[a-z0-9]", fullmatch=True)
)
APPS = st.from_regex(
    r"[A-Za-z][A-Za-z0-9_]{0,10}(\.[A-Za-z][A-Za-z0-9_]{0,10}){1,3}", fullmatch=True
)


@st.composite
def works(draw: st.DrawFn) -> w.Work:
    source = draw(st.sampled_from(w.SOURCES))
    answers = source == w.ANSWERS
    return w.Work(
        run_id=draw(RUN_IDS),
        tenant=draw(TENANTS),
        source=source,
        app="" if answers else draw(APPS),
        environment=draw(st.sampled_from(["Production", "Sandbox"])),
        page=0 if answers else draw(st.integers(0, w.MAX_PAGE)),
        part=0 if answers else draw(st.integers(0, 50)),
        trigger=draw(st.sampled_from(["schedule", "admin"])),
    )


@given(works())
def test_every_work_message_reads_back_as_itself(item: w.Work) -> None:
    message = item.message()
    assert message["attributes"] == {"tenant": item.tenant, "source": item.source}
    assert w.parse(base64.b64decode(message["data"])) == item


@given(works(), st.integers(0, 20), st.integers(0, 20))
def test_a_page_is_processed_only_when_it_is_the_chains_next(
    item: w.Work, done: int, page: int
) -> None:
    item = replace(item, page=page)
    cursor = Cursor(item.key, run_id=item.run_id, pages=done)
    step = w.decide(item, cursor)
    expected = w.Step.PROCESS if page == done else w.Step.DONE if page < done else w.Step.STALE
    assert step is expected


@given(works(), RUN_IDS, st.integers(0, 20))
def test_a_newer_runs_first_page_takes_the_source_over_and_an_older_runs_pages_are_stale(
    item: w.Work, other: str, done: int
) -> None:
    cursor = Cursor(item.key, run_id=other, pages=done, resume_token="t")
    if other == item.run_id:
        return
    step = w.decide(item, cursor)
    if item.page == 0 and item.run_id > other:
        assert step is w.Step.PROCESS
    else:
        assert step is w.Step.STALE


def test_a_source_never_walked_starts_at_its_first_page() -> None:
    item = w.Work("20261204T120000Z-abc123", "default", w.GOOGLE, "com.example.app")
    assert w.decide(item, None) is w.Step.PROCESS
    assert w.decide(item.next_page(), None) is w.Step.STALE
    assert w.decide(item, Cursor(item.key, complete_ms=5)) is w.Step.PROCESS  # before fan-out


@given(st.lists(st.tuples(*[st.integers(0, 1000)] * 4), min_size=1, max_size=10))
def test_counts_add_up_across_pages(pages: list[tuple[int, int, int, int]]) -> None:
    total = None
    for seen, applied, known, rejected in pages:
        page = SourceTally("google", "com.example.app", "Production", pages=1, seen=seen)
        page.applied, page.already_known, page.rejected = applied, known, rejected
        total = add_counts(total, page)
    assert total is not None
    assert (total.pages, total.seen, total.applied, total.already_known, total.rejected) == (
        len(pages),
        *(sum(p[i] for p in pages) for i in range(4)),
    )
