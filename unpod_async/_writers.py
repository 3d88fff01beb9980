"""The export writers: one per format, each taking the pages of a pull as they arrive.

Every writer is given the tasks' own bytes (``msgspec.Raw``). JSONL passes them through: every
field the server sent, unknown ones included. CSV flattens each task into a fixed header of
dotted columns and Parquet keeps it nested, both from the task's JSON and both with an
``extra`` column for whatever no column holds (``_columns``), so no format loses a field. Each
writer applies the client-side filters (:meth:`TaskFilter.select`) to the tasks the pager
marks new; each format also knows how to read back the keys of a partial file it wrote, for a
resumed export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec

from ._columns import CSV_HEADER, csv_row, parquet_row, parquet_schema, unguard
from ._decode import KEYS_DECODER, RawTasks, keys_of
from ._errors import ExportError
from ._lenient import as_key
from ._page import Page
from ._params import NO_FILTER, TaskFilter
from ._seen import SeenKeys

__all__ = [
    "CSV_HEADER",
    "CsvWriter",
    "JsonlWriter",
    "ParquetWriter",
    "Writer",
    "WriterOptions",
    "require_pyarrow",
    "seen_from_csv",
    "seen_from_jsonl",
    "spool_to_parquet",
    "whole_pages",
]

PARQUET_ROWS = 10_000  # rows per Parquet row group: bounded memory, good compression

_ANY = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """What the writers are told beyond the pages: the filter whose client-side part they
    apply, and whether CSV cells are guarded against formulas."""

    where: TaskFilter = field(default=NO_FILTER)
    csv_formula_guard: bool = True


class Writer(Protocol):
    def write(self, page: Page[Any]) -> int: ...

    def flush(self) -> None:
        """Hand everything written so far to the file (before an fsync and a checkpoint)."""

    def close(self) -> None: ...


def selected_raws(page: Page[RawTasks], where: TaskFilter) -> Sequence[msgspec.Raw]:
    """The new tasks of ``page`` that pass the client-side filters, as the server's bytes.

    The one place the exports apply the filter: after deduplication, on the keys view the
    page was decoded with anyway (no task is parsed for it).
    """
    payload = page.payload
    raws = page.select(payload.data)
    if not where.client_side:
        return raws
    return where.select(raws, page.select(payload.statuses), page.select(payload.created))


def _decoded(raws: Sequence[msgspec.Raw]) -> list[Any]:
    """The tasks as plain JSON values, in one decode call."""
    if not raws:
        return []
    decoded: list[Any] = _ANY.decode(b"[" + b",".join(raws) + b"]")
    return decoded


def task_lines(raws: Sequence[Any], multiline: bool) -> Sequence[Any]:
    """Each task's JSON on one line, as a JSONL export writes it: the server's own bytes,
    compacted when the page was pretty-printed (``multiline``)."""
    if multiline:
        return [msgspec.json.format(bytes(raw), indent=0) for raw in raws]
    return raws


class JsonlWriter:
    """One task per line, exactly the bytes the server sent (compacted if it pretty-printed)."""

    def __init__(self, out: IO[bytes], options: WriterOptions | None = None) -> None:
        self._out = out
        self._where = (options or WriterOptions()).where

    def write(self, page: Page[Any]) -> int:
        raws = task_lines(selected_raws(page, self._where), page.payload.multiline)
        if not raws:
            return 0
        self._out.write(b"\n".join(raws))
        self._out.write(b"\n")
        return len(raws)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class CsvWriter:
    """One row per task, nested fields as dotted columns; UTF-8 with a BOM for spreadsheets."""

    def __init__(
        self, out: IO[bytes], *, header: bool, options: WriterOptions | None = None
    ) -> None:
        options = options or WriterOptions()
        self._where = options.where
        self._guarded = options.csv_formula_guard
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        self._csv = csv.writer(self._text)
        if header:
            self._text.write("\ufeff")
            self._csv.writerow(CSV_HEADER)

    def write(self, page: Page[Any]) -> int:
        tasks = _decoded(selected_raws(page, self._where))
        guarded = self._guarded
        self._csv.writerows([csv_row(task, guarded=guarded) for task in tasks])
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
            "Parquet export needs pyarrow, which is not installed: pip install pyarrow "
            "(the unpod-async[parquet] extra)"
        ) from None
    return pyarrow


class ParquetWriter:
    """Nested structs kept as structs, written in row groups as pages arrive."""

    def __init__(self, out: IO[bytes], options: WriterOptions | None = None) -> None:
        pa = require_pyarrow()
        import pyarrow.parquet as pq

        self._pa = pa
        self._where = (options or WriterOptions()).where
        self._schema = parquet_schema(pa)
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []

    def write_tasks(self, tasks: Sequence[Any]) -> int:
        """Add ``tasks`` (each task's JSON as plain values)."""
        self._rows.extend(parquet_row(task) for task in tasks)
        if len(self._rows) >= PARQUET_ROWS:
            self._flush()
        return len(tasks)

    def write(self, page: Page[Any]) -> int:
        return self.write_tasks(_decoded(selected_raws(page, self._where)))

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
    """Convert a JSONL spool (a resumable Parquet export) to Parquet, a row group at a time.

    The spool holds only what passed the filters already.
    """
    writer = ParquetWriter(out)
    for batch in line_batches(spool):
        writer.write_tasks(_ANY.decode(batch))
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


_RAWS = msgspec.json.Decoder(list[msgspec.Raw])


def seen_from_jsonl(path: Path, offset: int) -> SeenKeys:
    """The keys of the tasks in the first ``offset`` bytes of a JSONL export, as the pull
    that wrote them keyed them (see :func:`keys_of`)."""
    seen = SeenKeys()
    for batch in line_batches(path, offset):
        seen.add_page(keys_of(KEYS_DECODER.decode(batch), _RAWS.decode(batch)))
    return seen


_KEY_FIELDS = ("task_id", "_id", "id")


def _csv_key(row: list[str], columns: list[int], extra: int, guarded: bool) -> str | None:
    """A CSV row's dedupe key, the same as the raw view's (``task_key``) when it was written:
    a key column's cell, or its exact value from ``extra`` when the cell could not hold it."""
    held: Any = None
    cell = row[extra] if extra < len(row) else ""
    if cell and any(f'"{name}"' in cell for name in _KEY_FIELDS):
        held = _ANY.decode(cell)
    for name, index in zip(_KEY_FIELDS, columns, strict=True):
        if isinstance(held, dict) and name in held:
            key = as_key(held[name])
        else:
            value = row[index] if index < len(row) else ""
            key = (unguard(value) if guarded else value) or None
        if key is not None:
            return key
    return None


def seen_from_csv(path: Path, offset: int, *, formula_guard: bool = True) -> SeenKeys:
    seen = SeenKeys()
    with path.open("rb") as raw:
        data = raw.read(offset)
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = next(reader, None)
    if header != CSV_HEADER:
        raise ExportError(f"cannot resume: {path} does not start with the expected CSV header")
    columns = [CSV_HEADER.index(name) for name in _KEY_FIELDS]
    extra = CSV_HEADER.index("extra")
    seen.add_page([_csv_key(row, columns, extra, formula_guard) for row in reader])
    return seen
