"""Decoding a page for each consumer, with decoders built once.

A consumer asks for a page in the view it needs: typed :class:`~unpod_async.Task` Structs
(iterators, lists, CSV, Parquet), the tasks' own bytes (lossless JSONL), or only the keys that
deduplication needs (rebuilding a resumed export's state). Each view decodes only what it reads
(msgspec skips the rest), and every page decode returns a :class:`Decoded` for the pager.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from ._models import Organization, Space, Task, TasksPage

__all__ = [
    "Decoded",
    "Key",
    "PageDecoder",
    "RawTasks",
    "decode_raw_page",
    "decode_typed_page",
]

P = TypeVar("P")
T = TypeVar("T")

# A task's identity for dedupe: task_id, else _id, else its own JSON (a task with neither is
# still yielded once; only an edit between two reads of it could make it look new).
Key = str | bytes | None


@dataclass(slots=True)
class Decoded(Generic[P]):
    """A decoded page: the server's ``count``, each task's dedupe key, the consumer's view,
    and the envelope's own ``status_code`` (which ``_response`` checks)."""

    count: int | None
    keys: Sequence[Key]
    payload: P
    status_code: object = None
    seq: int = 0  # the order in which its answer arrived (set by the pager)
    skipped: int = 0  # positions of the page that could not be read (see the pager)

    @property
    def size(self) -> int:
        return len(self.keys)


PageDecoder = Callable[[bytes], Decoded[P]]
PageCombiner = Callable[[Sequence[Decoded[P]]], Decoded[P]]


class TaskKey(msgspec.Struct, gc=False):
    """Only the two fields dedupe needs: decoding a page into these skips everything else."""

    task_id: str | None = None
    id: str | None = msgspec.field(default=None, name="_id")


class RawPage(msgspec.Struct, gc=False):
    """A page whose tasks stay as the exact bytes the server sent (for lossless export)."""

    count: Any = None
    status_code: Any = None
    message: Any = None
    data: list[msgspec.Raw] = []


class KeysPage(msgspec.Struct, gc=False):
    count: Any = None
    data: list[TaskKey] = []


class ListEnvelope(msgspec.Struct, Generic[T], gc=False):
    """``{status_code, message, data: [...]}`` of the endpoints that are not paged."""

    status_code: int | None = None
    message: str | None = None
    data: list[T] = []


TASKS_PAGE_DECODER = msgspec.json.Decoder(TasksPage)
RAW_PAGE_DECODER = msgspec.json.Decoder(RawPage)
KEYS_PAGE_DECODER = msgspec.json.Decoder(KeysPage)
KEYS_DECODER = msgspec.json.Decoder(list[TaskKey])
TASKS_DECODER = msgspec.json.Decoder(list[Task])
SPACES_ENVELOPE_DECODER = msgspec.json.Decoder(ListEnvelope[Space])
ORGS_ENVELOPE_DECODER = msgspec.json.Decoder(ListEnvelope[Organization])
_ENCODER = msgspec.json.Encoder()


def typed_keys(tasks: Sequence[Task]) -> list[Key]:
    keys: list[Key] = [task.task_id or task.id for task in tasks]
    if None in keys:
        keys = [
            k if k is not None else _ENCODER.encode(t) for k, t in zip(keys, tasks, strict=True)
        ]
    return keys


def raw_keys(body: bytes, raws: Sequence[msgspec.Raw]) -> tuple[Any, list[Key]]:
    """The count and the keys of a page whose tasks are kept raw: one typed decode, no
    per-task call."""
    page: KeysPage = KEYS_PAGE_DECODER.decode(body)
    keys: list[Key] = [k.task_id or k.id for k in page.data]
    if None in keys:
        keys = [k if k is not None else bytes(r) for k, r in zip(keys, raws, strict=True)]
    return page.count, keys


class _TypedPage(msgspec.Struct, gc=False):
    """A page as the pager reads it: the envelope's fields as whatever the server sent (a
    nonsense ``count`` is the pager's to judge, not a reason to refuse the page)."""

    count: Any = None
    status_code: Any = None
    message: Any = None
    data: tuple[Task, ...] = ()


TYPED_PAGE_DECODER = msgspec.json.Decoder(_TypedPage)


def count_of(value: object) -> int | None:
    """A server's ``count`` as a non-negative int, or None when missing or nonsense."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def decode_typed_page(body: bytes) -> Decoded[TasksPage]:
    raw: _TypedPage = TYPED_PAGE_DECODER.decode(body)
    count = count_of(raw.count)
    status = raw.status_code if isinstance(raw.status_code, int) else None
    message = raw.message if isinstance(raw.message, str) else None
    page = TasksPage(count=count or 0, status_code=status, message=message, data=raw.data)
    return Decoded(count, typed_keys(page.data), page, raw.status_code)


def combine_typed_pages(parts: Sequence[Decoded[TasksPage]]) -> Decoded[TasksPage]:
    """One page made of consecutive parts (a page read in pieces around a poisoned task)."""
    data = tuple(task for part in parts for task in part.payload.data)
    count = parts[-1].count
    page = TasksPage(count=count or 0, data=data)
    keys = [key for part in parts for key in part.keys]
    return Decoded(count, keys, page, None, parts[-1].seq)


@dataclass(slots=True)
class RawTasks:
    """A page's tasks as the server's own bytes; ``multiline`` if any contains a line break."""

    data: list[msgspec.Raw]
    multiline: bool


_ASCII = bytes(range(128))


def check_utf8(body: bytes) -> None:
    """Refuse a body that is not UTF-8: passed through, it would make the JSONL invalid.

    msgspec does not look inside the strings a Raw skips over. Decoding a whole page costs
    ~0.8 ms once it holds a character beyond the BMP; decoding only its non-ASCII bytes costs
    ~0.15 ms and catches every malformed sequence but one split across two runs of them.
    """
    if not body.isascii():
        body.translate(None, _ASCII).decode("utf-8")


def combine_raw_pages(parts: Sequence[Decoded[RawTasks]]) -> Decoded[RawTasks]:
    """One page made of consecutive parts (a page read in pieces around a poisoned task)."""
    data = [raw for part in parts for raw in part.payload.data]
    multiline = any(part.payload.multiline for part in parts)
    keys = [key for part in parts for key in part.keys]
    return Decoded(parts[-1].count, keys, RawTasks(data, multiline), None, parts[-1].seq)


def decode_raw_page(body: bytes) -> Decoded[RawTasks]:
    page: RawPage = RAW_PAGE_DECODER.decode(body)
    check_utf8(body)
    count, keys = raw_keys(body, page.data)
    return Decoded(count, keys, RawTasks(page.data, b"\n" in body), page.status_code)


def combiner_of(decode: PageDecoder[Any]) -> PageCombiner[Any]:
    """How pieces of a page decoded with ``decode`` join into one page."""
    return combine_raw_pages if decode is decode_raw_page else combine_typed_pages
