"""The export writers: one per format, each taking the pages of a pull as they arrive.

JSONL passes each task's own bytes through (``msgspec.Raw``): every field the server sent,
unknown ones included. CSV flattens the typed tasks into a fixed header of dotted columns;
Parquet keeps them nested, written a row group at a time. Each format also knows how to read
back the keys of a partial file it wrote, for a resumed export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec

from ._decode import KEYS_DECODER, TASKS_DECODER
from ._errors import ExportError
from ._models import Task
from ._paging import Page
from ._seen import SeenKeys

__all__ = [
    "CSV_HEADER",
    "CsvWriter",
    "JsonlWriter",
    "ParquetWriter",
    "Writer",
    "require_pyarrow",
    "seen_from_csv",
    "seen_from_jsonl",
    "spool_to_parquet",
    "whole_pages",
]

PARQUET_ROWS = 10_000  # rows per Parquet row group: bounded memory, good compression


class Writer(Protocol):
    def write(self, page: Page[Any]) -> int: ...

    def flush(self) -> None:
        """Hand everything written so far to the file (before an fsync and a checkpoint)."""

    def close(self) -> None: ...


class JsonlWriter:
    """One task per line, exactly the bytes the server sent (compacted if it pretty-printed)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def write(self, page: Page[Any]) -> int:
        raws: Sequence[Any] = page.select(page.payload.data)
        if not raws:
            return 0
        if page.payload.multiline:
            raws = [msgspec.json.format(bytes(raw), indent=0) for raw in raws]
        self._out.write(b"\n".join(raws))
        self._out.write(b"\n")
        return len(raws)

    def flush(self) -> None:
        pass

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


class CsvWriter:
    """One row per task, nested fields as dotted columns; UTF-8 with a BOM for spreadsheets."""

    def __init__(self, out: IO[bytes], *, header: bool) -> None:
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        self._csv = csv.writer(self._text)
        if header:
            self._text.write("\ufeff")
            self._csv.writerow(CSV_HEADER)

    def write(self, page: Page[Any]) -> int:
        tasks: Sequence[Task] = page.select(page.payload.data)
        getters = [get for _, get in CSV_COLUMNS]
        self._csv.writerows([_cell(get(task)) for get in getters] for task in tasks)
        self._text.flush()
        return len(tasks)

    def flush(self) -> None:
        self._text.flush()

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


def require_pyarrow() -> Any:
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


class ParquetWriter:
    """Nested structs kept as structs, written in row groups as pages arrive."""

    def __init__(self, out: IO[bytes]) -> None:
        pa = require_pyarrow()
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = parquet_schema(pa)
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []

    def write_tasks(self, tasks: Sequence[Task]) -> int:
        self._rows.extend(_parquet_row(task) for task in tasks)
        if len(self._rows) >= PARQUET_ROWS:
            self._flush()
        return len(tasks)

    def write(self, page: Page[Any]) -> int:
        return self.write_tasks(page.select(page.payload.data))

    def _flush(self) -> None:
        if self._rows:
            table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
            self._writer.write_table(table, row_group_size=len(self._rows))
            self._rows = []

    def flush(self) -> None:
        pass  # a resumable Parquet export spools to JSONL: only whole files are Parquet

    def close(self) -> None:
        self._flush()
        self._writer.close()


def spool_to_parquet(spool: Path, out: IO[bytes]) -> None:
    """Convert a JSONL spool (a resumable Parquet export) to Parquet, a row group at a time."""
    writer = ParquetWriter(out)
    for batch in line_batches(spool):
        writer.write_tasks(TASKS_DECODER.decode(batch))
    writer.close()


def line_batches(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """A JSONL file (up to ``limit`` bytes) as JSON arrays of up to 10,000 lines each."""
    with path.open("rb") as f:
        data = f.read(limit) if limit is not None else None
        lines = data.splitlines() if data is not None else f
        batch: list[bytes] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= PARQUET_ROWS:
                yield b"[" + b",".join(batch) + b"]"
                batch = []
        if batch:
            yield b"[" + b",".join(batch) + b"]"


def whole_pages(path: Path, size: int, page_size: int) -> tuple[int, int]:
    """How many whole pages of ``page_size`` lines the first ``size`` bytes of a JSONL file
    hold, and the byte offset where they end."""
    with path.open("rb") as f:
        data = f.read(size)
    lines = data.count(b"\n")
    pages = lines // page_size
    offset = 0
    for _ in range(pages * page_size):
        offset = data.index(b"\n", offset) + 1
    return pages, offset


def seen_from_jsonl(path: Path, offset: int) -> SeenKeys:
    seen = SeenKeys()
    for batch in line_batches(path, offset):
        seen.add_page([k.task_id or k.id for k in KEYS_DECODER.decode(batch)])
    return seen


def seen_from_csv(path: Path, offset: int) -> SeenKeys:
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
