"""Bulk export of a whole space to JSONL, CSV or Parquet: atomic, resumable, flat in memory.

JSONL passes each task's own bytes through (``msgspec.Raw``): every field the server sent,
unknown ones included, written a page at a time. CSV and Parquet decode into the typed
models. Output goes to a temporary file beside the destination, renamed into place only when
the export is complete; the destination is never truncated or clobbered by a failure.

With ``resume=True`` a checkpoint beside the output records, after every page, how many bytes
of the partial file are complete and which page comes next; a rerun truncates the partial file
to that point, rebuilds the set of task keys from it, and fetches only the missing pages.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from . import _models
from ._errors import ExportError
from ._models import Key, RawPage, Task, TasksPage
from ._pagination import Page, PullStats, ResumePoint, SeenKeys

if TYPE_CHECKING:
    from ._client import UnpodClient

__all__ = ["ExportProgress", "ExportStats", "export_tasks"]

logger = logging.getLogger("unpod_async")

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")
_CHECKPOINT_VERSION = 1
_PARQUET_ROWS = 10_000  # rows per Parquet row group: bounded memory, good compression


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """What a ``progress`` callback is told after each page written."""

    pages_done: int
    pages_planned: int
    tasks_written: int
    expected: int
    retries: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class ExportStats:
    """The figures of a finished export.

    ``expected`` is the count the server reported; ``duplicates`` the tasks seen twice and
    dropped; ``passes`` how many times the space was read (more than 1 means it drifted) and
    ``recovered`` the tasks the extra passes found.
    """

    tasks: int
    pages: int
    expected: int
    duplicates: int
    passes: int
    recovered: int
    retries: int
    seconds: float
    bytes: int
    path: str | None
    format: str
    resumed_pages: int = 0

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[ExportProgress], object]


# --- page decoding for each format --------------------------------------------------------


@dataclass(slots=True)
class _RawTasks:
    """A page's tasks as the server's own bytes; ``multiline`` if any contains a line break."""

    data: list[msgspec.Raw]
    multiline: bool


_ASCII = bytes(range(128))


def _check_utf8(body: bytes) -> None:
    """Refuse a body that is not UTF-8: passed through, it would make the JSONL invalid.

    msgspec does not look inside the strings a Raw skips over. Decoding a whole page costs
    ~0.8 ms once it holds a character beyond the BMP; decoding only its non-ASCII bytes costs
    ~0.15 ms and catches every malformed sequence but one split across two runs of them.
    """
    if not body.isascii():
        body.translate(None, _ASCII).decode("utf-8")


def _decode_raw(body: bytes) -> _RawTasks:
    page: RawPage = _models.RAW_PAGE_DECODER.decode(body)
    _check_utf8(body)
    return _RawTasks(page.data, b"\n" in body)


def _raw_keys(payload: _RawTasks, body: bytes) -> tuple[int, list[Key]]:
    return _models.raw_keys(body, payload.data)


def _typed_keys(page: TasksPage, body: bytes) -> tuple[int, list[Key]]:
    return page.count, _models.typed_keys(page.data)


def _selected(data: Sequence[Any], fresh: list[int] | None) -> Sequence[Any]:
    return data if fresh is None else [data[i] for i in fresh]


# --- writers --------------------------------------------------------------------------------


class _Writer(Protocol):
    def write(self, page: Page[Any], fresh: list[int] | None) -> int: ...

    def close(self) -> None: ...


class _JsonlWriter:
    """One task per line, exactly the bytes the server sent (compacted if it pretty-printed)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def write(self, page: Page[Any], fresh: list[int] | None) -> int:
        raws: Sequence[Any] = _selected(page.payload.data, fresh)
        if not raws:
            return 0
        if page.payload.multiline:
            raws = [msgspec.json.format(bytes(raw), indent=0) for raw in raws]
        self._out.write(b"\n".join(raws))
        self._out.write(b"\n")
        return len(raws)

    def close(self) -> None:
        pass


