"""Bulk export of a whole pull to JSONL, CSV or Parquet: prepare, write loop, finalize.

The export never talks to the server itself: :meth:`ExportJob.prepare` checks the arguments and
reads any checkpoint (before a single request), the client builds the page stream it asks for
(the decoder, the keys already written, the resume point), and :meth:`ExportJob.run` writes
that stream through a format's writer (``_writers``) into a file that appears only when whole
(``_atomic``), checkpointing after every page when resumable (``_checkpoint``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from . import _checkpoint
from ._atomic import (
    AtomicFile,
    check_destination,
    create_private,
    remove_stale_temps,
    temp_beside,
)
from ._checkpoint import Identity
from ._decode import PageDecoder, decode_raw_page
from ._errors import ExportError
from ._oslock import LockHeld, OsLock
from ._page import Page, PullStats, ResumePoint
from ._params import TaskFilter, TaskFilterArgs, check_positive, check_seconds
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
    whole_pages,
)

__all__ = [
    "FORMATS",
    "ExportArgs",
    "ExportJob",
    "ExportProgress",
    "ExportSettings",
    "ExportStats",
    "Format",
    "ProgressCallback",
]

logger = logging.getLogger("unpod_async")

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
Destination = str | os.PathLike[str] | IO[bytes]
T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """What a ``progress`` callback is told after each page written."""

    pages_done: int
    pages_planned: int
    tasks_written: int
    expected: int
    retries: int
    elapsed: float
    bytes_written: int = 0  # the output's size so far (Parquet: as its row groups land)


@dataclass(frozen=True, slots=True)
class ExportStats:
    """The figures of a finished export.

    ``expected`` is the count page 1 reported and ``last_count`` the latest; ``duplicates``
    the tasks seen twice and dropped; ``passes`` how many full passes were read;
    ``repairs`` the re-reads around a boundary where the space's changes could have hidden a
    task, and ``recovered`` the tasks they (or a re-read pass) found; ``arrivals`` the tasks
    that arrived during the export, read from the head; ``missing`` how many fewer tasks than
    ``last_count`` the file holds (0 when ``complete``); ``skipped`` the positions of tasks the
    server fails every read of (see :attr:`PullStats.skipped`); ``empty_pages`` the pages
    read that held no task, such as the one past a full last page that confirms the end (200
    full pages of tasks take 201 requests).
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
    repairs: int = 0
    arrivals: int = 0
    rereads: int = 0
    requests: int = 0
    last_count: int | None = None
    missing: int = 0
    stopped: str | None = None
    skipped: tuple[int, ...] = ()
    empty_pages: int = 0

    @property
    def complete(self) -> bool:
        """Whether the file holds every task the server last counted."""
        return self.missing == 0 and self.stopped is None and not self.skipped

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[ExportProgress], object]


class ExportArgs(TaskFilterArgs, total=False):
    """The keywords every export takes (``export_tasks``, ``export_agent_tasks``,
    ``export_spaces``), the filters' included: ``format`` (``"jsonl"``), ``page_size`` (100),
    ``resume`` (False), ``deadline`` (None: seconds for the whole export), ``strict`` (False),
    ``csv_formula_guard`` (True)."""

    format: Format
    page_size: int
    resume: bool
    deadline: float | None
    strict: bool
    csv_formula_guard: bool


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """:class:`ExportArgs` checked (before any request), the filters apart."""

    format: Format = "jsonl"
    page_size: int = 100
    resume: bool = False
    deadline: float | None = None
    strict: bool = False
    csv_formula_guard: bool = True

    @classmethod
    def split(cls, args: ExportArgs) -> tuple[ExportSettings, TaskFilter]:
        """The export's settings and its filter, each checked."""
        given: dict[str, Any] = dict(args)
        settings = cls(**{name: given.pop(name) for name in _SETTINGS if name in given})
        if settings.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {settings.format!r}")
        check_positive("page_size", settings.page_size)
        check_seconds("deadline", settings.deadline)
        return settings, TaskFilter(**given)


_SETTINGS = ("format", "page_size", "resume", "deadline", "strict", "csv_formula_guard")

# The figures an export reports as its pull counted them.
_FROM_PULL = tuple(
    name
    for name in (f.name for f in fields(ExportStats))
    if name in {f.name for f in fields(PullStats)} and name != "skipped"
)


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


