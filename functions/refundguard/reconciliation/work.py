"""A fanned-out run's work messages, pure: one ``Work`` per tenant x source (Google's voids per
package, Apple's history per bundle id and environment, the tenant's refund requests), as the
Pub/Sub message the schedule publishes and the worker reads back (checked field by field:
REJECTED when it is not one of ours), and what the worker does with a message given the source's
cursor (``decide``)."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import rejected
from .plan import Cursor

GOOGLE, APPLE, ANSWERS = "google", "apple", "answers"
SOURCES = (GOOGLE, APPLE, ANSWERS)
VERSION = 1
MAX_PAGE = 100_000  # a chain of pages is far shorter; anything beyond is not ours
_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
_TENANT = re.compile(r"[a-z][a-z0-9-]{1,38}[a-z0-9]|default")
_APP = re.compile(r"[A-Za-z0-9._-]{1,255}")
_ENVIRONMENTS = ("Production", "Sandbox")
_TRIGGERS = ("schedule", "admin")


@dataclass(frozen=True)
class Work:
    """One message: page ``page`` of ``source`` for ``tenant`` in run ``run_id`` (``part`` > 0:
    the same page again, after a worker's budget ran out within it)."""

    run_id: str
    tenant: str
    source: str  # google | apple | answers
    app: str = ""  # the package or bundle id ("" for answers)
    environment: str = "Production"
    page: int = 0
    part: int = 0
    trigger: str = "schedule"

    @property
    def key(self) -> str:
        """The source's cursor id (``reconcile_cursors``) and its name in the run record."""
        if self.source == GOOGLE:
            return f"google:{self.app}"
        if self.source == APPLE:
            return f"apple:{self.app}:{self.environment}"
        return ANSWERS

    @property
    def label(self) -> str:
        """Who and what, for logs and the marker of a page (never a secret)."""
        return f"{self.run_id}/{self.tenant}/{self.key}/{self.page}.{self.part}"

    def next_page(self) -> Work:
        return replace(self, page=self.page + 1, part=0)

    def again(self) -> Work:
        return replace(self, part=self.part + 1)

    def message(self) -> dict[str, Any]:
        """The Pub/Sub message (REST ``PubsubMessage``): JSON data; attributes for filters."""
        import base64

        body = {
            "v": VERSION,
            "run_id": self.run_id,
            "tenant": self.tenant,
            "source": self.source,
            "app": self.app,
            "environment": self.environment,
            "page": self.page,
            "part": self.part,
            "trigger": self.trigger,
        }
        data = json.dumps(body, separators=(",", ":")).encode()
        return {
            "data": base64.b64encode(data).decode(),
            "attributes": {"tenant": self.tenant, "source": self.source},
        }


def parse(data: bytes) -> Work:
    """A work message's data back; REJECTED (never retried) when it is not one we publish."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise rejected("bad_work", "the work message is not JSON") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise rejected("bad_work", f"the work message is not a version-{VERSION} object")
    unknown = set(body) - {"v", "run_id", "tenant", "source", "app", "environment", "page", "part"}
    unknown -= {"trigger"}
    if unknown:
        raise rejected("bad_work", f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    work = Work(
        run_id=_text(body, "run_id", _RUN_ID),
        tenant=_text(body, "tenant", _TENANT),
        source=_choice(body, "source", SOURCES),
        app=_text(body, "app", _APP) if body.get("source") != ANSWERS else "",
        environment=_choice(body, "environment", _ENVIRONMENTS),
        page=_count(body, "page"),
        part=_count(body, "part"),
        trigger=_choice(body, "trigger", _TRIGGERS),
    )
    if work.source == ANSWERS and (work.page or work.part):
        raise rejected("bad_work", "refund-request answers are one message, never paged")
    return work


def _text(body: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise rejected("bad_work", f"{name} is missing or malformed")
    return value


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = body.get(name)
    if value not in allowed:
        raise rejected("bad_work", f"{name} must be one of {', '.join(allowed)}")
    return str(value)


def _count(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PAGE:
        raise rejected("bad_work", f"{name} must be an integer from 0 to {MAX_PAGE}")
    return value


class Step(enum.StrEnum):
    """What a worker does with a message, given the source's cursor."""

    PROCESS = "process"  # this page is the chain's next: fetch, apply, move the cursor
    DONE = "done"  # this page was processed already (a redelivery): only see its sequel sent
    STALE = "stale"  # a newer run took the source over, or the message is ahead: nothing


def decide(work: Work, cursor: Cursor | None) -> Step:
    """``work``'s page against the cursor: the chain's next page is processed; a page of this run
    already done (the cursor moved past it) is DONE; a first page of a newer run than the
    cursor's takes the source over (resuming where the cursor stands); anything else is STALE
    (an older run's pages, once a newer one took over, are dropped: the newer goes on)."""
    if cursor is None or cursor.run_id is None:
        return Step.PROCESS if work.page == 0 else Step.STALE
    if cursor.run_id == work.run_id:
        if cursor.pages == work.page:
            return Step.PROCESS
        return Step.DONE if cursor.pages > work.page else Step.STALE
    if work.page == 0 and work.run_id > cursor.run_id:  # run ids sort by their start
        return Step.PROCESS
    return Step.STALE
