"""Decoding a page for each consumer, with decoders built once.

A consumer asks for a page in the view it needs: typed :class:`~unpod_async.Task` Structs
(iterators, lists), the tasks' own bytes (JSONL, CSV and Parquet exports), or only the keys
that deduplication needs (rebuilding a resumed export's state). Each view decodes only what it
reads (msgspec skips the rest), and every page decode returns a :class:`Decoded` for the pager.

A typed page is one decode call. Only when a value has a type the models do not allow does that
page take the slow road: its tasks are decoded one by one, and the few that still fail are
decoded leniently (``_lenient``) and counted in :attr:`Decoded.repaired`. No task is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from ._lenient import as_key, lenient_run, lenient_task
from ._models import Organization, Run, RunsPage, Space, Task, TasksPage

__all__ = [
    "Decoded",
    "Key",
    "PageCombiner",
    "PageDecoder",
    "RawTasks",
    "decode_raw_page",
    "decode_runs_page",
    "decode_tasks_page",
    "decode_typed_page",
]

P = TypeVar("P")
T = TypeVar("T")
M = TypeVar("M", Task, Run)

# A task's identity for dedupe: task_id, else _id, else id, else its own JSON (a task with none
# is still yielded once; only an edit between two reads of it could make it look new).
Key = str | bytes | None


@dataclass(slots=True)
class Decoded(Generic[P]):
    """A decoded page: the server's ``count`` (as sent: the pager judges it), each task's
    dedupe key, the consumer's view, the envelope's own ``status_code`` (which ``_response``
    checks), and how many of its tasks had to be decoded leniently (``repaired``)."""

    count: int | None
    keys: Sequence[Key]
    payload: P
    status_code: object = None
    repaired: int = 0
    seq: int = 0  # the order in which its answer arrived (set by the pager)
    skipped: int = 0  # positions of the page that could not be read (see the pager)

    @property
    def size(self) -> int:
        return len(self.keys)


PageDecoder = Callable[[bytes], Decoded[P]]
PageCombiner = Callable[[Sequence[Decoded[P]]], Decoded[P]]


class TaskKey(msgspec.Struct, gc=False):
    """Only what dedupe, the client-side filters and a sync read: decoding a page into these
    skips everything else. Typed ``Any``, so that no value can fail the page here."""

    task_id: Any = None
    id: Any = msgspec.field(default=None, name="_id")
    doc_id: Any = msgspec.field(default=None, name="id")
    status: Any = None
    created: Any = None
    modified: Any = None


class RawPage(msgspec.Struct, gc=False):
    """A page whose tasks stay as the exact bytes the server sent (for lossless export). The
    envelope's fields are whatever the server sent: a nonsense ``count`` is the pager's to
    judge, not a reason to refuse the page."""

    count: Any = None
    status_code: Any = None
    message: Any = None
    data: list[msgspec.Raw] = []


class KeysPage(msgspec.Struct, gc=False):
    data: list[TaskKey] = []


class _TypedPage(msgspec.Struct, gc=False):
    """A page as the pager reads it: typed tasks, the envelope's fields as sent."""

    count: Any = None
    status_code: Any = None
    message: Any = None
    data: tuple[Task, ...] = ()


class ListEnvelope(msgspec.Struct, Generic[T], gc=False):
    """``{status_code, message, data: [...]}`` of the endpoints that are not paged."""

    status_code: int | None = None
    message: str | None = None
    data: list[T] = []


TASKS_PAGE_DECODER = msgspec.json.Decoder(TasksPage)
TYPED_PAGE_DECODER = msgspec.json.Decoder(_TypedPage)
TASK_DECODER = msgspec.json.Decoder(Task)
RAW_PAGE_DECODER = msgspec.json.Decoder(RawPage)
KEYS_PAGE_DECODER = msgspec.json.Decoder(KeysPage)
KEYS_DECODER = msgspec.json.Decoder(list[TaskKey])
KEY_DECODER = msgspec.json.Decoder(TaskKey)
SPACES_ENVELOPE_DECODER = msgspec.json.Decoder(ListEnvelope[Space])
ORGS_ENVELOPE_DECODER = msgspec.json.Decoder(ListEnvelope[Organization])
_ENCODER = msgspec.json.Encoder()