def _transcript_text(task: Task) -> str:
    if task.output is None:
        return ""
    return "\n".join(f"{turn.role}: {turn.content}" for turn in task.output.transcript)


_json = msgspec.json.Encoder()


def _as_json(value: object) -> str:
    return "" if value is None else _json.encode(value).decode()


def _cell(value: object) -> object:
    return "" if value is None else value


def _path(path: str) -> Callable[[Task], object]:
    """A getter for a dotted column: ``output.user_info.name`` -> task.output.user_info.name."""
    names = ["id" if name == "_id" else name for name in path.split(".")]

    def get(task: Task) -> object:
        value: object = task
        for name in names:
            if value is None:
                return None
            value = getattr(value, name)
        return value

    return get


# The header is fixed (not derived from the data), so it never changes between runs.
CSV_HEADER = [
    "_id",
    "task_id",
    "run_id",
    "status",
    "run_mode",
    "execution_type",
    "assignee",
    "ref_id",
    "created",
    "modified",
    "scheduled_timestamp",
    "retry_attempt",
    "task.objective",
    "task.instructions",
    "input",
    *(
        f"output.{name}"
        for name in (
            "call_id",
            "call_type",
            "call_status",
            "duration",
            "start_time",
            "end_time",
            "recording_url",
            "cost",
            "transcript",
        )
    ),
    *(
        f"output.post_call_data.{name}"
        for name in ("summary", "outcome", "sentiment", "follow_up_required", "classification")
    ),
    *(f"output.user_info.{name}" for name in ("name", "contact_number", "email")),
]
_classification = _path("output.post_call_data.classification")
_SPECIAL: dict[str, Callable[[Task], object]] = {
    "input": lambda t: _as_json(t.input),
    "output.transcript": _transcript_text,
    "output.post_call_data.classification": lambda t: _as_json(_classification(t)),
}
CSV_COLUMNS = [(name, _SPECIAL.get(name) or _path(name)) for name in CSV_HEADER]


class _CsvWriter:
    """One row per task, nested fields as dotted columns; UTF-8 with a BOM for spreadsheets."""

    def __init__(self, out: IO[bytes], *, header: bool) -> None:
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        self._csv = csv.writer(self._text)
        if header:
            self._text.write("\ufeff")
            self._csv.writerow(CSV_HEADER)

    def write(self, page: Page[Any], fresh: list[int] | None) -> int:
        tasks: Sequence[Task] = _selected(page.payload.data, fresh)
        getters = [get for _, get in CSV_COLUMNS]
        self._csv.writerows([_cell(get(task)) for get in getters] for task in tasks)
        self._text.flush()
        return len(tasks)

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


def _require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ExportError(
            "Parquet export needs pyarrow: pip install 'unpod-async[parquet]'"
        ) from None
    return pyarrow


def parquet_schema(pa: Any) -> Any:
    text = pa.string()
    turn = pa.struct([("role", text), ("content", text), ("timestamp", text)])
    return pa.schema(
        [
            ("_id", text),
            ("task_id", text),
            ("run_id", text),
            ("status", text),
            ("run_mode", text),
            ("execution_type", text),
            ("assignee", text),
            ("ref_id", text),
            ("task", pa.struct([("objective", text), ("instructions", text)])),
            ("input", text),
            (
                "output",
                pa.struct(
                    [
                        ("call_id", text),
                        ("call_type", text),
                        ("call_status", text),
                        ("duration", pa.float64()),
                        ("start_time", text),
                        ("end_time", text),
                        ("recording_url", text),
                        ("cost", pa.float64()),
                        ("transcript", pa.list_(turn)),
                        (
                            "post_call_data",
                            pa.struct(
                                [
                                    ("summary", text),
                                    ("outcome", text),
                                    ("sentiment", text),
                                    ("follow_up_required", pa.bool_()),
                                    ("classification", text),
                                ]
                            ),
                        ),
                        (
                            "user_info",
                            pa.struct([("name", text), ("contact_number", text), ("email", text)]),
                        ),
                    ]
                ),
            ),
            ("created", text),
            ("modified", text),
            ("scheduled_timestamp", text),
            ("retry_attempt", pa.int64()),
        ]
    )


