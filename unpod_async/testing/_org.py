"""The organization around the simulator's space: more spaces, their runs, and agents.

Served like the real backend (see the project's API notes and its task service):

- ``GET spaces/{token}/runs/``: the runs of a space, paged and ordered like tasks (newest
  first), each with the runs list's fields (``run_id, run_mode, status, batch_count, created,
  ...``); a failure answers 206 "Runs Fetch Failed".
- ``GET spaces/{token}/runs/{run_id}/tasks/``: the tasks of one run, paged like tasks, in the
  same shape, filtered by ``thread_id`` and ``user_id`` only (the backend's query); an unknown
  run has no tasks (200, ``count`` 0), as that query finds none.
- ``GET agents/{handle}/tasks/``: the tasks assigned to an agent across the organization's
  spaces, newest ``created`` first, 20 a page by default, as raw stored documents (``_id``
  always, and the stored fields the response model would drop); an unknown agent answers 404.

A task belongs to run ``serial // RUN_SIZE`` of its space, and a run to one agent
(``agent-1`` .. ``agent-8``).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Protocol, TypeVar

import msgspec
from aiohttp import web

from ._data import (
    RUN_SIZE,
    TaskRecord,
    assignee_of,
    real_task_document,
    render_task,
    run_document,
    run_id_of,
    run_of,
    thread_id_of,
)
from ._faults import (
    IMMEDIATE,
    Fault,
    body_response,
    fetch_failed,
    immediate_response,
    invalid_space_token,
    json_response,
)


class RequestRecord(Protocol):
    """What the simulator's request log keeps of a request that this module answers."""

    query: dict[str, str]
    page: int | None
    fault: str | None
    status: int


class Simulator(Protocol):
    """What this module reads of a space's simulator (``_simulator.Simulator``)."""

    seed: int
    space_token: str
    legacy_shapes: bool
    page_size_cap: int | None
    _tasks: list[TaskRecord]
    _space_id: int
    _poisoned_serials: set[int]
    _poisoned_ids: set[str]
    _agent_cache: dict[int, str]
    _agent_raw: dict[tuple[str, int], bytes]

    @property
    def space_tokens(self) -> list[str]: ...
    def space(self, space_token: str) -> Simulator: ...
    def _render(self, rec: TaskRecord) -> bytes: ...
    def _is_poisoned(self, rec: TaskRecord) -> bool: ...
    def _take_fault(self, page: int | None, route: str = "tasks") -> Fault | None: ...
    def _real_page(
        self, page: int | None, size_text: str | None, *, default: int | None = None
    ) -> tuple[int, int]: ...


class BadRequest(Exception):
    """A query parameter the backend cannot handle (answered with 206 "... Fetch Failed")."""

    def __init__(self, errors: Any) -> None:
        super().__init__(str(errors))
        self.errors = errors


def parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


T = TypeVar("T")


def slice_page(items: list[T], page: int, size: int, cap: int | None) -> list[T]:
    """Page ``page`` of ``items`` at ``size`` a page, as the backend's skip and limit take it:
    a ``size`` of 0 (no limit) or above ``cap`` is ``cap``; with no cap, 0 takes every item; a
    negative size takes ``abs(size)`` (only page 1 gets here with one)."""
    if cap is not None and (size == 0 or abs(size) > cap):
        size = cap
    if size == 0:
        return items
    size = abs(size)
    return items[(page - 1) * size : page * size]


__all__ = [
    "AGENTS",
    "PAGED_ROUTES",
    "BadRequest",
    "org_route",
    "parse_int",
    "serve_org",
    "slice_page",
    "space_document",
]

#: The agents of the simulated organization.
AGENTS: Final = tuple(f"agent-{i}" for i in range(1, 9))
#: The routes whose answers are pages (faults apply to them).
PAGED_ROUTES: Final = frozenset({"tasks", "runs", "run_tasks", "agent_tasks"})
AGENT_PAGE_SIZE: Final = 20
RUNS_FAILED: Final = "Runs Fetch Failed"
TASKS_FAILED: Final = "Tasks Fetch Failed"
# The server's own prefix, written out (not the client's constant): a client that sent
# another would be caught.
API_PREFIX: Final = "/api/v2/platform/"
_encode = msgspec.json.Encoder().encode


def org_route(path: str) -> tuple[str, tuple[str, ...]] | None:
    """``(route, arguments)`` of a runs or agents path, or ``None``."""
    if not path.startswith(API_PREFIX):
        return None
    parts = path[len(API_PREFIX) :].split("/")
    if len(parts) == 4 and parts[0] == "spaces" and parts[1] and parts[2:] == ["runs", ""]:
        return "runs", (parts[1],)
    if (
        len(parts) == 6
        and parts[0] == "spaces"
        and parts[1]
        and parts[2] == "runs"
        and parts[3]
        and parts[4:] == ["tasks", ""]
    ):
        return "run_tasks", (parts[1], parts[3])
    if len(parts) == 4 and parts[0] == "agents" and parts[1] and parts[2:] == ["tasks", ""]:
        return "agent_tasks", (parts[1],)
    return None


def space_document(space: Simulator, org_handle: str) -> dict[str, Any]:
    """One more space of the organization, as the spaces list shows it."""
    token = space.space_token
    return {
        "name": f"Space {token}",
        "token": token,
        "slug": token.lower(),
        "description": None,
        "logo": None,
        "content_type": "general",
        "privacy_type": "private",
        "organization": {"name": "Demo Org", "domain_handle": org_handle},
        "created": "2025-06-01T12:00:00",
    }


