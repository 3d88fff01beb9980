"""The client's reading methods: organizations and spaces, one page, every task as an
iterator or a list, runs, agents."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

import msgspec

from . import _decode, _params
from ._core import ClientCore, filtered, runs_of, tasks_of
from ._errors import AuthenticationError
from ._iterate import TaskIterator, collect
from ._models import Organization, Run, RunsPage, Space, Task, TasksPage
from ._page import Page, PullStats
from ._params import AUTH_SCHEME_ENV, TaskFilter

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._params import TaskFilterArgs

__all__ = ["ReadAPI"]


class ReadAPI(ClientCore):
    """The organizations and spaces, ``get_tasks``, ``iter_tasks``, ``get_all_tasks``, runs
    and agents (see ``UnpodClient``)."""

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
        kept = filtered(where, result.data)
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
        return TaskIterator(pages, stats, tasks_of(where))

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
        return await collect(pages, tasks_of(where))

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
        return TaskIterator(
            self._run_pages(space_token, page_size, deadline, stats, strict), stats, runs_of
        )

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
        pages = self._run_pages(space_token, page_size, deadline, PullStats(), strict)
        runs: list[Run] = await collect(pages, runs_of)
        return runs

    def _run_pages(
        self,
        space_token: str,
        page_size: int,
        deadline: float | None,
        stats: PullStats,
        strict: bool,
    ) -> AsyncGenerator[Page[RunsPage], None]:
        return self._stream(
            self._paged_url(_params.space_runs_path(space_token), ""),
            _decode.decode_runs_page,
            page_size=page_size,
            deadline=deadline,
            stats=stats,
            strict=strict,
        )

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
        return TaskIterator(pages, stats, tasks_of(where))
