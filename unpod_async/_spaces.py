"""Every space of an organization at once: one export per space, under the client's one bound.

A few spaces run at a time (``spaces_at_once``); each is an ordinary single-space export
(``ExportJob``: atomic file, resumable, its own checkpoint) whose page requests queue at the
client's shared gate with everyone else's. The gate admits requests in arrival order, and each
space keeps at most a bounded window of fetches waiting there, so the spaces running take turns
request by request: a big space holds one lane for longer, it never takes the others' turns.
Running several at once hides each space's serial phases (page 1 alone, the tail, the rename)
behind the others' fan-out.

A space that fails is reported in its :class:`SpaceExportResult` and the others go on.

JSONL and CSV give one file per space (``DIR/<space_token>.jsonl``); Parquet one dataset
partitioned by space (``DIR/space_token=<token>/part-0.parquet``), which pyarrow and DuckDB read
as one table with a ``space_token`` column.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import DeadlineExceededError
from ._export import ExportProgress, ExportStats, Format, notify
from ._models import Space
from ._params import path_segment

__all__ = [
    "DEFAULT_SPACES_AT_ONCE",
    "SpaceExportResult",
    "SpacesExportStats",
    "SpacesProgress",
    "SpacesProgressCallback",
    "export_each",
    "space_path",
]

logger = logging.getLogger("unpod_async")

#: Spaces exported at the same time by default: enough to overlap one space's serial phases
#: with the others' fan-out (see benchmarks/bench_spaces.py), few enough that the read-ahead
#: each one holds stays small.
DEFAULT_SPACES_AT_ONCE = 4
FORMAT_SUFFIX = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}
PARQUET_PART = "part-0.parquet"


@dataclass(frozen=True, slots=True)
class SpaceExportResult:
    """One space of :meth:`UnpodClient.export_spaces`: its stats, or the error that stopped it.

    >>> for result in summary.results:  # doctest: +SKIP
    ...     print(result.space_token, result.stats.tasks if result.ok else result.error)
    """

    space_token: str
    path: str
    name: str | None = None
    stats: ExportStats | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether the space's file was written (it may still be short: see ``complete``)."""
        return self.error is None and self.stats is not None

    @property
    def complete(self) -> bool:
        """Whether the file was written and holds every task the server last counted."""
        return self.stats is not None and self.error is None and self.stats.complete


@dataclass(frozen=True, slots=True)
class SpacesExportStats:
    """The figures of :meth:`UnpodClient.export_spaces`: one result per space, in the order
    the spaces were listed, and the totals.

    >>> summary = await client.export_spaces("out", format="parquet")  # doctest: +SKIP
    >>> summary.tasks, [r.space_token for r in summary.failed]
    """

    results: tuple[SpaceExportResult, ...]
    directory: str
    format: str
    seconds: float

    @property
    def tasks(self) -> int:
        return sum(r.stats.tasks for r in self.results if r.stats is not None)

    @property
    def failed(self) -> tuple[SpaceExportResult, ...]:
        """The spaces whose export raised (their files were not written)."""
        return tuple(r for r in self.results if not r.ok)

    @property
    def complete(self) -> bool:
        """Whether every space was written with every task the server last counted."""
        return all(r.complete for r in self.results)

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SpacesProgress:
    """What an ``export_spaces`` progress callback is told: after every page written in any
    space, and when a space ends. The task and page figures add up every space begun so far
    (``expected`` is the sum of the counts their first pages reported)."""

    spaces_done: int
    spaces_total: int
    spaces_failed: int
    space_token: str  # the space this update is about
    pages_done: int
    pages_planned: int
    tasks_written: int
    expected: int
    retries: int
    elapsed: float
    bytes_written: int = 0  # across every space begun so far


SpacesProgressCallback = Callable[[SpacesProgress], object]
ExportOne = Callable[
    [str, Path, Callable[[ExportProgress], Awaitable[None]], float | None],
    Awaitable[ExportStats],
]


def space_path(directory: Path, space_token: str, format: Format) -> Path:
    """Where a space's export goes: ``DIR/<token>.jsonl`` (or ``.csv``), or its Parquet
    partition ``DIR/space_token=<token>/part-0.parquet``."""
    if format == "parquet":
        return directory / f"space_token={space_token}" / PARQUET_PART
    return directory / f"{space_token}{FORMAT_SUFFIX[format]}"


