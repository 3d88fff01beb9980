"""The client: its options, its lifecycle and its endpoints.

``UnpodClient`` checks its arguments (``_params``), sends through one
:class:`~unpod_async._request.Requester` (gate, transport, retries, answer), and hands the page
streams it builds (``_paging``) to their consumers: an iterator, a list, or an export job
(``_export``). It never touches aiohttp or a transport exception itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import msgspec

from . import _decode, _params
from ._checkpoint import Identity
from ._decode import PageDecoder, RawTasks
from ._errors import AuthenticationError
from ._export import (
    FORMATS,
    Destination,
    ExportJob,
    ExportProgress,
    ExportStats,
    Format,
    ProgressCallback,
)
from ._iterate import TaskIterator, collect
from ._limits import Gate
from ._models import Organization, Run, RunsPage, Space, Task, TasksPage
from ._page import Horizon, Page, PullStats, ResumePoint
from ._params import API_PREFIX, AUTH_SCHEME_ENV, DEFAULT_BASE_URL, TaskFilter
from ._pull import stream_pages
from ._redact import Secret
from ._request import Requester
from ._retry import RetryPolicy
from ._seen import SeenKeys
from ._spaces import (
    DEFAULT_SPACES_AT_ONCE,
    SpacesExportStats,
    SpacesProgressCallback,
    check_directory,
    export_each,
    unique_spaces,
)
from ._sync import DEFAULT_LOOKBACK, FINAL_STATUSES, SyncJob, SyncStats
from ._transport import Transport
from ._version import __version__
from ._writers import WriterOptions, require_pyarrow

if TYPE_CHECKING:
    import aiohttp
    from typing_extensions import Unpack

    from ._params import TaskFilterArgs

__all__ = ["DEFAULT_BASE_URL", "UnpodClient"]

T = TypeVar("T")
P = TypeVar("P")

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_READ_AHEAD_BYTES = 16 * 1024 * 1024


class UnpodClient:
    """Async client for the Unpod platform API.

    >>> async with UnpodClient() as client:  # UNPOD_API_TOKEN / UNPOD_ORG_HANDLE from the env
    ...     async for task in client.iter_tasks("SPACE_TOKEN"):
    ...         print(task.task_id, task.status)

    Every option but the first two is keyword-only:

    - ``token``: the API token, else ``$UNPOD_API_TOKEN`` (required: one or the other). Sent
      only in the ``Authorization`` header, never shown in a repr, an error or a log line.
    - ``org_handle``: the organization's domain handle, sent as ``Org-Handle``, else
      ``$UNPOD_ORG_HANDLE``; :meth:`list_organizations` tells them, :meth:`list_spaces`
      needs one.
    - ``base_url``: else ``$UNPOD_BASE_URL``, else ``https://unpod.ai``.
    - ``concurrency`` (8): the bound on requests in flight across everything this client
      does, shared by concurrent calls.
    - ``max_retries`` (5): retries per request, after the first attempt.
    - ``timeout`` (30.0): seconds per attempt, the whole answer included.
    - ``retry_delay`` (0.5), ``max_retry_delay`` (8.0): the exponential backoff's start and
      ceiling, in seconds (jittered; the first retry of a one-off failure comes sooner).
    - ``max_retry_after`` (120.0): the longest ``Retry-After`` honoured; a server asking
      for more fails the request instead.
    - ``max_response_bytes`` (64 MiB): a larger answer fails with
      :class:`ResponseTooLargeError` (ask for smaller pages).
    - ``read_ahead_bytes`` (16 MiB): how much of a pull's pages may wait, fetched but not
      yet consumed, while an earlier page is retried (memory, not speed).
    - ``max_requests_per_minute`` (None): spread requests evenly to stay under a plan's
      rate limit.
    - ``adaptive_concurrency`` (False): halve the bound on 429/503 and creep back up (AIMD),
      for servers that shed load.
    - ``allow_insecure_http`` (False): allow ``http://`` to a host that is not loopback (the
      token would travel in clear text); ``http://`` to loopback is always allowed.
    - ``session``: an ``aiohttp.ClientSession`` you own, used as it is and never closed here.
    - ``auth_scheme``: the ``Authorization`` scheme, ``"Token"`` (what the tasks endpoints
      take), ``"Bearer"`` or ``"JWT"`` (what the spaces and organizations views may require),
      any case; else ``$UNPOD_AUTH_SCHEME``, else ``"Token"``.

    Bad values raise :class:`ValueError` (or :class:`TypeError`) here, before any request.
    """

    def __init__(
        self,
        token: str | None = None,
        org_handle: str | None = None,
        *,
        base_url: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 30.0,
        retry_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        max_retry_after: float = 120.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES,
        max_requests_per_minute: float | None = None,
        adaptive_concurrency: bool = False,
        allow_insecure_http: bool = False,
        session: aiohttp.ClientSession | None = None,
        auth_scheme: str | None = None,
    ) -> None:
        token = _params.env_token(token)
        if token is None:
            raise ValueError("no API token: pass token= or set UNPOD_API_TOKEN")
        org_handle = _params.env_org_handle(org_handle)
        self.auth_scheme = _params.env_auth_scheme(auth_scheme)
        self._token = Secret(_params.check_header_value("token", token))
        self.org_handle = (
            _params.check_header_value("org_handle", org_handle) if org_handle else None
        )
        self.base_url = _params.check_base_url(_params.env_base_url(base_url), allow_insecure_http)
        self.concurrency = _params.check_positive("concurrency", concurrency)
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.max_response_bytes = _params.check_positive("max_response_bytes", max_response_bytes)
        self.read_ahead_bytes = _params.check_positive("read_ahead_bytes", read_ahead_bytes)
        if max_requests_per_minute is not None and not max_requests_per_minute > 0:
            raise ValueError("max_requests_per_minute must be > 0")
        # The reference lists Content-Type as required on every request, GETs included.
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"unpod-async/{__version__}",
        }
        if self.org_handle:
            headers["Org-Handle"] = self.org_handle
        self._transport = Transport(
            concurrency=self.concurrency,
            max_response_bytes=self.max_response_bytes,
            session=session,
        )
        self._gate = Gate(
            self.concurrency, per_minute=max_requests_per_minute, adaptive=adaptive_concurrency
        )
        self._requester = Requester(
            self._transport,
            self._gate,
            RetryPolicy(max_retries, retry_delay, max_retry_delay, max_retry_after),
            token=self._token,
            headers=headers,
            auth_scheme=self.auth_scheme,
            timeout=self.timeout,
        )

    def __repr__(self) -> str:
        return (
            f"UnpodClient(base_url={self.base_url!r}, org_handle={self.org_handle!r}, "
            f"concurrency={self.concurrency}, auth_scheme={self.auth_scheme!r})"
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> UnpodClient:
        self._transport.session  # noqa: B018 (created here, inside the running loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session this client created (a caller's own session is left open)."""
        await self._transport.aclose()

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self._transport._session

    # --- endpoints --------------------------------------------------------------------------

    def _url(self, path: str, query: str = "") -> str:
        return f"{self.base_url}{API_PREFIX}{path}{query}"

    async def list_organizations(self) -> list[Organization]:
        """The organizations the token belongs to; ``domain_handle`` is the Org-Handle value.

        The backend's organizations view may accept only ``JWT``/``Bearer`` auth: on a 401,
        the error says so (see ``auth_scheme``).
        """
        url = self._url("organizations/")
        try:
            envelope = await self._requester.get(url, _decode.ORGS_ENVELOPE_DECODER.decode)
        except AuthenticationError as exc:
            raise self._scheme_hint(exc, "organizations") from None
        return envelope.data

    async def list_spaces(self) -> list[Space]:
        """The spaces of ``org_handle``; each ``Space.token`` is a ``space_token``.

        The backend's spaces view may accept only ``JWT``/``Bearer`` auth: on a 401, the
        error says so (see ``auth_scheme``).
        """
        if not self.org_handle:
            raise ValueError("list_spaces needs org_handle (or UNPOD_ORG_HANDLE)")
        url = self._url("spaces/")
        try:
            envelope = await self._requester.get(url, _decode.SPACES_ENVELOPE_DECODER.decode)
        except AuthenticationError as exc:
            raise self._scheme_hint(exc, "spaces") from None
        return envelope.data

    def _scheme_hint(self, exc: AuthenticationError, what: str) -> AuthenticationError:
        """``exc`` with a word on the auth scheme: these views may take another one."""
        others = " or ".join(repr(s) for s in _params.AUTH_SCHEMES if s != self.auth_scheme)
        hint = (
            f"{exc.message} (sent 'Authorization: {self.auth_scheme} ...'; the {what} "
            f"endpoint may accept only another auth scheme: try auth_scheme={others} "
            f"(--auth-scheme) or set {AUTH_SCHEME_ENV})"
        )
        return AuthenticationError(
            hint,
            status_code=exc.status_code,
            url=exc.url,
            page=exc.page,
            body=exc.body,
            retry_after=exc.retry_after,
        )

    async def get_tasks(
        self,
        space_token: str,
        *,
        page: int = 1,
        page_size: int = 20,
        **filters: Unpack[TaskFilterArgs],
    ) -> TasksPage:
        """One page of a space's tasks, newest first.

        The client-side filters (``status``, and the ``created`` bounds checked again) apply
        to this page's ``data`` too; ``count`` stays the server's figure for its own filters.

        >>> page = await client.get_tasks("SPACE_TOKEN", page=1, page_size=50)
        >>> page.count, len(page.data)
        """
        where = TaskFilter(**filters)
        url_for = self._tasks_url(space_token, where)
        _params.check_positive("page", page)
        _params.check_positive("page_size", page_size)
        url = url_for(page, page_size)
        result = await self._requester.get(url, _decode.decode_tasks_page, page=page)
        kept = _filtered(where, result.data)
        if len(kept) != len(result.data):
            result = msgspec.structs.replace(result, data=tuple(kept))
        return result

    def iter_tasks(
        self,
        space_token: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        strict: bool = False,
        **filters: Unpack[TaskFilterArgs],
    ) -> TaskIterator[Task]:
        """Every task of a space, once each, in server order (newest first).

        Pages are fetched concurrently under the client's bound and handed over in order;
        memory holds about ``read_ahead_bytes`` of pages. Close the iterator early with
        ``contextlib.aclosing`` to cancel what is in flight at once. Its ``stats`` say how
        the pull went; a pull that ends with fewer tasks than the server counted logs a
        WARNING, or with ``strict=True`` raises :class:`IncompletePullError` at the end.

        >>> async with aclosing(client.iter_tasks("SPACE_TOKEN")) as tasks:
        ...     async for task in tasks:
        ...         ...
        """
        stats = PullStats()
        where = TaskFilter(**filters)
        pages = self._task_pages(space_token, page_size, deadline, where, stats, strict)
        return TaskIterator(pages, stats, _tasks_of(where))

    async def get_all_tasks(
        self,
        space_token: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        strict: bool = False,
        **filters: Unpack[TaskFilterArgs],
    ) -> list[Task]:
        """Every task of a space in one list (``iter_tasks`` streams them instead)."""
        where = TaskFilter(**filters)
        pages = self._task_pages(space_token, page_size, deadline, where, PullStats(), strict)
        return await collect(pages, _tasks_of(where))

    async def export_tasks(
        self,
        space_token: str,
        path: Destination,
        *,
        format: Format = "jsonl",
        page_size: int = 100,
        resume: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
        strict: bool = False,
        csv_formula_guard: bool = True,
        run_id: str | None = None,
        **filters: Unpack[TaskFilterArgs],
    ) -> ExportStats:
        """Pull a whole space into a file: ``jsonl`` (lossless), ``csv`` or ``parquet``.

        The file appears at ``path`` only when complete (written beside it, then renamed);
        ``path="-"`` or a binary stream streams instead. ``resume=True`` keeps a checkpoint so
        that a rerun after an interruption fetches only the missing pages. ``progress`` is
        called with an :class:`ExportProgress` after every page (a coroutine function is
        awaited). An export that knows it is short says so in its stats (``missing``,
        ``complete``) and a WARNING; with ``strict=True`` it fails instead, with
        :class:`IncompletePullError`, and leaves the destination untouched.

        CSV and Parquet have a column for every documented field and an ``extra`` column
        (JSON) with whatever no column holds exactly. In CSV, a text cell that starts with
        ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a ``'`` in front, so that a
        spreadsheet shows it as text instead of running it as a formula (``+15550100`` reads
        ``'+15550100``); ``csv_formula_guard=False`` writes every cell as it is.

        ``run_id`` exports only the tasks of that run of the space (``iter_run_tasks``).

        >>> stats = await client.export_tasks("SPACE_TOKEN", "tasks.jsonl")
        >>> stats.tasks, stats.seconds
        """
        where = TaskFilter(**filters)
        if run_id is None:
            url_for, source = self._tasks_url(space_token, where), space_token
        else:
            url_for = self._run_tasks_url(space_token, run_id, where)
            source = f"{space_token}/runs/{run_id}"
        return await self._export(
            url_for,
            source,
            path,
            where,
            format=format,
            page_size=page_size,
            resume=resume,
            progress=progress,
            deadline=deadline,
            strict=strict,
            csv_formula_guard=csv_formula_guard,
        )

    async def export_agent_tasks(
        self,
        agent_handle: str,
        path: Destination,
        *,
        format: Format = "jsonl",
        page_size: int = 100,
        resume: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
        strict: bool = False,
        csv_formula_guard: bool = True,
        **filters: Unpack[TaskFilterArgs],
    ) -> ExportStats:
        """:meth:`export_tasks` for the tasks of one agent, across its spaces
        (``iter_agent_tasks``): the same formats, atomicity, resume and stats.

        >>> stats = await client.export_agent_tasks("sales-agent", "agent.jsonl")
        """
        where = TaskFilter(**filters)
        return await self._export(
            self._agent_tasks_url(agent_handle, where),
            f"agents/{agent_handle}",
            path,
            where,
            format=format,
            page_size=page_size,
            resume=resume,
            progress=progress,
            deadline=deadline,
            strict=strict,
            csv_formula_guard=csv_formula_guard,
        )

    async def export_spaces(
        self,
        dest_dir: str | os.PathLike[str],
        *,
        format: Format = "jsonl",
        spaces: Sequence[str | Space] | None = None,
        spaces_at_once: int = DEFAULT_SPACES_AT_ONCE,
        page_size: int = 100,
        resume: bool = False,
        progress: SpacesProgressCallback | None = None,
        deadline: float | None = None,
        strict: bool = False,
        csv_formula_guard: bool = True,
        **filters: Unpack[TaskFilterArgs],
    ) -> SpacesExportStats:
        """Export every space of the organization (``list_spaces``), or ``spaces``, into
        ``dest_dir`` (created if missing).

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
        where = TaskFilter(**filters)
        _params.check_positive("page_size", page_size)
        _params.check_positive("spaces_at_once", spaces_at_once)
        _params.check_seconds("deadline", deadline)
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if progress is not None and not callable(progress):
            raise TypeError("progress must be a callable taking a SpacesProgress")
        if format == "parquet":
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
                format=format,
                page_size=page_size,
                resume=resume,
                progress=on_page,
                deadline=left,
                strict=strict,
                csv_formula_guard=csv_formula_guard,
                read_ahead_bytes=budget,
            )

        return await export_each(
            listed,
            export_one,
            directory=directory,
            format=format,
            spaces_at_once=spaces_at_once,
            deadline=deadline,
            progress=progress,
        )

    async def _export(
        self,
        url_for: Callable[[int, int], str],
        source: str,
        path: Destination,
        where: TaskFilter,
        *,
        format: Format,
        page_size: int,
        resume: bool,
        progress: ProgressCallback | None,
        deadline: float | None,
        strict: bool,
        csv_formula_guard: bool,
        read_ahead_bytes: int | None = None,
    ) -> ExportStats:
        """One export of the tasks ``url_for`` pages through; ``source`` names it in the
        checkpoint (a space token, a space's run, an agent)."""
        _params.check_positive("page_size", page_size)
        _params.check_seconds("deadline", deadline)
        options = WriterOptions(where=where, csv_formula_guard=bool(csv_formula_guard))
        filters_id = where.identity()
        if format == "csv":
            filters_id += f"|guard={options.csv_formula_guard}"
        job = ExportJob.prepare(
            path,
            format=format,
            page_size=page_size,
            resume=resume,
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
        pages = self._stream(
            url_for,
            job.decode,
            page_size=page_size,
            deadline=deadline,
            stats=job.stats,
            seen=job.seen,
            resume=job.resume_point,
            strict=strict,
            read_ahead_bytes=read_ahead_bytes,
        )
        return await job.run(pages)

    # --- runs and agents --------------------------------------------------------------------

    def iter_runs(
        self,
        space_token: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        strict: bool = False,
    ) -> TaskIterator[Run]:
        """Every run of a space, once each, newest first, through the same engine as tasks
        (concurrent pages, retries, drift safety, ``stats``).

        >>> async for run in client.iter_runs("SPACE_TOKEN"):
        ...     print(run.run_id, run.status, run.batch_count)
        """
        stats = PullStats()
        pages = self._stream(
            self._paged_url(_params.space_runs_path(space_token), ""),
            _decode.decode_runs_page,
            page_size=page_size,
            deadline=deadline,
            stats=stats,
            strict=strict,
        )
        return TaskIterator(pages, stats, _runs_of)

    async def list_runs(
        self,
        space_token: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        strict: bool = False,
    ) -> list[Run]:
        """Every run of a space in one list (``iter_runs`` streams them instead).

        >>> runs = await client.list_runs("SPACE_TOKEN")
        """
        runs: list[Run] = []
        async for run in self.iter_runs(
            space_token, page_size=page_size, deadline=deadline, strict=strict
        ):
            runs.append(run)
        return runs

    def iter_run_tasks(
        self,
        space_token: str,
        run_id: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        strict: bool = False,
        **filters: Unpack[TaskFilterArgs],
    ) -> TaskIterator[Task]:
        """Every task of one run of a space (``GET spaces/{token}/runs/{run_id}/tasks/``), as
        :meth:`iter_tasks` does for a space. The server filters these by ``thread_id`` and
        ``user_id`` only; ``status`` and the ``created`` bounds are checked here on each task,
        and the other filters are refused (``ValueError``).

        >>> async for task in client.iter_run_tasks("SPACE_TOKEN", run.run_id):
        ...     ...
        """
        where = TaskFilter(**filters)
        return self._iter(
            self._run_tasks_url(space_token, run_id, where), where, page_size, deadline, strict
        )

    def iter_agent_tasks(
        self,
        agent_handle: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        strict: bool = False,
        **filters: Unpack[TaskFilterArgs],
    ) -> TaskIterator[Task]:
        """Every task of one agent (``GET agents/{handle}/tasks/``), newest ``created`` first,
        as :meth:`iter_tasks` does for a space. The server sends its raw documents there (with
        ``_id``) and reads no filter: ``status`` and the ``created`` bounds are checked here
        on each task, and the other filters are refused (``ValueError``).

        >>> async for task in client.iter_agent_tasks("sales-agent"):
        ...     ...
        """
        where = TaskFilter(**filters)
        return self._iter(
            self._agent_tasks_url(agent_handle, where), where, page_size, deadline, strict
        )

    def _iter(
        self,
        url_for: Callable[[int, int], str],
        where: TaskFilter,
        page_size: int,
        deadline: float | None,
        strict: bool,
    ) -> TaskIterator[Task]:
        stats = PullStats()
        pages = self._stream(
            url_for,
            _decode.decode_typed_page,
            page_size=page_size,
            deadline=deadline,
            stats=stats,
            strict=strict,
        )
        return TaskIterator(pages, stats, _tasks_of(where))

    # --- a local copy ------------------------------------------------------------------

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

    # --- page streams -----------------------------------------------------------------------

    def _tasks_url(self, space_token: str, where: TaskFilter) -> Callable[[int, int], str]:
        """``url_for(page, page_size)`` of a space's tasks list (checked now, not later)."""
        base = self._url(_params.space_tasks_path(space_token), "?page=")
        query = where.query()

        def url_for(number: int, size: int) -> str:
            return f"{base}{number}&page_size={size}{query}"

        return url_for

    def _paged_url(self, path: str, query: str) -> Callable[[int, int], str]:
        """``url_for(page, page_size)`` of any paged list at ``path`` (checked by the caller)."""
        base = self._url(path, "?page=")

        def url_for(number: int, size: int) -> str:
            return f"{base}{number}&page_size={size}{query}"

        return url_for

    def _run_tasks_url(
        self, space_token: str, run_id: str, where: TaskFilter
    ) -> Callable[[int, int], str]:
        query = where.query_for("a run's tasks", _RUN_TASK_PARAMS)
        return self._paged_url(_params.run_tasks_path(space_token, run_id), query)

    def _agent_tasks_url(self, agent_handle: str, where: TaskFilter) -> Callable[[int, int], str]:
        query = where.query_for("an agent's tasks", ())
        return self._paged_url(_params.agent_tasks_path(agent_handle), query)

    def _task_pages(
        self,
        space_token: str,
        page_size: int,
        deadline: float | None,
        where: TaskFilter,
        stats: PullStats,
        strict: bool,
    ) -> AsyncGenerator[Page[TasksPage], None]:
        return self._stream(
            self._tasks_url(space_token, where),
            _decode.decode_typed_page,
            page_size=page_size,
            deadline=deadline,
            stats=stats,
            strict=strict,
        )

    def _stream(
        self,
        url_for: Callable[[int, int], str],
        decode: PageDecoder[P],
        *,
        page_size: int,
        deadline: float | None,
        stats: PullStats,
        seen: SeenKeys | None = None,
        resume: ResumePoint | None = None,
        max_passes: int = 4,
        strict: bool = False,
        read_ahead_bytes: int | None = None,
        horizon: Horizon | None = None,
    ) -> AsyncGenerator[Page[P], None]:
        """Validate now (before any request), then pull lazily: the pages of a whole pull
        (or of its head, down to ``horizon``)."""
        _params.check_positive("page_size", page_size)
        _params.check_seconds("deadline", deadline)
        self._transport.session  # noqa: B018 (a closed client refuses now, not at first page)
        return stream_pages(
            self._requester,
            url_for,
            decode,
            _decode.combiner_of(decode),
            page_size=page_size,
            concurrency=self.concurrency,
            read_ahead_bytes=read_ahead_bytes or self.read_ahead_bytes,
            deadline=deadline,
            stats=stats,
            max_passes=max_passes,
            seen=seen,
            resume=resume,
            strict=strict,
            horizon=horizon,
        )


# What the server's runs/{run_id}/tasks/ view reads besides the page (its task service's query).
_RUN_TASK_PARAMS = ("thread_id", "user_id")


def _runs_of(page: Page[RunsPage]) -> Sequence[Run]:
    return page.select(page.payload.data)


def _filtered(where: TaskFilter, tasks: Sequence[Task]) -> Sequence[Task]:
    """The tasks that pass ``where``'s client-side checks (after deduplication)."""
    if not where.client_side:
        return tasks
    return where.select(tasks, [t.status for t in tasks], [t.created for t in tasks])


def _tasks_of(where: TaskFilter) -> Callable[[Page[TasksPage]], Sequence[Task]]:
    """The tasks a consumer gets of a page: the new ones that pass the client-side filters."""

    def tasks(page: Page[TasksPage]) -> Sequence[Task]:
        return _filtered(where, page.select(page.payload.data))

    return tasks
