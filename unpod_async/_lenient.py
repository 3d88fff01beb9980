"""A task decoded field by field, for the rare task that the typed decode refuses.

``_decode`` decodes a page in one typed call; only when that raises does it decode the page's
tasks one by one, and only a task that still fails comes here. Its JSON is decoded to plain
values and converted into the models one field at a time, recursively: a value that fits
nowhere is dropped (the field keeps its default) and kept, as sent, in
``Task.invalid_fields`` under its dotted path. The task itself is never lost, and ``task_id``
survives: a number there becomes its string.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any, TypeVar

import msgspec

from ._models import Run, Task

__all__ = ["as_key", "lenient_run", "lenient_task"]

_ANY = msgspec.json.Decoder()
_DROP: Any = object()


@cache
def _fields(cls: type[msgspec.Struct]) -> tuple[tuple[str, str, Any], ...]:
    return tuple((f.name, f.encode_name, f.type) for f in msgspec.structs.fields(cls))


@cache
def _shapes(tp: Any) -> tuple[type[msgspec.Struct] | None, Any]:
    """The Struct type and the item type of a ``tuple[X, ...]`` that ``tp`` allows, if any."""
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    members = typing.get_args(tp) if union else (tp,)
    struct: type[msgspec.Struct] | None = None
    items: Any = None
    for member in members:
        if isinstance(member, type) and issubclass(member, msgspec.Struct):
            struct = member
        elif typing.get_origin(member) is tuple:
            args = typing.get_args(member)
            if len(args) == 2 and args[1] is Ellipsis:
                items = args[0]
    return struct, items


def _convert(value: Any, tp: Any, path: str, invalid: dict[str, Any]) -> Any:
    try:
        return msgspec.convert(value, tp)
    except msgspec.ValidationError:
        pass
    struct, items = _shapes(tp)
    if struct is not None and isinstance(value, dict):
        return _struct(struct, value, path + ".", invalid)
    if items is not None and isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            converted = _convert(item, items, f"{path}.{index}", invalid)
            if converted is not _DROP:
                out.append(converted)
        return tuple(out)
    invalid[path] = value
    return _DROP


def _struct(
    cls: type[msgspec.Struct], value: dict[str, Any], prefix: str, invalid: dict[str, Any]
) -> Any:
    kwargs: dict[str, Any] = {}
    for name, encode_name, tp in _fields(cls):
        if encode_name in value:
            converted = _convert(value[encode_name], tp, prefix + encode_name, invalid)
            if converted is not _DROP:
                kwargs[name] = converted
    return cls(**kwargs)


def as_key(value: Any) -> str | None:
    """An identifier as a dedupe key: a non-empty string, or a number as its string."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    return None


def lenient_task(raw: bytes | msgspec.Raw) -> Task:
    """The task in ``raw`` (valid JSON), with whatever does not fit in ``invalid_fields``."""
    return _lenient(Task, "task_id", raw)


def lenient_run(raw: bytes | msgspec.Raw) -> Run:
    """The run in ``raw`` (valid JSON), with whatever does not fit in ``invalid_fields``."""
    return _lenient(Run, "run_id", raw)


M = TypeVar("M", Task, Run)


def _lenient(cls: type[M], id_field: str, raw: bytes | msgspec.Raw) -> M:
    value = _ANY.decode(raw)
    invalid: dict[str, Any] = {}
    if not isinstance(value, dict):
        return cls(invalid_fields={"": value})
    ident = value.get(id_field)
    if isinstance(ident, int | float) and not isinstance(ident, bool):
        # The key must survive: 123 becomes "123" (the raw views' keys do the same).
        value = {**value, id_field: as_key(ident)}
    value.pop("invalid_fields", None)
    model: M = _struct(cls, value, "", invalid)
    if invalid:
        model = msgspec.structs.replace(model, invalid_fields=invalid)
    return model