def _parquet_row(task: Task) -> dict[str, Any]:
    row: dict[str, Any] = msgspec.to_builtins(task)
    row["input"] = None if task.input is None else _as_json(task.input)
    if task.scheduled_timestamp is not None:
        row["scheduled_timestamp"] = str(task.scheduled_timestamp)
    output = row.get("output")
    if output and output.get("post_call_data"):
        data = output["post_call_data"]
        if data.get("classification") is not None:
            data["classification"] = _as_json(data["classification"])
    return row


class _ParquetWriter:
    """Nested structs kept as structs, written in row groups as pages arrive."""

    def __init__(self, out: IO[bytes]) -> None:
        pa = _require_pyarrow()
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = parquet_schema(pa)
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []

    def write_tasks(self, tasks: Sequence[Task]) -> int:
        self._rows.extend(_parquet_row(task) for task in tasks)
        if len(self._rows) >= _PARQUET_ROWS:
            self._flush()
        return len(tasks)

    def write(self, page: Page[Any], fresh: list[int] | None) -> int:
        return self.write_tasks(_selected(page.payload.data, fresh))

    def _flush(self) -> None:
        if self._rows:
            table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
            self._writer.write_table(table, row_group_size=len(self._rows))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _spool_to_parquet(spool: Path, out: IO[bytes]) -> None:
    """Convert a JSONL spool (a resumable Parquet export) to Parquet, a row group at a time."""
    writer = _ParquetWriter(out)
    decoder = msgspec.json.Decoder(list[Task])
    for batch in _line_batches(spool):
        writer.write_tasks(decoder.decode(batch))
    writer.close()


# --- checkpoint -----------------------------------------------------------------------------


class _Checkpoint(msgspec.Struct, kw_only=True):
    version: int = _CHECKPOINT_VERSION
    identity: str
    offset: int = 0
    tasks: int = 0
    next_page: int = 1
    size: int = 0
    count: int = 0
    dirty: bool = False
    pass_complete: bool = False


def _write_checkpoint(path: Path, state: _Checkpoint) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.encode(state))
    os.replace(tmp, path)


