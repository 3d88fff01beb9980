"""Keeping a local copy of a space current: a full pull once, then the head down to a horizon.

The list is newest first and tasks arrive at its head, so after a sync that finished, the store
holds every task that existed when it started, and every task older than one it stored. The
next sync reads from the head (a pull whose pass ends at a :class:`~unpod_async._paging.Horizon`)
and stops after the first page at which all of these hold:

- it has seen a task that a finished sync stored (every new task lies before it);
- it has seen every task the store holds in an open status (not final: pending, in_progress,
  hold, ...), or passed where their ``created`` puts them;
- the page's last task was created before the lookback (post-call data lands after a call).

The pull behind it is the engine's own, drift-safe as a whole pull is: boundaries a shifting
head may have opened between the pages read are repaired, and tasks arriving meanwhile are read
from the head. Every page is stored in one transaction, and the sync is recorded as finished
only after all of them are, so a killed sync loses nothing and the next one reads the same head
again. A full sync (the first, ``full=True``, or the one due after a full sync that did not
finish) reads everything, and marks what is no longer served deleted only if it knows it is
complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ._atomic import check_destination
from ._checkpoint import Identity
from ._dates import epoch_of
from ._decode import Key, RawTasks
from ._errors import ResponseDecodeError, SyncError
from ._export import MAX_PENDING, ExportProgress, ProgressCallback, notify, quiet
from ._page import Horizon, Page, PullStats
from ._store import Row, Store, SyncPlan, close_opened
from ._writers import task_lines

__all__ = [
    "DEFAULT_LOOKBACK",
    "FINAL_STATUSES",
    "SyncJob",
    "SyncStats",
    "rows_of",
    "store_key",
]

logger = logging.getLogger("unpod_async")

T = TypeVar("T")

#: The statuses after which a task no longer changes (any other status, or none, is open).
FINAL_STATUSES = frozenset({"completed", "failed", "partially_completed"})
DEFAULT_LOOKBACK = timedelta(hours=24)

Pull = Callable[[PullStats, Horizon | None], AsyncGenerator[Page[RawTasks], None]]


@dataclass(frozen=True, slots=True)
class SyncStats:
    """The figures of a finished sync.

    ``new``, ``updated`` and ``unchanged`` count the tasks read (``updated``: their JSON
    changed, ``modified`` with it, or a task marked deleted is served again); ``deleted`` the
    tasks a full sync found no longer served and marked so (``deleted_at``; rows are kept).
    ``full`` says whether the whole space was read (the first sync, ``full=True``, or the one
    due after a full sync that did not finish); otherwise the sync read the head and stopped
    after ``horizon_page`` (``None``: it read on to the end). ``requests`` are the page
    requests sent (retries aside, in ``retries``), ``pages`` the pages read, ``stored`` the
    space's tasks in the store now (not deleted), ``last_count`` the server's last count.
    ``missing``, ``stopped`` and ``skipped`` say what a sync that knows it is short lacks (as
    in :class:`ExportStats`); ``advanced`` whether it was recorded as finished, which the next
    sync starts from (not when tasks are missing or it stopped early).

    >>> stats = await client.sync_tasks("SPACE_TOKEN", "unpod.sqlite")
    >>> stats.new, stats.updated, stats.requests
    """

    new: int
    updated: int
    unchanged: int
    deleted: int
    requests: int
    pages: int
    horizon_page: int | None
    seconds: float
    full: bool
    stored: int
    last_count: int | None
    retries: int = 0
    missing: int = 0
    stopped: str | None = None
    skipped: tuple[int, ...] = ()
    advanced: bool = True
    db: str = ""

    @property
    def complete(self) -> bool:
        """Whether the sync read every task it had to."""
        return self.missing == 0 and self.stopped is None and not self.skipped


def store_key(key: Key) -> str:
    """The ``task_id`` a task is stored under: its dedupe key, or for a task with no id at
    all (keyed by its own JSON), a digest of that JSON."""
    if isinstance(key, str):
        return key
    return "json:" + hashlib.sha256(key or b"").hexdigest()[:32]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def rows_of(page: Page[RawTasks]) -> list[Row]:
    """The new tasks of a page as the store keeps them (the JSON as a JSONL export writes it)."""
    payload = page.payload
    raws = page.select(payload.data)
    views = page.select(payload.views)
    keys = page.select(page.keys)
    rows = []
    lines = task_lines(raws, payload.multiline)
    for key, line, view in zip(keys, lines, views, strict=True):
        try:
            text = str(line, "utf-8")
        except UnicodeDecodeError:
            raise ResponseDecodeError(
                f"task {store_key(key)} of page {page.number} is not valid UTF-8"
            ) from None
        rows.append(
            Row(store_key(key), _text(view.status), _text(view.created), _text(view.modified), text)
        )
    return rows


class _HeadHorizon:
    """Where an incremental sync's read of the head may stop (see the module docstring)."""

    def __init__(self, plan: SyncPlan, known: Callable[[list[str]], Awaitable[bool]]) -> None:
        self._plan = plan
        self._known = known
        self._open = plan.open_tasks or {}
        self._unseen: dict[str, float] = {}
        self._anchored = False
        self.planned = 1
        self.page: int | None = None  # where the latest pass stopped

    def plan(self, count: int | None, size: int) -> int:
        p = self._plan
        new = max(0, (count or 0) - p.stored)
        ahead = max(p.within_lookback, p.newer_than_open if self._open else 0)
        self.planned = (new + ahead) // size + 1
        return self.planned

    async def reached(self, page: Page[Any]) -> bool:
        if page.number == 1:  # a pass starts
            self._unseen = dict(self._open)
            self._anchored = False
            self.page = None
        keys = [store_key(key) for key in page.keys]
        unseen = self._unseen
        for key in keys:
            unseen.pop(key, None)
        if not self._anchored:
            self._anchored = await self._known(keys)
        views = page.payload.views
        if not self._anchored or not views:
            return False
        last = epoch_of(views[-1].created)
        needed = min(self._plan.lookback_start, min(unseen.values(), default=math.inf))
        if last is None or last >= needed:
            return False
        self.page = page.number
        if unseen:
            logger.info(
                "%d open tasks were not where their created dates put them (deleted on the "
                "server? a full sync marks them)",
                len(unseen),
            )
        return True