async def serve_org(
    sim: Simulator, request: web.Request, record: RequestRecord, route: str, args: Sequence[str]
) -> web.StreamResponse:
    """The answer of an authenticated runs or agents request."""
    if route == "agent_tasks":
        return await _agent_tasks(sim, request, record, args[0])
    space = sim.space(args[0]) if args[0] in sim.space_tokens else None
    if space is None:
        return invalid_space_token()
    if route == "runs":
        runs = list(_runs(space))
        return await _paged(
            space,
            request,
            record,
            route,
            runs,
            lambda run: _encode(run_document(space.seed, run[0], run[1], space_id=space._space_id)),
            failed=RUNS_FAILED,
            message="Runs Fetched Successfully",
        )
    run_id = args[1]
    tasks = [rec for index, recs in _runs(space) if _run_id(space, index) == run_id for rec in recs]
    # The backend's run tasks query: the run, and the caller's thread_id and user_id.
    thread_id, user_id = record.query.get("thread_id"), record.query.get("user_id")
    if thread_id:
        tasks = [rec for rec in tasks if thread_id_of(space.seed, rec.serial) == thread_id]
    if user_id:
        tasks = [rec for rec in tasks if str(rec.user["id"]) == user_id]
    poisoned = space._is_poisoned if space._poisoned_serials or space._poisoned_ids else None
    return await _paged(
        space,
        request,
        record,
        route,
        tasks,
        lambda rec: rec.raw if rec.raw is not None else space._render(rec),
        failed=TASKS_FAILED,
        message="Tasks Fetched Successfully",
        poisoned=poisoned,
    )


def _runs(space: Simulator) -> Iterator[tuple[int, list[TaskRecord]]]:
    """The runs of a space, newest first, each with its current tasks in server order."""
    current: list[TaskRecord] = []
    index = None
    for rec in space._tasks:
        run = run_of(rec.serial)
        if run != index and current:
            assert index is not None
            yield index, current
            current = []
        index = run
        current.append(rec)
    if current:
        assert index is not None
        yield index, current


def _run_id(space: Simulator, index: int) -> str:
    return run_id_of(space.seed, index * RUN_SIZE)


async def _agent_tasks(
    sim: Simulator, request: web.Request, record: RequestRecord, handle: str
) -> web.StreamResponse:
    if handle not in AGENTS:
        return json_response(404, {"message": "Agent not found"})
    spaces = [sim.space(token) for token in sim.space_tokens]

    def assigned(space: Simulator) -> list[tuple[Simulator, TaskRecord]]:
        return [(space, rec) for rec in space._tasks if _assignee(space, rec.serial) == handle]

    # Each space's tasks are newest first: merged, the organization's are too.
    tasks = list(
        heapq.merge(*map(assigned, spaces), key=lambda item: item[1].created, reverse=True)
    )
    return await _paged(
        sim,
        request,
        record,
        "agent_tasks",
        tasks,
        lambda item: _raw_document(sim, *item),
        failed=TASKS_FAILED,
        message="Tasks Fetched Successfully",
        default_size=AGENT_PAGE_SIZE,
    )


def _assignee(space: Simulator, serial: int) -> str:
    cache = space._agent_cache
    run = run_of(serial)
    agent = cache.get(run)
    if agent is None:
        agent = cache[run] = assignee_of(space.seed, serial)
    return agent


def _raw_document(sim: Simulator, space: Simulator, rec: TaskRecord) -> bytes:
    """A task as the agents view sends it: the stored document, ``_id`` and all."""
    key = (space.space_token, rec.serial)
    raw = sim._agent_raw.get(key)
    if raw is None:
        if space.legacy_shapes:
            raw = render_task(space.seed, rec.serial)
        else:
            doc = real_task_document(
                space.seed,
                rec.serial,
                ids="_id",
                poisoned=space._is_poisoned(rec),
                space_id=space._space_id,
            )
            failed = doc["status"] == "failed"
            doc.update(
                failure_count=int(failed),
                last_failure_reason="SIP 480" if failed else None,
                provider=None,
                retry_attempt=int(failed),
                last_status_change=doc["modified"],
                scheduled_timestamp=None,
            )
            raw = _encode(doc)
        sim._agent_raw[key] = raw
    return raw


async def _paged(
    sim: Simulator,
    request: web.Request,
    record: RequestRecord,
    route: str,
    items: list[T],
    render: Callable[[T], bytes],
    *,
    failed: str,
    message: str,
    default_size: int | None = None,
    poisoned: Callable[[T], bool] | None = None,
) -> web.StreamResponse:
    """One page of ``items`` as the backend's paginator answers it, with ``sim``'s faults."""
    query = record.query
    page = parse_int(query.get("page", "1"))
    record.page = page
    fault = sim._take_fault(page, route)
    if fault is not None:
        record.fault = fault.kind
        if fault.kind in IMMEDIATE:
            if fault.kind == "206" and fault.message is None:
                return fetch_failed("database timeout", failed)
            return immediate_response(request, record, fault)
        if fault.kind == "stall":
            await asyncio.sleep(fault.delay)
    try:
        page, size = sim._real_page(page, query.get("page_size"), default=default_size)
    except BadRequest as exc:
        return fetch_failed(exc.errors, failed)
    chunk = slice_page(items, page, size, sim.page_size_cap)
    if poisoned is not None and any(poisoned(item) for item in chunk):
        return fetch_failed("Internal Server Error", failed)
    head = b'{"count":%d,"status_code":200,"message":"%s","data":[' % (
        len(items),
        message.encode(),
    )
    body = b"".join((head, b",".join([render(item) for item in chunk]), b"]}"))
    return await body_response(request, record, fault, body)