# Pages handed to a worker thread (an export's writer, a sync's store) and not yet written:
# enough to keep it busy while the event loop decodes the next ones, few enough to stay a few MB.
MAX_PENDING = 8
# A resumable export makes its data durable and moves its checkpoint at most this often.
_CHECKPOINT_EVERY = 0.5


async def notify(callback: Callable[[V], object], value: V) -> None:
    """Tell a progress callback ``value``; a coroutine function's result is awaited."""
    result = callback(value)
    if inspect.isawaitable(result):
        await result


def quiet(future: asyncio.Future[Any]) -> None:
    """A done-callback that retrieves a future's error (a consequence of another one), so
    that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


class _Sink:
    """Where a caller's stream gets its bytes: written inline, on the event loop."""

    def __init__(self, writer: Writer, out: _Counter) -> None:
        self._writer = writer
        self._out = out

    def write(self, page: Page[Any]) -> tuple[int, int]:
        """Write a page's new tasks (those the client-side filters keep): how many, and the
        bytes written so far."""
        return self._writer.write(page), self._out.count

    def finish(self) -> int:
        self._writer.close()
        self._out.flush()
        return self._out.count

    def abort(self) -> None:
        pass


class _FileSink(_Sink):
    """Where a file gets its bytes: one worker thread writes, fsyncs, checkpoints and renames,
    in order, off the event loop. A checkpoint is saved only after the data it counts is on
    disk, so a crash never leaves a checkpoint that claims more than the file holds."""

    def __init__(self, job: ExportJob, writer: Writer, out: IO[bytes], file: AtomicFile) -> None:
        self._job = job
        self._writer = writer
        self._file_out = out
        self._file = file
        self._last_save = -math.inf
        self.failed = False
        self.closed = False  # finish() has closed the writer and the file: nothing to save
        self._tasks = job.state.tasks  # tasks in the file (this thread's own count)

    def write(self, page: Page[Any]) -> tuple[int, int]:
        try:
            written = self._writer.write(page)
            size = self._file_out.tell()
        except BaseException:
            self.failed = True  # what the file holds past the last checkpoint is unknown
            raise
        self._tasks += written
        job = self._job
        if job.checkpoint_path is None:
            return written, size
        state = job.state
        state.advance(page, job.page_size)
        state.tasks = self._tasks
        now = time.monotonic()
        if now - self._last_save >= _CHECKPOINT_EVERY:
            self.save_checkpoint()
            self._last_save = now
        return written, size

    def save_checkpoint(self) -> None:
        job, out = self._job, self._file_out
        assert job.checkpoint_path is not None
        self._writer.flush()
        out.flush()
        os.fsync(out.fileno())
        job.state.offset = out.tell()
        _checkpoint.save(job.checkpoint_path, job.state)

    def finish(self) -> int:
        file, job = self._file, self._job
        # From here on the writer and the file are closed: should putting the file in place
        # fail, the last checkpoint saved is the one a rerun resumes from (it counts only
        # data on disk; not saving one here spares a rerun a pass re-read to check).
        self.closed = True
        self._writer.close()
        file.finish()
        source = job.convert_spool(file) if job.spooled else None
        try:
            size = file.commit(source)
        except BaseException:
            if source is not None:  # the spool and its checkpoint stay: a rerun converts again
                source.unlink(missing_ok=True)
            raise
        if source is not None:
            file.partial.unlink(missing_ok=True)
        if job.checkpoint_path is not None:
            job.checkpoint_path.unlink(missing_ok=True)
        return size

    def abort(self) -> None:
        self._file.abort()


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
        identity: Identity,
        options: WriterOptions | None = None,
    ) -> None:
        self.format = format
        self.options = options or WriterOptions()
        self.page_size = page_size
        self._progress = progress
        self._stream = stream
        self._file = file
        self.checkpoint_path = checkpoint
        # Parquet with resume spools to JSONL (appendable) and converts at the end.
        self.spooled = format == "parquet" and checkpoint is not None
        self._raw = format == "jsonl" or self.spooled
        self.stats = PullStats()
        self._identity = identity
        self.state = _checkpoint.Checkpoint.new(identity)
        self.seen: SeenKeys | None = None
        self.resume_point: ResumePoint | None = None
        self.resumed_pages = 0
        self.lock: OsLock | None = None  # a resumable export's, from prepare to run's end

    @classmethod
    def prepare(
        cls,
        dest: Destination,
        *,
        format: Format,
        page_size: int,
        resume: bool,
        progress: ProgressCallback | None,
        identity: Identity,
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
        file = checkpoint = lock = None
        if path is not None:
            check_destination(path)
            if resume:
                lock = _lock_export(path)
            remove_stale_temps(path)
            if resume:
                stem = f".{path.name}"
                file = AtomicFile(path, partial=path.with_name(f"{stem}.unpod-partial"))
                checkpoint = path.with_name(f"{stem}.unpod-resume")
            else:
                file = AtomicFile(path)
        try:
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
            job.lock = lock
            try:
                job._load_checkpoint()
            except OSError as exc:  # the partial file beside the destination: name that
                raise ExportError(
                    f"cannot resume {path}: {exc.strerror or exc}", path=str(path), errno=exc.errno
                ) from None
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return job

    @property
    def decode(self) -> PageDecoder[Any]:
        """The page view every writer takes: the tasks' own bytes (CSV and Parquet read each
        task's JSON, so that no field is lost and no type can fail a page)."""
        return decode_raw_page

    # --- resuming ---------------------------------------------------------------------------

    def _load_checkpoint(self) -> None:
        path, file = self.checkpoint_path, self._file
        if path is None or file is None or not path.exists() or not file.partial.exists():
            return
        state = _checkpoint.load(path, self._identity)
        if state is None or not state.started:
            return
        size = file.partial.stat().st_size
        if size < state.offset and not self._recover_short(file.partial, state, size):
            return
        with file.partial.open("r+b") as f:
            f.truncate(state.offset)  # what was written after the checkpoint is redone
        self.state = state
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

    def _recover_short(self, partial: Path, state: _checkpoint.Checkpoint, size: int) -> bool:
        """The partial file is shorter than its checkpoint says (it lost data it had on disk).

        Keep the whole pages it still holds when they can be told apart (JSONL from a pass
        that had not drifted: one line a task, ``size`` tasks a page), else start afresh.
        """
        if self._raw and not state.dirty and not state.pass_complete and state.size > 0:
            pages, offset = whole_pages(partial, size, state.size)
            if pages > 0:
                logger.warning(
                    "partial file %s is shorter than its checkpoint (%d of %d bytes): "
                    "resuming after the %d whole pages it holds",
                    partial,
                    size,
                    state.offset,
                    pages,
                )
                state.rewind(pages, offset)
                return True
        logger.warning(
            "partial file %s is shorter than its checkpoint (%d of %d bytes): starting afresh",
            partial,
            size,
            state.offset,
        )
        return False

    # --- writing ----------------------------------------------------------------------------

    def _writer(self, out: IO[bytes]) -> Writer:
        if self._raw:
            return JsonlWriter(out, self.options)
        if self.format == "csv":
            return CsvWriter(out, header=self.resume_point is None, options=self.options)
        return ParquetWriter(out, self.options)

    def _open(self) -> _Sink:
        file = self._file
        if file is None:
            assert self._stream is not None
            counter = _Counter(self._stream)
            return _Sink(self._writer(counter), counter)  # type: ignore[arg-type]
        try:
            out = file.open(self.state.offset if self.resume_point is not None else None)
        except OSError as exc:
            # The hidden working file is created beside the destination: the user's path
            # and its directory are what they can act on.
            raise ExportError(
                f"cannot create {file.dest}: {exc.strerror or exc} (in {file.dest.parent})",
                path=str(file.dest),
                errno=exc.errno,
            ) from None
        try:
            return _FileSink(self, self._writer(out), out, file)
        except BaseException:
            file.abort()
            raise

    async def run(self, pages: AsyncGenerator[Page[Any], None]) -> ExportStats:
        """Write every page of ``pages`` and put the file in place; the export's figures."""
        try:
            return await self._run(pages)
        finally:
            self.release()  # last: after the file, its partial and checkpoint

    def release(self) -> None:
        """Let go of the job's lock (done by :meth:`run`; for a job that will not run)."""
        if self.lock is not None:
            self.lock.release()

    async def _run(self, pages: AsyncGenerator[Page[Any], None]) -> ExportStats:
        started = time.monotonic()
        async with aclosing(pages):
            sink = self._open()
            threaded = isinstance(sink, _FileSink)
            executor = (
                ThreadPoolExecutor(1, thread_name_prefix="unpod-export") if threaded else None
            )
            pending: deque[tuple[asyncio.Future[tuple[int, int]], int]] = deque()
            ok = False
            try:
                await self._write_all(pages, sink, executor, pending, started)
                size = await self._call(executor, sink.finish)
                ok = True
            except OSError as exc:
                dest = str(self._file.dest) if self._file is not None else None
                raise ExportError(
                    f"cannot write {dest or 'the output stream'}: {exc.strerror or exc}",
                    path=dest,
                    errno=exc.errno,
                ) from None
            finally:
                if not ok:
                    self._wind_down(sink, executor, pending)
                elif executor is not None:
                    executor.shutdown(wait=True)
        return self._result(size, time.monotonic() - started)

    def _wind_down(
        self,
        sink: _Sink,
        executor: ThreadPoolExecutor | None,
        pending: deque[tuple[asyncio.Future[tuple[int, int]], int]],
    ) -> None:
        """After a failure or a cancel: let the writes handed over end, keep what they wrote
        resumable (a last checkpoint, unless a write failed), and clean up."""
        for write, _ in pending:  # their errors, if any, are this one's consequences
            write.add_done_callback(quiet)
        if executor is not None:
            executor.shutdown(wait=True)
        if (
            isinstance(sink, _FileSink)
            and self.checkpoint_path is not None
            and not (sink.failed or sink.closed)  # closed: the last checkpoint saved stands
        ):
            with contextlib.suppress(OSError):
                sink.save_checkpoint()
        sink.abort()

    @staticmethod
    def _call(
        executor: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any
    ) -> Awaitable[T]:
        loop = asyncio.get_running_loop()
        if executor is not None:
            return loop.run_in_executor(executor, fn, *args)
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(fn(*args))
        return done

    async def _write_all(
        self,
        pages: AsyncGenerator[Page[Any], None],
        sink: _Sink,
        executor: ThreadPoolExecutor | None,
        pending: deque[tuple[asyncio.Future[tuple[int, int]], int]],
        started: float,
    ) -> None:
        stats = self.stats
        written = self.resumed_pages
        limit = MAX_PENDING if executor is not None else 0
        kept = self.state.tasks  # tasks in the file

        async def done() -> None:
            nonlocal written, kept
            write, new = pending[0]
            n, size = await write
            pending.popleft()
            written += 1
            kept += n
            # The pager counted the page's new tasks; those the client-side filters left
            # out were not written.
            stats.tasks -= new - n
            if self._progress is not None:
                await notify(
                    self._progress,
                    ExportProgress(
                        pages_done=written,
                        pages_planned=max(stats.planned_pages, written),
                        tasks_written=kept,
                        expected=stats.expected,
                        retries=stats.retries,
                        elapsed=time.monotonic() - started,
                        bytes_written=size,
                    ),
                )

        async for page in pages:
            write = asyncio.ensure_future(self._call(executor, sink.write, page))
            pending.append((write, page.n_new))
            while len(pending) > limit:
                await done()
        while pending:
            await done()

    def convert_spool(self, file: AtomicFile) -> Path:
        """Turn the finished JSONL spool of a resumable Parquet export into the Parquet file."""
        final = temp_beside(file.dest)
        try:
            with create_private(final) as out:
                spool_to_parquet(file.partial, out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return final  # the spool goes once this is in place (a rerun resumes from it till then)

    def _result(self, size: int, seconds: float) -> ExportStats:
        stats = self.stats
        result = ExportStats(
            **{name: getattr(stats, name) for name in _FROM_PULL},
            skipped=tuple(stats.skipped),
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


def _lock_export(path: Path) -> OsLock:
    """Hold the lock of a resumable export to ``path`` (its partial file and checkpoint are
    one export's), or refuse: another is running.

    The lock file, ``NAME.unpod-lock``, is beside the output as a sync's is beside its store
    (not hidden: the hidden files are the export's data); it is removed when the export ends,
    however it ends. One a killed export left is taken over, then removed, by the next.
    """
    lock_path = path.with_name(f"{path.name}.unpod-lock")
    try:
        return OsLock.acquire(lock_path, remove=True)
    except LockHeld as held:
        who = f" (process {held.holder})" if held.holder is not None else ""
        raise ExportError(
            f"{path} is being exported by another resumable export{who}: "
            "one resumable export of a file at a time",
            path=str(path),
        ) from None
    except OSError as exc:
        raise ExportError(
            f"cannot create {path}: {exc.strerror or exc} (in {path.parent})",
            path=str(path),
            errno=exc.errno,
        ) from None