def _line_batches(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """A JSONL file (up to ``limit`` bytes) as JSON arrays of up to 10,000 lines each."""
    with path.open("rb") as f:
        data = f.read(limit) if limit is not None else None
        lines = data.splitlines() if data is not None else f
        batch: list[bytes] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= _PARQUET_ROWS:
                yield b"[" + b",".join(batch) + b"]"
                batch = []
        if batch:
            yield b"[" + b",".join(batch) + b"]"


def _seen_from_jsonl(path: Path, offset: int) -> SeenKeys:
    seen = SeenKeys()
    decoder = msgspec.json.Decoder(list[_models.TaskKey])
    for batch in _line_batches(path, offset):
        seen.add_page([k.task_id or k.id for k in decoder.decode(batch)])
    return seen


def _seen_from_csv(path: Path, offset: int) -> SeenKeys:
    seen = SeenKeys()
    with path.open("rb") as raw:
        data = raw.read(offset)
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = next(reader, None)
    if header != CSV_HEADER:
        raise ExportError(f"cannot resume: {path} does not start with the expected CSV header")
    id_col, task_col = CSV_HEADER.index("_id"), CSV_HEADER.index("task_id")
    seen.add_page([row[task_col] or row[id_col] or None for row in reader])
    return seen


# --- the export -----------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Target:
    """Where bytes go: a temporary file beside the destination (renamed on success), or a stream."""

    def __init__(self, dest: str | os.PathLike[str] | IO[bytes], *, resume: bool) -> None:
        self.stream: IO[bytes] | None = None
        self.path: Path | None = None
        self.partial = Path()
        self.checkpoint: Path | None = None
        if dest == "-":
            self.stream = sys.stdout.buffer
        elif isinstance(dest, str | os.PathLike):
            self.path = Path(dest)
        elif hasattr(dest, "write"):
            self.stream = dest
        else:
            raise TypeError(f"path must be a path, '-' or a binary stream, not {type(dest)!r}")
        if self.stream is not None and resume:
            raise ValueError("resume=True needs a file path, not a stream")
        if self.path is not None:
            if self.path.is_dir():
                raise ValueError(f"{self.path} is a directory; give a file path")
            if not self.path.parent.is_dir():
                raise ValueError(f"directory {self.path.parent} does not exist")
            stem = f".{self.path.name}"
            if resume:
                self.partial = self.path.with_name(f"{stem}.unpod-partial")
                self.checkpoint = self.path.with_name(f"{stem}.unpod-resume")
            else:
                self.partial = self.path.with_name(f"{stem}.{uuid.uuid4().hex[:12]}.unpod-tmp")


def _identity(space_token: str, fmt: str, page_size: int, filters: str) -> str:
    return f"{space_token}|{fmt}|{page_size}|{filters}"


async def export_tasks(
    client: UnpodClient,
    space_token: str,
    path: str | os.PathLike[str] | IO[bytes],
    *,
    format: Format = "jsonl",
    page_size: int = 100,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    deadline: float | None = None,
    filters: str = "",
) -> ExportStats:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be a callable taking an ExportProgress")
    if format == "parquet":
        _require_pyarrow()  # fail before any request
    target = _Target(path, resume=resume)
    started = time.monotonic()
    stats = PullStats()
    spooled = format == "parquet" and target.checkpoint is not None
    raw = format == "jsonl" or spooled
    identity = _identity(space_token, format, page_size, filters)

    # Resume: trust the checkpoint only if it describes this very export.
    point: ResumePoint | None = None
    seen: SeenKeys | None = None
    state = _Checkpoint(identity=identity)
    resumed_pages = 0
    if target.checkpoint is not None and target.checkpoint.exists() and target.partial.exists():
        try:
            state = msgspec.json.decode(target.checkpoint.read_bytes(), type=_Checkpoint)
        except (msgspec.DecodeError, OSError) as exc:
            raise ExportError(f"cannot read checkpoint {target.checkpoint}: {exc}") from None
        if state.identity != identity or state.version != _CHECKPOINT_VERSION:
            raise ExportError(
                f"checkpoint {target.checkpoint} belongs to a different export "
                "(space, format, page size or filters differ); delete it or drop resume"
            )
        if state.next_page > 1 or state.pass_complete:
            with target.partial.open("r+b") as f:
                f.truncate(state.offset)
            seen = (_seen_from_jsonl if raw else _seen_from_csv)(target.partial, state.offset)
            point = ResumePoint(
                next_page=state.next_page,
                size=state.size,
                count=state.count,
                dirty=state.dirty,
                pass_complete=state.pass_complete,
            )
            resumed_pages = state.next_page - 1
            stats.tasks = state.tasks
            logger.info(
                "resuming export at page %d with %d tasks already written",
                state.next_page,
                state.tasks,
            )

    decode: Callable[[bytes], Any] = _decode_raw if raw else _models.TASKS_PAGE_DECODER.decode
    keys_of: Callable[[Any, bytes], tuple[int, Sequence[Key]]] = _raw_keys if raw else _typed_keys
    pages = client._pull(
        space_token,
        decode,
        keys_of,
        page_size=page_size,
        deadline=deadline,
        stats=stats,
        filters=filters,
        seen=seen,
        resume=point,
    )

    counter: _Counter | None = None
    out: IO[bytes]
    if target.stream is not None:
        counter = _Counter(target.stream)
        out = counter  # type: ignore[assignment]
    else:
        try:
            out = target.partial.open("r+b" if point is not None else "wb")
        except OSError as exc:
            raise ExportError(f"cannot create {target.partial}: {exc.strerror}") from None
        out.seek(state.offset if point is not None else 0)
    ok = False
    pages_written = 0
    try:
        writer: _Writer
        if raw:
            writer = _JsonlWriter(out)
        elif format == "csv":
            writer = _CsvWriter(out, header=point is None)
        else:
            writer = _ParquetWriter(out)
        try:
            async for page, fresh in pages:
                writer.write(page, fresh)
                pages_written += 1
                if target.checkpoint is not None:
                    out.flush()
                    _advance(state, page, fresh, page_size)
                    state.offset = out.tell()
                    state.tasks = stats.tasks
                    _write_checkpoint(target.checkpoint, state)
                if progress is not None:
                    done = pages_written + resumed_pages
                    progress(
                        ExportProgress(
                            pages_done=done,
                            pages_planned=max(stats.planned_pages, done),
                            tasks_written=stats.tasks,
                            expected=stats.expected,
                            retries=stats.retries,
                            elapsed=time.monotonic() - started,
                        )
                    )
        finally:
            await pages.aclose()
        writer.close()
        out.flush()
        if target.path is None:
            assert counter is not None
            size = counter.count
        else:
            os.fsync(out.fileno())
            out.close()
            if spooled:
                target.partial = _convert_spool(target.path, target.partial)
            size = target.partial.stat().st_size
            os.replace(target.partial, target.path)
            _fsync_dir(target.path.parent)
            if target.checkpoint is not None:
                target.checkpoint.unlink(missing_ok=True)
        ok = True
    except OSError as exc:
        raise ExportError(
            f"cannot write {target.path or 'the output stream'}: {exc.strerror or exc}"
        ) from None
    finally:
        if target.path is not None and not ok:
            with contextlib.suppress(OSError):  # closing flushes: may fail again on a full disk
                out.close()
            if target.checkpoint is None:
                target.partial.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    result = ExportStats(
        tasks=stats.tasks,
        pages=stats.pages,
        expected=stats.expected,
        duplicates=stats.duplicates,
        passes=stats.passes,
        recovered=stats.recovered,
        retries=stats.retries,
        seconds=seconds,
        bytes=size,
        path=str(target.path) if target.path is not None else None,
        format=format,
        resumed_pages=resumed_pages,
    )
    logger.info(
        "exported %d tasks (%d expected) in %.2fs: %d pages, %d retries, %d duplicates dropped",
        result.tasks,
        result.expected,
        seconds,
        result.pages,
        result.retries,
        result.duplicates,
    )
    return result


def _advance(state: _Checkpoint, page: Page[Any], fresh: list[int] | None, page_size: int) -> None:
    """Record a written page in the checkpoint."""
    if page.pass_no > 1:
        state.pass_complete = state.dirty = True
        return
    if page.number == 1:
        state.count = page.count
        state.size = (
            page.size if 0 < page.size < page_size and page.count > page.size else page_size
        )
    state.dirty = state.dirty or fresh is not None or page.count != state.count
    state.next_page = page.number + 1
    if page.size < state.size:
        state.pass_complete = True  # a short page ends the pass


def _convert_spool(dest: Path, spool: Path) -> Path:
    """Turn the finished JSONL spool of a resumable Parquet export into the Parquet file."""
    final = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.unpod-tmp")
    try:
        with final.open("wb") as out:
            _spool_to_parquet(spool, out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    spool.unlink()
    return final


class _Counter(io.RawIOBase):
    """A write-only view of a caller's stream that counts the bytes through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self._stream.write(data)
        self.count += n
        return n

    def flush(self) -> None:
        self._stream.flush()
