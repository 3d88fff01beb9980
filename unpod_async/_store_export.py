"""An export from the store a sync keeps: any export format, written as an export writes it,
without a request.

The store's rows become pages of raw tasks (their JSON as the server sent it) and go through the
export's own job: the same writers, the same client-side filters, the same file that appears
only when whole.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ._checkpoint import Identity
from ._decode import Key, RawTasks, TaskKey
from ._errors import SyncError
from ._export import Destination, ExportJob, ExportStats, Format, ProgressCallback
from ._page import Page, PullStats, ceil_div
from ._params import Status, TaskFilter, Timestamp
from ._redact import Secret
from ._store import Store, close_opened
from ._writers import WriterOptions

__all__ = ["export_from_db"]

T = TypeVar("T")

_BATCH = 1000  # tasks a page: what the writers take at a time


async def export_from_db(
    db: str | os.PathLike[str],
    space_token: str,
    path: Destination,
    *,
    format: Format = "jsonl",
    progress: ProgressCallback | None = None,
    csv_formula_guard: bool = True,
    status: Status | None = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
) -> ExportStats:
    """Write the tasks a sync stored of a space (those not marked deleted) to a file, as
    :meth:`UnpodClient.export_tasks` writes them, newest ``created`` first; no request is sent.

    ``status``, ``created_after`` and ``created_before`` filter as they do for an export.

    >>> stats = await export_from_db("unpod.sqlite", "SPACE_TOKEN", "tasks.parquet",
    ...                              format="parquet")
    """
    where = TaskFilter(status=status, created_after=created_after, created_before=created_before)
    store = Path(db)
    job = ExportJob.prepare(
        path,
        format=format,
        page_size=_BATCH,
        resume=False,
        progress=progress,
        identity=Identity(
            space=space_token,
            format=format,
            page_size=_BATCH,
            filters=where.identity(),
            base_url=f"sqlite:{store}",
            org_handle=None,
            token=Secret(""),
        ),
        options=WriterOptions(where=where, csv_formula_guard=bool(csv_formula_guard)),
    )
    return await job.run(_stored_pages(store, space_token, job.stats))


async def _stored_pages(
    db: Path, space: str, stats: PullStats
) -> AsyncGenerator[Page[RawTasks], None]:
    """The store's tasks of ``space`` as pages, read in a thread of their own."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(1, thread_name_prefix="unpod-store")

    def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        return loop.run_in_executor(executor, partial(fn, *args, **kwargs))

    opening = executor.submit(Store.open, db, sync=False)  # closed by close_opened, as a sync's
    try:
        opened = await asyncio.wrap_future(opening)
        total = await call(opened.count, space)
        stats.passes = 1
        stats.expected = stats.last_count = total
        stats.planned_pages = max(1, ceil_div(total, _BATCH))
        batches = opened.batches(space, _BATCH)

        def next_batch() -> tuple[list[Key], RawTasks] | None:
            """The next rows as a page's keys and raw tasks (made here, off the loop)."""
            batch = next(batches, None)
            if batch is None:
                return None
            keys: list[Key] = [row[0] for row in batch]
            raws = [msgspec.Raw(row[3].encode()) for row in batch]
            views = [TaskKey(task_id=row[0], status=row[1], created=row[2]) for row in batch]
            return keys, RawTasks(raws, False, views)

        number = 0
        while (page := await call(next_batch)) is not None:
            number += 1
            keys, tasks = page
            stats.pages += 1
            stats.tasks += len(keys)
            yield Page(number, total, keys, tasks)
    except sqlite3.Error as exc:
        raise SyncError(f"cannot read the store {db}: {exc}") from None
    finally:
        executor.submit(close_opened, opening)  # after the open, in its thread
        executor.shutdown(wait=True)
