"""One serializer between the ledger's dataclasses, Firestore documents and the admin API's JSON.

Derived from the dataclass fields (a new field in ``model.py``, or in a run record of
``reconciliation.plan``, is the only edit): enums are written as their values; a tuple of
dataclasses as a list of maps; every ``*_ms`` int is kept and gets an ``*_at`` sibling, a
timestamp in Firestore (readable in the console) and ISO 8601 UTC with milliseconds and ``Z`` in
JSON; an entitlement's
JSON also says ``access``. Reading back ignores ``*_at`` siblings and unknown fields, and a missing
(or null) field that has a default takes it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .model import Entitlement

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = "_ms"
_AT = "_at"

T = TypeVar("T")


def ms_to_datetime(ms: int) -> datetime:
    """Exact (integer arithmetic); raises OverflowError outside the years 1-9999."""
    return _EPOCH + timedelta(milliseconds=ms)


def ms_to_iso(ms: int) -> str:
    """``2026-11-26T06:50:00.000Z``."""
    return ms_to_datetime(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    enum: type[enum.Enum] | None  # the enum the value belongs to
    mapping: bool  # a Mapping: written and read as a plain dict
    sequence: bool  # a tuple: written as a list (a Firestore array), read back as a tuple
    item: type | None  # the dataclass of a tuple's items, each written and read as a map
    at: str | None  # the ``*_at`` sibling of an ``*_ms`` int
    optional: bool  # the type admits None
    default: Any  # dataclasses.MISSING when there is none
    default_factory: Any


@functools.cache
def _plan(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
        if optional:
            (hint,) = (a for a in args if a is not type(None))
        origin = typing.get_origin(hint) or hint
        is_enum = isinstance(origin, type) and issubclass(origin, enum.Enum)
        is_ms_int = f.name.endswith(_MS) and origin is int
        items = typing.get_args(hint) if origin is tuple else ()
        item = items[0] if items and dataclasses.is_dataclass(items[0]) else None
        plan.append(
            _Field(
                name=f.name,
                enum=origin if is_enum else None,
                mapping=isinstance(origin, type) and issubclass(origin, Mapping),
                sequence=origin is tuple,
                item=item,
                at=f.name[: -len(_MS)] + _AT if is_ms_int else None,
                optional=optional,
                default=f.default,
                default_factory=f.default_factory,
            )
        )
    return tuple(plan)


def _fields(record: Any, timestamp: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in _plan(type(record)):
        value = getattr(record, f.name)
        if value is not None:
            if f.enum is not None:
                value = value.value
            elif f.mapping:
                value = dict(value)
            elif f.item is not None:
                value = [_fields(v, timestamp) for v in value]
            elif f.sequence:
                value = list(value)
        data[f.name] = value
        if f.at is not None:
            data[f.at] = None if value is None else timestamp(value)
    return data


def to_firestore(record: Any) -> dict[str, Any]:
    """A Firestore document's fields: ``*_at`` siblings are datetimes (Firestore timestamps)."""
    return _fields(record, ms_to_datetime)


def to_json(record: Any) -> dict[str, Any]:
    """The admin API's JSON: ``*_at`` siblings are ISO 8601 strings; an entitlement says
    ``access`` right after its ``status``."""
    data = _fields(record, ms_to_iso)
    if isinstance(record, Entitlement):
        items = list(data.items())
        at = next(i for i, (name, _) in enumerate(items) if name == "status") + 1
        items.insert(at, ("access", record.status.grants_access))
        data = dict(items)
    return data


def load(cls: type[T], data: Mapping[str, Any]) -> T:
    """The dataclass back from a Firestore document's fields (or the JSON)."""
    values: dict[str, Any] = {}
    for f in _plan(cls):
        value = data.get(f.name)
        if value is None and not f.optional:
            if f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                raise ValueError(f"{cls.__name__} field {f.name!r} is missing")
        elif value is not None:
            if f.enum is not None:
                value = f.enum(value)
            elif f.mapping:
                value = dict(value)
            elif f.item is not None:
                value = tuple(load(f.item, v) for v in value)
            elif f.sequence:
                value = tuple(value)
        values[f.name] = value
    return cls(**values)
