"""One stored task the server cannot serve poisons every page that holds it.

The real backend answers 206 "Tasks Fetch Failed" for every page holding a task that fails
its response model, every time, while the other pages work. A pull reads such a page again in
smaller pieces, skips only the positions that still fail, reports them, and keeps every task
it can read; with ``strict=True`` it fails instead.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from unpod_async import BusinessLogicError, UnpodClient
from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, make_client, tasks_server


class Poisoned:
    def __init__(self, n: int, bad: set[int]) -> None:
        self.tasks = [{"task_id": f"T{i:05d}", "status": "completed"} for i in range(n)]
        self.bad = bad
        self.requests: list[tuple[int, int]] = []

    async def handler(self, request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["page_size"])
        self.requests.append((page, size))
        start = (page - 1) * size
        if any(start <= i < start + size for i in self.bad):
            body: dict[str, Any] = {
                "status_code": 206,
                "message": "Tasks Fetch Failed",
                "data": {"errors": "1 validation error for TaskResponse"},
                "errors": "1 validation error for TaskResponse",
            }
            return web.Response(status=206, text=json.dumps(body), content_type="application/json")
        body = {
            "count": len(self.tasks),
            "status_code": 200,
            "data": self.tasks[start : start + size],
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    def readable(self) -> list[str]:
        return [t["task_id"] for i, t in enumerate(self.tasks) if i not in self.bad]


def client(url: str, **kwargs: Any) -> UnpodClient:
    return UnpodClient(TOKEN, base_url=url, concurrency=4, retry_delay=0.001, **kwargs)


@pytest.mark.parametrize("bad", [{234}, {234, 777}, {0}, {999}, {500, 501}], ids=str)
async def test_only_the_poisoned_positions_are_skipped(
    bad: set[int], caplog: pytest.LogCaptureFixture
) -> None:
    space = Poisoned(1000, bad)
    caplog.set_level(logging.WARNING, logger="unpod_async")
    async with tasks_server(space.handler) as url, client(url) as c:
        tasks = c.iter_tasks(SPACE, page_size=100)
        got = [t.task_id async for t in tasks]
    assert got == space.readable()  # every readable task, once, in order
    assert tasks.stats.skipped == sorted(bad)
    assert not tasks.stats.complete
    warned = [r.getMessage() for r in caplog.records if "skipped the task" in r.getMessage()]
    assert len(warned) == len(bad)
    assert all("Tasks Fetch Failed" in w for w in warned)
    # 100 = 2 x 2 x 5 x 5: a bad page costs its 6 attempts, then pieces of 50, 25, 5 and 1
    # (one attempt each, but 6 for the single bad position before it is skipped).
    assert len(space.requests) <= 11 + len(bad) * (6 + 2 + 2 + 5 + 4 + 6)


async def test_an_export_keeps_every_readable_task_and_says_what_it_skipped() -> None:
    space = Poisoned(1000, {321})
    out = io.BytesIO()
    async with tasks_server(space.handler) as url, client(url) as c:
        stats = await c.export_tasks(SPACE, out, page_size=100)
    lines = [json.loads(line)["task_id"] for line in out.getvalue().splitlines()]
    assert lines == space.readable()
    assert stats.skipped == (321,)
    assert stats.missing == 1
    assert not stats.complete


async def test_strict_fails_on_a_poisoned_page() -> None:
    space = Poisoned(1000, {321})
    async with tasks_server(space.handler) as url, client(url, max_retries=1) as c:
        with pytest.raises(BusinessLogicError, match="Tasks Fetch Failed"):
            await c.get_all_tasks(SPACE, page_size=100, strict=True)


async def test_a_space_whose_every_task_fails_is_an_error_not_an_empty_pull() -> None:
    space = Poisoned(50, set(range(50)))
    async with tasks_server(space.handler) as url, client(url, max_retries=1) as c:
        with pytest.raises(BusinessLogicError):
            await c.get_all_tasks(SPACE, page_size=10)


async def test_passing_faults_while_a_page_is_read_in_pieces_lose_nothing() -> None:
    # Every third request answers 503 (a proxy's passing fault): the pieces of the poisoned
    # page are retried for those, and only the poisoned position is skipped.
    space = Poisoned(1000, {321})
    inner = space.handler
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            return web.Response(status=503, text="<h1>busy</h1>", content_type="text/html")
        return await inner(request)

    async with tasks_server(flaky) as url, client(url, max_retries=8) as c:
        tasks = c.iter_tasks(SPACE, page_size=100)
        got = [t.task_id async for t in tasks]
    assert got == space.readable()
    assert tasks.stats.skipped == [321]


class ArrivalAt:
    """One task arrives at the head when the server gets its ``at``-th request."""

    def __init__(self, sim: Simulator, at: int) -> None:
        self.at, self.requests = at, 0
        self.arrived: list[str] = []
        sim.on_request = self

    def __call__(self, page: int, sim: Simulator) -> None:
        self.requests += 1
        if self.requests == self.at:
            self.arrived = sim.insert(1)


async def _pull_poisoned_live(position: int, at: int) -> None:
    async with serve(tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        original = sim.task_ids()
        bad = original[position]
        sim.poison(bad)
        arrival = ArrivalAt(sim, at)
        async with make_client(sim, concurrency=4) as c:
            tasks = c.iter_tasks(SPACE, page_size=100)
            got = [t.task_id async for t in tasks]
    assert arrival.arrived, "the space did not change during the pull"
    counts = Counter(got)
    assert [k for k, n in counts.items() if n > 1] == []  # nothing twice
    assert [k for k in original if k != bad and k not in counts] == []  # nothing readable lost
    assert bad not in counts
    assert tasks.stats.skipped  # and the pull says what it could not read
    assert not tasks.stats.complete


@pytest.mark.parametrize("at", [5, 10, 15, 20, 25, 30])
async def test_a_poisoned_page_one_read_again_for_the_heads_arrivals_is_read_in_pieces(
    at: int,
) -> None:
    # A task arriving mid-pull makes the pull read the head again: page 1, which holds the
    # poisoned task, must be read in pieces there too, not end the pull in its 206.
    await _pull_poisoned_live(3, at)


@pytest.mark.parametrize("at", [8, 12, 16, 19, 21, 23, 25, 27, 29, 31, 33])
async def test_the_space_moving_while_a_page_is_read_in_pieces_loses_no_readable_task(
    at: int,
) -> None:
    # The pieces of one page are many requests: an arrival among them shifts the tasks
    # between pieces, and the pull must notice and read what moved.
    await _pull_poisoned_live(450, at)


async def test_a_poisoned_page_whose_last_attempt_is_a_passing_fault_is_read_in_pieces() -> None:
    # The whole page answers 206 "Tasks Fetch Failed" (the poisoned task), then a proxy's 503
    # on its last attempt: what the page's retries learnt is the 206, so it is read in pieces.
    space = Poisoned(1000, {321})
    inner = space.handler
    whole_page_reads = 0

    async def last_attempt_503(request: web.Request) -> web.Response:
        nonlocal whole_page_reads
        if request.query["page"] == "4" and request.query["page_size"] == "100":
            whole_page_reads += 1
            if whole_page_reads == 3:  # the last of 1 + max_retries=2 attempts
                return web.Response(status=503, text="<h1>busy</h1>", content_type="text/html")
        return await inner(request)

    async with tasks_server(last_attempt_503) as url, client(url, max_retries=2) as c:
        tasks = c.iter_tasks(SPACE, page_size=100)
        got = [t.task_id async for t in tasks]
    assert whole_page_reads == 3
    assert got == space.readable()
    assert tasks.stats.skipped == [321]