def _lookback(value: timedelta | float) -> timedelta:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"lookback must be a timedelta or seconds, not {type(value).__name__}")
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"lookback must be 0 or more, got {value!r}")
    return timedelta(seconds=seconds)


def _statuses(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str) or not all(isinstance(s, str) for s in value):
        raise TypeError("final_statuses must be a collection of status strings")
    return frozenset(value)


class SyncJob:
    """One sync of one space into one store file, from checked arguments to :class:`SyncStats`."""

    def __init__(
        self,
        db: Path,
        space: str,
        identity: Identity,
        *,
        full: bool,
        lookback: timedelta,
        page_size: int,
        progress: ProgressCallback | None,
        final_statuses: frozenset[str],
    ) -> None:
        self.db = db
        self.space = space
        self.identity = identity
        self.full = full
        self.lookback = lookback
        self.page_size = page_size
        self._progress = progress
        self.final_statuses = final_statuses
        self.stats = PullStats()  # of the pull, as it goes
        self._horizon: _HeadHorizon | None = None
        self._started = time.monotonic()

    @classmethod
    def prepare(
        cls,
        db: str | os.PathLike[str],
        space: str,
        identity: Identity,
        *,
        full: bool,
        lookback: timedelta | float,
        page_size: int,
        progress: ProgressCallback | None,
        final_statuses: Iterable[str],
    ) -> SyncJob:
        """Check everything that can be checked before the store is opened or a request sent."""
        if not isinstance(db, str | os.PathLike):
            raise TypeError(f"db must be a path, not {type(db)!r}")
        path = Path(db)
        check_destination(path)
        if progress is not None and not callable(progress):
            raise TypeError("progress must be a callable taking an ExportProgress")
        return cls(
            path,
            space,
            identity,
            full=bool(full),
            lookback=_lookback(lookback),
            page_size=page_size,
            progress=progress,
            final_statuses=_statuses(final_statuses),
        )

    async def run(self, pull: Pull) -> SyncStats:
        """Open the store, read what the plan says through ``pull``, store it page by page."""
        self._started = time.monotonic()
        stats = self.stats
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(1, thread_name_prefix="unpod-sync")

        def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
            return loop.run_in_executor(executor, partial(fn, *args, **kwargs))

        pending: deque[asyncio.Future[tuple[int, int, int]]] = deque()
        # Submitted, not run_in_executor: a cancel while it runs drops the asyncio side's
        # result, and the store (its lock held) would be left open; close_opened closes it.
        opening = executor.submit(Store.open, self.db, sync=True)
        try:
            opened = await asyncio.wrap_future(opening)
            plan = await call(
                opened.begin,
                self.space,
                self.identity,
                full=self.full,
                now=datetime.now(timezone.utc),
                lookback=self.lookback,
                final_statuses=self.final_statuses,
            )
            if not plan.full:
                synced_at = plan.synced_at

                def known(keys: list[str]) -> Awaitable[bool]:
                    return call(opened.known, self.space, keys, synced_at)

                self._horizon = _HeadHorizon(plan, known)

            def write(page: Page[RawTasks]) -> asyncio.Future[tuple[int, int, int]]:
                # The rows are made in the store's thread too: per-task work, off the loop.
                def store() -> tuple[int, int, int]:
                    rows = rows_of(page)
                    return opened.upsert(self.space, rows, stamp=plan.stamp, fresh=plan.fresh)

                return call(store)

            counts = await self._store_pages(pull(stats, self._horizon), write, pending)
            advance = stats.missing == 0 and stats.stopped is None
            deleted, stored = await call(
                opened.finish,
                self.space,
                plan.stamp,
                full=plan.full,
                count=stats.last_count,
                advance=advance,
                sweep=plan.full and stats.complete,
            )
        except sqlite3.Error as exc:
            raise SyncError(f"cannot use the store {self.db}: {exc}") from None
        finally:
            for future in pending:  # their errors, if any, are this one's consequences
                future.add_done_callback(quiet)
            executor.submit(close_opened, opening)  # after the open, in its thread
            executor.shutdown(wait=True)
        return self._result(counts, deleted, stored, full=plan.full, advanced=advance)

    async def _store_pages(
        self,
        pages: AsyncGenerator[Page[RawTasks], None],
        write: Callable[[Page[RawTasks]], asyncio.Future[tuple[int, int, int]]],
        pending: deque[asyncio.Future[tuple[int, int, int]]],
    ) -> list[int]:
        """Hand each page to the store's thread as it comes (a few at a time in flight, in
        order); ``[new, updated, unchanged]``."""
        counts = [0, 0, 0]
        done = 0

        async def settle(limit: int) -> None:
            nonlocal done
            while len(pending) > limit:
                result = await pending[0]
                pending.popleft()
                done += 1
                for i, n in enumerate(result):
                    counts[i] += n
                await self._report(done, sum(counts))

        async with aclosing(pages):
            async for page in pages:
                pending.append(write(page))
                await settle(MAX_PENDING)
            await settle(0)
        return counts

    def _result(
        self, counts: list[int], deleted: int, stored: int, *, full: bool, advanced: bool
    ) -> SyncStats:
        stats, horizon = self.stats, self._horizon
        seconds = time.monotonic() - self._started
        result = SyncStats(
            new=counts[0],
            updated=counts[1],
            unchanged=counts[2],
            deleted=deleted,
            requests=stats.requests,
            pages=stats.pages,
            horizon_page=None if horizon is None else horizon.page,
            seconds=seconds,
            full=full,
            stored=stored,
            last_count=stats.last_count,
            retries=stats.retries,
            missing=stats.missing,
            stopped=stats.stopped,
            skipped=tuple(stats.skipped),
            advanced=advanced,
            db=str(self.db),
        )
        logger.info(
            "synced space into %s (%s): %d new, %d updated, %d unchanged, %d deleted; "
            "%d requests in %.2fs",
            result.db,
            "full" if full else f"head to page {result.horizon_page}",
            result.new,
            result.updated,
            result.unchanged,
            result.deleted,
            result.requests,
            seconds,
        )
        return result

    async def _report(self, done: int, read: int) -> None:
        if self._progress is None:
            return
        stats, horizon = self.stats, self._horizon
        if horizon is None:
            planned, expected = stats.planned_pages, stats.expected
        else:
            planned = horizon.planned
            expected = min(stats.last_count or 0, planned * self.page_size)
        await notify(
            self._progress,
            ExportProgress(
                pages_done=done,
                pages_planned=max(planned, done),
                tasks_written=read,
                expected=expected,
                retries=stats.retries,
                elapsed=time.monotonic() - self._started,
            ),
        )
