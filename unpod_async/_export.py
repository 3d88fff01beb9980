"""Bulk export of a whole pull to JSONL, CSV or Parquet: prepare, write loop, finalize.

The export never talks to the server itself: :meth:`ExportJob.prepare` checks the arguments and
reads any checkpoint (before a single request), the client builds the page stream it asks for
(the decoder, the keys already written, the resume point), and :meth:`ExportJob.run` writes
that stream through a format's writer (``_writers``) into a file that appears only when whole
(``_atomic``), checkpointing after every page when resumable (``_checkpoint``).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from . import _checkpoint
from ._atomic import AtomicFile, check_destination, temp_beside
from ._decode import PageDecoder, decode_raw_page
from ._errors import ExportError
from ._paging import Page, PullStats, ResumePoint
from ._seen import SeenKeys
from ._writers import (
    CsvWriter,
    JsonlWriter,
    ParquetWriter,
    Writer,
    WriterOptions,
    require_pyarrow,
    seen_from_csv,
    seen_from_jsonl,
    spool_to_parquet,
)

__all__ = ["FORMATS", "ExportJob", "ExportProgress", "ExportStats", "Format", "ProgressCallback"]

logger = logging.getLogger("unpod_async")

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
Destination = str | os.PathLike[str] | IO[bytes]


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


class ExportJob:
    """One export, from its checked arguments to its :class:`ExportStats`."""

    def __init__(
        self,
        *,
        format: Format,
        page_size: int,
        progress: ProgressCallback | None,
        stream: IO[bytes] | None,
        file: AtomicFile | None,
        checkpoint: Path | None,
        identity: str,
        options: WriterOptions | None = None,
    ) -> None:
        self.format = format
        self.options = options or WriterOptions()
        self.page_size = page_size
        self._progress = progress
        self._stream = stream
        self._file = file
        self._checkpoint_path = checkpoint
        # Parquet with resume spools to JSONL (appendable) and converts at the end.
        self._spooled = format == "parquet" and checkpoint is not None
        self._raw = format == "jsonl" or self._spooled
        self.stats = PullStats()
        self.state = _checkpoint.Checkpoint(identity=identity)
        self.seen: SeenKeys | None = None
        self.resume_point: ResumePoint | None = None
        self.resumed_pages = 0

    @classmethod
    def prepare(
        cls,
        dest: Destination,
        *,
        format: Format,
        page_size: int,
        resume: bool,
        progress: ProgressCallback | None,
        identity: str,
        options: WriterOptions | None = None,
    ) -> ExportJob:
        """Check everything that can be checked before a request, and read any checkpoint."""
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if progress is not None and not callable(progress):
            raise TypeError("progress must be a callable taking an ExportProgress")
        if format == "parquet":
            require_pyarrow()
        stream: IO[bytes] | None = None
        path: Path | None = None
        if dest == "-":
            stream = sys.stdout.buffer
        elif isinstance(dest, str | os.PathLike):
            path = Path(dest)
        elif hasattr(dest, "write"):
            stream = dest
        else:
            raise TypeError(f"path must be a path, '-' or a binary stream, not {type(dest)!r}")
        if stream is not None and resume:
            raise ValueError("resume=True needs a file path, not a stream")
        file = checkpoint = None
        if path is not None:
            check_destination(path)
            if resume:
                stem = f".{path.name}"
                file = AtomicFile(path, partial=path.with_name(f"{stem}.unpod-partial"))
                checkpoint = path.with_name(f"{stem}.unpod-resume")
            else:
                file = AtomicFile(path)
        job = cls(
            format=format,
            page_size=page_size,
            progress=progress,
            stream=stream,
            file=file,
            checkpoint=checkpoint,
            identity=identity,
            options=options,
        )
        job._load_checkpoint()
        return job

    @property
    def decode(self) -> PageDecoder[Any]:
        """The page view every writer takes: the tasks' own bytes (CSV and Parquet read each
        task's JSON, so that no field is lost and no type can fail a page)."""
        return decode_raw_page

    def _load_checkpoint(self) -> None:
        path, file = self._checkpoint_path, self._file
        if path is None or file is None or not path.exists() or not file.partial.exists():
            return
        state = _checkpoint.load(path, self.state.identity)
        self.state = state
        if not state.started:
            return
        with file.partial.open("r+b") as f:
            f.truncate(state.offset)
        if self._raw:
            self.seen = seen_from_jsonl(file.partial, state.offset)
        else:
            guarded = self.options.csv_formula_guard
            self.seen = seen_from_csv(file.partial, state.offset, formula_guard=guarded)
        self.resume_point = state.resume_point()
        self.resumed_pages = state.next_page - 1
        self.stats.tasks = state.tasks
        logger.info(
            "resuming export at page %d with %d tasks already written",
            state.next_page,
            state.tasks,
        )

    def _writer(self, out: IO[bytes]) -> Writer:
        if self._raw:
            return JsonlWriter(out, self.options)
        if self.format == "csv":
            return CsvWriter(out, header=self.resume_point is None, options=self.options)
        return ParquetWriter(out, self.options)

    async def run(self, pages: AsyncGenerator[Page[Any], None]) -> ExportStats:
        """Write every page of ``pages`` and put the file in place; the export's figures."""
        started = time.monotonic()
        file = self._file
        counter: _Counter | None = None
        out: IO[bytes]
        if file is None:
            assert self._stream is not None
            counter = _Counter(self._stream)
            out = counter  # type: ignore[assignment]
        else:
            try:
                out = file.open(self.state.offset if self.resume_point is not None else None)
            except OSError as exc:
                await pages.aclose()
                raise ExportError(f"cannot create {file.partial}: {exc.strerror}") from None
        ok = False
        try:
            writer = self._writer(out)
            try:
                await self._write_all(pages, writer, out, started)
            finally:
                await pages.aclose()
            writer.close()
            out.flush()
            if file is None:
                assert counter is not None
                size = counter.count
            else:
                file.finish()
                size = file.commit(self._convert_spool(file) if self._spooled else None)
                if self._checkpoint_path is not None:
                    self._checkpoint_path.unlink(missing_ok=True)
            ok = True
        except OSError as exc:
            where = file.dest if file is not None else "the output stream"
            raise ExportError(f"cannot write {where}: {exc.strerror or exc}") from None
        finally:
            if file is not None and not ok:
                file.abort()
        return self._result(size, time.monotonic() - started)

    async def _write_all(
        self,
        pages: AsyncGenerator[Page[Any], None],
        writer: Writer,
        out: IO[bytes],
        started: float,
    ) -> None:
        stats, state, checkpoint = self.stats, self.state, self._checkpoint_path
        written = 0
        async for page in pages:
            # The pager counted the page's new tasks; those the client-side filters left out
            # were not written.
            stats.tasks -= page.n_new - writer.write(page)
            written += 1
            if checkpoint is not None:
                out.flush()
                state.advance(page, self.page_size)
                state.offset = out.tell()
                state.tasks = stats.tasks
                _checkpoint.save(checkpoint, state)
            if self._progress is not None:
                done = written + self.resumed_pages
                self._progress(
                    ExportProgress(
                        pages_done=done,
                        pages_planned=max(stats.planned_pages, done),
                        tasks_written=stats.tasks,
                        expected=stats.expected,
                        retries=stats.retries,
                        elapsed=time.monotonic() - started,
                    )
                )

    @staticmethod
    def _convert_spool(file: AtomicFile) -> Path:
        """Turn the finished JSONL spool of a resumable Parquet export into the Parquet file."""
        final = temp_beside(file.dest)
        try:
            with final.open("wb") as out:
                spool_to_parquet(file.partial, out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        file.partial.unlink()
        return final

    def _result(self, size: int, seconds: float) -> ExportStats:
        stats = self.stats
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
            path=str(self._file.dest) if self._file is not None else None,
            format=self.format,
            resumed_pages=self.resumed_pages,
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
