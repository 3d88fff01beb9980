"""The client's writing methods: exports of a space, a run, an agent or every space, and sync."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from . import _decode, _params
from ._api_read import ReadAPI
from ._checkpoint import Identity
from ._decode import RawTasks
from ._export import (
    Destination,
    ExportArgs,
    ExportJob,
    ExportProgress,
    ExportSettings,
    ExportStats,
    ProgressCallback,
)
from ._models import Space
from ._page import Horizon, Page, PullStats
from ._params import TaskFilter
from ._spaces import (
    DEFAULT_SPACES_AT_ONCE,
    SpacesExportStats,
    SpacesProgressCallback,
    check_directory,
    export_each,
    unique_spaces,
)
from ._sync import DEFAULT_LOOKBACK, FINAL_STATUSES, SyncJob, SyncStats
from ._writers import WriterOptions, require_pyarrow

if TYPE_CHECKING:
    from typing_extensions import Unpack


__all__ = ["WriteAPI"]


class WriteAPI(ReadAPI):
    """``export_tasks``, ``export_agent_tasks``, ``export_spaces``, ``sync_tasks`` (see
    ``UnpodClient``)."""

    async def export_tasks(
        self,
        space_token: str,
        path: Destination,
        *,
        run_id: str | None = None,
        progress: ProgressCallback | None = None,
        **options: Unpack[ExportArgs],
    ) -> ExportStats:
        """Pull a whole space into a file: ``format="jsonl"`` (lossless, the default),
        ``"csv"`` or ``"parquet"``.

        The file appears at ``path`` only when complete (written beside it, then renamed);
        ``path="-"`` or a binary stream streams instead. ``resume=True`` keeps a checkpoint so
        that a rerun after an interruption fetches only the missing pages. ``progress`` is
        called with an :class:`ExportProgress` after every page (a coroutine function is
        awaited). An export that knows it is short says so in its stats (``missing``,
        ``complete``) and a WARNING; with ``strict=True`` it fails instead, with
        :class:`IncompletePullError`, and leaves the destination untouched. The other
        keywords (``page_size``, ``deadline``, ``csv_formula_guard`` and the filters) are
        those of :class:`ExportArgs`.

        CSV and Parquet have a column for every documented field and an ``extra`` column
        (JSON) with whatever no column holds exactly. In CSV, a text cell that starts with
        ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a ``'`` in front, so that a
        spreadsheet shows it as text instead of running it as a formula (``+15550100`` reads
        ``'+15550100``); ``csv_formula_guard=False`` writes every cell as it is.

        ``run_id`` exports only the tasks of that run of the space (``iter_run_tasks``).

        >>> stats = await client.export_tasks("SPACE_TOKEN", "tasks.jsonl")
        >>> stats.tasks, stats.seconds
        """
        settings, where = ExportSettings.split(options)
        if run_id is None:
            url_for, source = self._tasks_url(space_token, where), space_token
        else:
            url_for = self._run_tasks_url(space_token, run_id, where)
            source = f"{space_token}/runs/{run_id}"
        return await self._export(url_for, source, path, where, settings, progress)

    async def export_agent_tasks(
        self,
        agent_handle: str,
        path: Destination,
        *,
        progress: ProgressCallback | None = None,
        **options: Unpack[ExportArgs],
    ) -> ExportStats:
        """:meth:`export_tasks` for the tasks of one agent, across its spaces
        (``iter_agent_tasks``): the same formats, atomicity, resume and stats.

        >>> stats = await client.export_agent_tasks("sales-agent", "agent.jsonl")
        """
        settings, where = ExportSettings.split(options)
        url_for = self._agent_tasks_url(agent_handle, where)
        return await self._export(
            url_for, f"agents/{agent_handle}", path, where, settings, progress
        )

    async def export_spaces(
        self,
        dest_dir: str | os.PathLike[str],
        *,
        spaces: Sequence[str | Space] | None = None,
        spaces_at_once: int = DEFAULT_SPACES_AT_ONCE,
        progress: SpacesProgressCallback | None = None,
        **options: Unpack[ExportArgs],
    ) -> SpacesExportStats:
        """Export every space of the organization (``list_spaces``), or ``spaces``, into
        ``dest_dir`` (created if missing), with the keywords of :meth:`export_tasks`.

        JSONL and CSV write ``DIR/<space_token>.jsonl`` (``.csv``) per space; Parquet writes one
        dataset partitioned by space, ``DIR/space_token=<token>/part-0.parquet``, that pyarrow
        (``pyarrow.dataset.dataset(DIR, partitioning="hive")``) and DuckDB
        (``read_parquet('DIR/**/*.parquet', hive_partitioning=true)``) read as one table.
        Each file is an :meth:`export_tasks` of its own: atomic, resumable with ``resume=True``,
        with its own stats.

        ``spaces_at_once`` spaces run at a time, and all their requests share the client's
        ``concurrency`` bound, taking turns at it in the order they are ready, so a big space
        never holds up the others. A space that fails does not stop the rest: its result
        carries the error (and a WARNING is logged). ``progress`` is called with a
        :class:`SpacesProgress` after every page written and whenever a space ends;
        ``deadline`` covers the whole run.

        >>> summary = await client.export_spaces("exports", format="parquet")
        >>> summary.tasks, [(r.space_token, r.error) for r in summary.failed]
        """
        settings, where = ExportSettings.split(options)
        _params.check_positive("spaces_at_once", spaces_at_once)
        if progress is not None and not callable(progress):
            raise TypeError("progress must be a callable taking a SpacesProgress")
        if settings.format == "parquet":
            require_pyarrow()
        directory = check_directory(dest_dir)
        listed = unique_spaces(await self.list_spaces() if spaces is None else spaces)
        # The read-ahead budget is the client's, whatever the number of spaces in flight.
        budget = max(1 << 20, self.read_ahead_bytes // min(spaces_at_once, max(1, len(listed))))

        def export_one(
            token: str,
            path: Path,
            on_page: Callable[[ExportProgress], Awaitable[None]],
            left: float | None,
        ) -> Awaitable[ExportStats]:
            return self._export(
                self._tasks_url(token, where),
                token,
                path,
                where,
                replace(settings, deadline=left),
                on_page,
                read_ahead_bytes=budget,
            )

        return await export_each(
            listed,
            export_one,
            directory=directory,
            format=settings.format,
            spaces_at_once=spaces_at_once,
            deadline=settings.deadline,
            progress=progress,
        )

    async def _export(
        self,
        url_for: Callable[[int, int], str],
        source: str,
        path: Destination,
        where: TaskFilter,
        settings: ExportSettings,
        progress: ProgressCallback | None,
        *,
        read_ahead_bytes: int | None = None,
    ) -> ExportStats:
        """One export of the tasks ``url_for`` pages through; ``source`` names it in the
        checkpoint (a space token, a space's run, an agent)."""
        format, page_size = settings.format, settings.page_size
        options = WriterOptions(where=where, csv_formula_guard=bool(settings.csv_formula_guard))
        filters_id = where.identity()
        if format == "csv":
            filters_id += f"|guard={options.csv_formula_guard}"
        # In a thread: resuming reads the partial file back (its keys), which may be large.
        job = await asyncio.to_thread(
            partial(
                ExportJob.prepare,
                path,
                format=format,
                page_size=page_size,
                resume=settings.resume,
                progress=progress,
                identity=Identity(
                    space=source,
                    format=format,
                    page_size=page_size,
                    filters=filters_id,
                    base_url=self.base_url,
                    org_handle=self.org_handle,
                    token=self._token,
                ),
                options=options,
            )
        )
        try:
            pages = self._stream(
                url_for,
                job.decode,
                page_size=page_size,
                deadline=settings.deadline,
                stats=job.stats,
                seen=job.seen,
                resume=job.resume_point,
                strict=settings.strict,
                read_ahead_bytes=read_ahead_bytes,
            )
        except BaseException:
            job.release()
            raise
        return await job.run(pages)

    async def sync_tasks(
        self,
        space_token: str,
        db: str | os.PathLike[str],
        *,
        full: bool = False,
        lookback: timedelta | float = DEFAULT_LOOKBACK,
        page_size: int = 100,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
        strict: bool = False,
        final_statuses: Iterable[str] = FINAL_STATUSES,
    ) -> SyncStats:
        """Keep a local copy of a space current in the SQLite file ``db`` (many spaces can
        share one file; its schema is in the README).

        The first sync reads the whole space. The next ones read from the head and stop past
        the newest task already stored, past every stored task that was not in one of
        ``final_statuses`` (they change), and past ``lookback`` (a timedelta or seconds) of
        ``created`` (post-call data lands after a call ends): a space with nothing new costs
        a request or two. New and changed tasks are stored, unchanged ones get ``last_seen``.
        ``full=True`` reads everything again and marks tasks no longer served ``deleted_at``
        (only when it knows it read every task). Each page is committed on its own and the
        sync recorded only after them, so a killed sync loses nothing and the next finishes
        the job. A second sync of the same file at once, or a file that holds the space as
        synced from another server, organization or token, is a :class:`SyncError`.

        >>> stats = await client.sync_tasks("SPACE_TOKEN", "unpod.sqlite")
        >>> stats.new, stats.updated, stats.requests
        """
        url_for = self._tasks_url(space_token, _params.NO_FILTER)
        _params.check_positive("page_size", page_size)
        _params.check_seconds("deadline", deadline)
        job = SyncJob.prepare(
            db,
            space_token,
            Identity(
                space=space_token,
                format="sqlite",
                page_size=page_size,
                filters="",
                base_url=self.base_url,
                org_handle=self.org_handle,
                token=self._token,
            ),
            full=full,
            lookback=lookback,
            page_size=page_size,
            progress=progress,
            final_statuses=final_statuses,
        )

        def pull(stats: PullStats, horizon: Horizon | None) -> AsyncGenerator[Page[RawTasks]]:
            return self._stream(
                url_for,
                _decode.decode_raw_page,
                page_size=page_size,
                deadline=deadline,
                stats=stats,
                strict=strict,
                horizon=horizon,
            )

        return await job.run(pull)
