"""Counts the RPCs a Firestore client sends, for the tests and benchmarks that promise a number of
round trips. It wraps the client's generated API object, a private attribute: dev code only, never
``functions/``."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

RPCS = (
    "batch_get_documents",
    "begin_transaction",
    "commit",
    "rollback",
    "run_query",
    "get_document",
)


class RpcCounter:
    def __init__(self, client: Any, names: Iterable[str] = RPCS) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        api = client._firestore_api
        for name in names:
            original = getattr(api, name)

            def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
                self.counts[_name] += 1
                return _original(*args, **kw)

            setattr(api, name, counted)

    def take(self) -> collections.Counter[str]:
        """The counts since the last take (a Counter: equal to a dict of the same counts)."""
        counts, self.counts = self.counts, collections.Counter()
        return counts
