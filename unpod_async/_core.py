"""What every part of the client shares: its sender, its options, and its page streams.

:class:`ClientCore` holds what ``UnpodClient.__init__`` builds (the requester with its gate and
transport, the checked options) and turns an endpoint into a lazy page stream through the
engine (``_pull.stream_pages``). The public methods live in ``_api_read`` (pages, iterators,
lists) and ``_api_write`` (exports, sync), which build on it; ``_client`` puts them together.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from . import _decode, _params
from ._decode import PageDecoder
from ._models import Run, RunsPage, Task, TasksPage
from ._page import Horizon, Page, PullStats, ResumePoint
from ._params import API_PREFIX, TaskFilter
from ._pull import stream_pages
from ._seen import SeenKeys

if TYPE_CHECKING:
    from ._limits import Gate
    from ._redact import Secret
    from ._request import Requester
    from ._transport import Transport

__all__ = ["ClientCore", "filtered", "runs_of", "tasks_of"]

P = TypeVar("P")


class ClientCore:
    """The state and the page streams the client's public methods build on."""

    base_url: str
    org_handle: str | None
    auth_scheme: str
    concurrency: int
    timeout: float
    max_response_bytes: int
    read_ahead_bytes: int
    _token: Secret
    _transport: Transport
    _gate: Gate
    _requester: Requester

    def _url(self, path: str, query: str = "") -> str:
        return f"{self.base_url}{API_PREFIX}{path}{query}"

    def _tasks_url(self, space_token: str, where: TaskFilter) -> Callable[[int, int], str]:
        """``url_for(page, page_size)`` of a space's tasks list (checked now, not later)."""
        return self._paged_url(_params.space_tasks_path(space_token), where.query())

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
            seen=seen,
            resume=resume,
            strict=strict,
            horizon=horizon,
        )


# What the server's runs/{run_id}/tasks/ view reads besides the page (its task service's query).
_RUN_TASK_PARAMS = ("thread_id", "user_id")


def runs_of(page: Page[RunsPage]) -> Sequence[Run]:
    return page.select(page.payload.data)


def filtered(where: TaskFilter, tasks: Sequence[Task]) -> Sequence[Task]:
    """The tasks that pass ``where``'s client-side checks (after deduplication)."""
    if not where.client_side:
        return tasks
    return where.select(tasks, [t.status for t in tasks], [t.created for t in tasks])


def tasks_of(where: TaskFilter) -> Callable[[Page[TasksPage]], Sequence[Task]]:
    """The tasks a consumer gets of a page: the new ones that pass the client-side filters."""

    def tasks(page: Page[TasksPage]) -> Sequence[Task]:
        return filtered(where, page.select(page.payload.data))

    return tasks