def check_directory(dest_dir: str | os.PathLike[str]) -> Path:
    """The output directory, created if missing; refused if it is something else."""
    directory = Path(dest_dir)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def unique_spaces(spaces: Sequence[str | Space]) -> list[tuple[str, str | None]]:
    """``(token, name)`` per space, each token once (two jobs must never write one file)."""
    seen: set[str] = set()
    out: list[tuple[str, str | None]] = []
    for space in spaces:
        token, name = (space.token, space.name) if isinstance(space, Space) else (space, None)
        if not isinstance(token, str):
            raise TypeError(f"spaces must be space tokens or Space objects, not {space!r}")
        if token not in seen:
            seen.add(token)
            out.append((token, name))
    return out


class _Tally:
    """The running totals behind :class:`SpacesProgress`, kept as each space's latest
    figures replace its previous ones (no sum over every space at each page)."""

    _FIELDS = ("pages_done", "pages_planned", "tasks_written", "expected", "retries")

    def __init__(self, total: int, callback: SpacesProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._latest: dict[str, ExportProgress] = {}
        self._sums = dict.fromkeys(self._FIELDS, 0)
        self._bytes = 0
        self._callback = callback
        self._started = time.monotonic()

    def update(self, space_token: str, snap: ExportProgress) -> None:
        before = self._latest.get(space_token)
        for name in self._FIELDS:
            self._sums[name] += getattr(snap, name) - (getattr(before, name) if before else 0)
        self._bytes += snap.bytes_written - (before.bytes_written if before else 0)
        self._latest[space_token] = snap

    async def report(self, space_token: str) -> None:
        if self._callback is None:
            return
        await notify(
            self._callback,
            SpacesProgress(
                spaces_done=self.done,
                spaces_total=self.total,
                spaces_failed=self.failed,
                space_token=space_token,
                elapsed=time.monotonic() - self._started,
                bytes_written=self._bytes,
                **self._sums,
            ),
        )


async def export_each(
    spaces: Sequence[tuple[str, str | None]],
    export_one: ExportOne,
    *,
    directory: Path,
    format: Format,
    spaces_at_once: int,
    deadline: float | None,
    progress: SpacesProgressCallback | None,
) -> SpacesExportStats:
    """Export ``spaces`` with ``export_one``, ``spaces_at_once`` at a time, each failure kept
    in its result; ``deadline`` (seconds) covers the whole run."""
    started = time.monotonic()
    until = None if deadline is None else started + deadline
    tally = _Tally(len(spaces), progress)
    results: dict[str, SpaceExportResult] = {}
    queue = list(reversed(spaces))

    async def one(token: str, name: str | None) -> SpaceExportResult:
        path = space_path(directory, token, format)
        made_dir = False
        try:
            path_segment("space_token", token)  # before it names a file or a directory
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                raise DeadlineExceededError(f"deadline of {deadline:g}s reached before it began")
            if format == "parquet" and not path.parent.is_dir():
                path.parent.mkdir()
                made_dir = True

            async def on_page(snap: ExportProgress) -> None:
                tally.update(token, snap)
                await tally.report(token)

            stats = await export_one(token, path, on_page, left)
        except Exception as exc:  # one space failing must not stop the others
            logger.warning("space %s failed: %s", token, exc)
            if made_dir:
                with contextlib.suppress(OSError):  # empty unless a resumable partial is kept
                    path.parent.rmdir()
            tally.failed += 1
            return SpaceExportResult(token, str(path), name, error=exc)
        return SpaceExportResult(token, str(path), name, stats=stats)

    async def lane() -> None:
        while queue:
            token, name = queue.pop()
            results[token] = await one(token, name)
            tally.done += 1
            await tally.report(token)

    lanes = [asyncio.ensure_future(lane()) for _ in range(min(spaces_at_once, len(spaces)))]
    try:
        await asyncio.gather(*lanes)
    finally:
        for task in lanes:  # cancelled, or a callback raised: stop every lane, then return
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
    return SpacesExportStats(
        results=tuple(results[token] for token, _ in spaces),
        directory=str(directory),
        format=format,
        seconds=time.monotonic() - started,
    )