def count_of(value: object) -> int | None:
    """A server's ``count`` as a non-negative int, or None when missing or nonsense."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def task_key(k: TaskKey) -> str | None:
    """The dedupe key of a keys view: the same as ``Task.key`` of the typed view."""
    task_id, id_, doc_id = k.task_id, k.id, k.doc_id
    if type(task_id) is str and task_id:
        return task_id
    return as_key(task_id) or as_key(id_) or as_key(doc_id)


def typed_keys(tasks: Sequence[Task]) -> list[Key]:
    keys: list[Key] = [task.task_id or task.id or task.doc_id for task in tasks]
    if None in keys:
        keys = [
            k if k is not None else _ENCODER.encode(t) for k, t in zip(keys, tasks, strict=True)
        ]
    return keys


_NO_KEY = TaskKey()


def key_views(raws: Sequence[msgspec.Raw]) -> list[TaskKey]:
    """The keys views of tasks one by one (a task that is not an object has none)."""
    views = []
    for raw in raws:
        try:
            views.append(KEY_DECODER.decode(raw))
        except msgspec.ValidationError:
            views.append(_NO_KEY)
    return views


def keys_of(views: Sequence[TaskKey], raws: Sequence[msgspec.Raw]) -> list[Key]:
    """The dedupe key of each task: its id, or when it has none its own JSON, compacted (as
    a JSONL export writes it: a resumed export finds the same key in its file)."""
    # A string task_id is the rule: test it inline, call the general function only otherwise.
    keys: list[Key] = [t if type(t := k.task_id) is str and t else task_key(k) for k in views]
    if None in keys:
        keys = [
            k if k is not None else msgspec.json.format(bytes(r), indent=0)
            for k, r in zip(keys, raws, strict=True)
        ]
    return keys


def raw_keys(body: bytes, raws: Sequence[msgspec.Raw]) -> tuple[list[Key], list[TaskKey]]:
    """The keys and the keys views of a page whose tasks are kept raw: one typed decode, no
    per-task call (unless a task is not even an object)."""
    try:
        views: list[TaskKey] = KEYS_PAGE_DECODER.decode(body).data
    except msgspec.ValidationError:
        views = key_views(raws)
    return keys_of(views, raws), views


def _each(
    items: Sequence[msgspec.Raw], decode: Callable[[Any], M], lenient: Callable[[Any], M]
) -> tuple[tuple[M, ...], int]:
    """Each item decoded on its own, those that fail leniently; and how many did."""
    out: list[M] = []
    repaired = 0
    for item in items:
        try:
            out.append(decode(item))
        except msgspec.ValidationError:
            out.append(lenient(item))
            repaired += 1
    return tuple(out), repaired


def _tasks_page(raw: Any, tasks: tuple[Task, ...], repaired: int = 0) -> Decoded[TasksPage]:
    count = count_of(raw.count)
    page = TasksPage(
        count=count or 0,
        status_code=_as_int(raw.status_code),
        message=_as_str(raw.message),
        data=tasks,
    )
    return Decoded(count, typed_keys(tasks), page, raw.status_code, repaired)


def _repair_typed_page(body: bytes) -> Decoded[TasksPage] | None:
    """The page decoded task by task, the tasks that fail decoded leniently; ``None`` if the
    envelope itself is not a page (then the typed decode's error stands)."""
    try:
        raw: RawPage = RAW_PAGE_DECODER.decode(body)
    except msgspec.ValidationError:
        return None
    return _tasks_page(raw, *_each(raw.data, TASK_DECODER.decode, lenient_task))


def decode_typed_page(body: bytes) -> Decoded[TasksPage]:
    """A page as typed tasks: one decode call, unless a value has an unexpected type."""
    try:
        raw: _TypedPage = TYPED_PAGE_DECODER.decode(body)
    except msgspec.ValidationError:
        repaired = _repair_typed_page(body)
        if repaired is None:
            raise
        return repaired
    return _tasks_page(raw, raw.data)


def decode_tasks_page(body: bytes) -> TasksPage:
    """One page as a :class:`TasksPage` (what ``get_tasks`` returns): a count that is not a
    count is a decode error here (a whole pull tolerates it, and pages on without one)."""
    try:
        page: TasksPage = TASKS_PAGE_DECODER.decode(body)
    except msgspec.ValidationError:
        repaired = _repair_typed_page(body)
        if repaired is None or repaired.count is None:
            raise
        return repaired.payload
    return page


def combine_typed_pages(parts: Sequence[Decoded[TasksPage]]) -> Decoded[TasksPage]:
    """One page made of consecutive parts (a page read in pieces around a poisoned task)."""
    return _combined(parts, TasksPage)


def _combined(parts: Sequence[Decoded[Any]], cls: type[TasksPage] | type[RunsPage]) -> Decoded[Any]:
    data = tuple(item for part in parts for item in part.payload.data)
    count = parts[-1].count
    keys = [key for part in parts for key in part.keys]
    repaired = sum(part.repaired for part in parts)
    return Decoded(count, keys, cls(count=count or 0, data=data), None, repaired, parts[-1].seq)


@dataclass(slots=True)
class RawTasks:
    """A page's tasks as the server's own bytes; ``multiline`` if any contains a line break.

    ``views`` are the keys views decoded anyway (one per task): :attr:`statuses` and
    :attr:`created` read each task's ``status`` and ``created`` from them, as sent, for the
    client-side filters (only when a filter asks).
    """

    data: list[msgspec.Raw]
    multiline: bool
    views: Sequence[TaskKey] = ()

    @property
    def statuses(self) -> list[Any]:
        return [view.status for view in self.views]

    @property
    def created(self) -> list[Any]:
        return [view.created for view in self.views]


_ASCII = bytes(range(128))


def check_utf8(body: bytes) -> None:
    """Refuse a body that is not UTF-8: passed through, it would make the JSONL invalid.

    msgspec does not look inside the strings a Raw skips over. Decoding a whole page costs
    ~0.8 ms once it holds a character beyond the BMP; decoding only its non-ASCII bytes costs
    ~0.15 ms and catches every malformed sequence but one split across two runs of them.
    """
    if not body.isascii():
        body.translate(None, _ASCII).decode("utf-8")


def decode_raw_page(body: bytes) -> Decoded[RawTasks]:
    page: RawPage = RAW_PAGE_DECODER.decode(body)
    check_utf8(body)
    keys, views = raw_keys(body, page.data)
    return Decoded(page.count, keys, RawTasks(page.data, b"\n" in body, views), page.status_code)


def combine_raw_pages(parts: Sequence[Decoded[RawTasks]]) -> Decoded[RawTasks]:
    """One page made of consecutive parts (a page read in pieces around a poisoned task)."""
    data = [raw for part in parts for raw in part.payload.data]
    views = [view for part in parts for view in part.payload.views]
    multiline = any(part.payload.multiline for part in parts)
    keys = [key for part in parts for key in part.keys]
    return Decoded(parts[-1].count, keys, RawTasks(data, multiline, views), None, 0, parts[-1].seq)


# --- runs: a model and its decoder, through the same engine -----------------------------------


class _RunsPage(msgspec.Struct, gc=False):
    count: Any = None
    status_code: Any = None
    message: Any = None
    data: tuple[Run, ...] = ()


RUNS_PAGE_DECODER = msgspec.json.Decoder(_RunsPage)
RUN_DECODER = msgspec.json.Decoder(Run)


def run_keys(runs: Sequence[Run]) -> list[Key]:
    """The dedupe key of each run (its own JSON when it has no id at all)."""
    keys: list[Key] = [run.key for run in runs]
    if None in keys:
        keys = [k if k is not None else _ENCODER.encode(r) for k, r in zip(keys, runs, strict=True)]
    return keys


def _runs_page(raw: Any, runs: tuple[Run, ...], repaired: int = 0) -> Decoded[RunsPage]:
    count = count_of(raw.count)
    page = RunsPage(
        count=count or 0,
        status_code=_as_int(raw.status_code),
        message=_as_str(raw.message),
        data=runs,
    )
    return Decoded(count, run_keys(runs), page, raw.status_code, repaired)


def decode_runs_page(body: bytes) -> Decoded[RunsPage]:
    """A page of runs as typed :class:`Run` Structs: one decode call, unless a value has an
    unexpected type (then run by run, a failing run leniently, as for tasks)."""
    try:
        typed: _RunsPage = RUNS_PAGE_DECODER.decode(body)
    except msgspec.ValidationError:
        raw: RawPage = RAW_PAGE_DECODER.decode(body)
        return _runs_page(raw, *_each(raw.data, RUN_DECODER.decode, lenient_run))
    return _runs_page(typed, typed.data)


def combine_runs_pages(parts: Sequence[Decoded[RunsPage]]) -> Decoded[RunsPage]:
    """One page of runs made of consecutive parts (a page read in pieces)."""
    return _combined(parts, RunsPage)


_COMBINERS: dict[Any, PageCombiner[Any]] = {
    decode_typed_page: combine_typed_pages,
    decode_raw_page: combine_raw_pages,
    decode_runs_page: combine_runs_pages,
}


def combiner_of(decode: PageDecoder[Any]) -> PageCombiner[Any]:
    """How pieces of a page decoded with ``decode`` join into one page."""
    try:
        return _COMBINERS[decode]
    except KeyError:
        raise TypeError(f"no way to join pieces of pages decoded by {decode!r}") from None
