"""Whole-space paging against the simulator over loopback: order, laziness, caps, bounds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from unpod_async import TasksPage, UnpodClient
from unpod_async.testing import Simulator

from .conftest import ORG, SPACE, TOKEN, make_client


@dataclass
class Hit:
    page: int | None
    page_size: int | None
    start: float
    end: float | None = None


@dataclass
class Tracer:
    """What the server saw: every request with its start and end, and the peak in flight."""

    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    def pages(self) -> list[int | None]:
        return [h.page for h in self.hits]

    @property
    def max_page(self) -> int:
        return max((h.page or 0 for h in self.hits), default=0)


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


@contextlib.asynccontextmanager
async def traced(tasks: int = 1000, **kwargs: Any) -> AsyncIterator[tuple[Simulator, Tracer]]:
    sim = Simulator(tasks, token=TOKEN, org_handle=ORG, space_token=SPACE, **kwargs)
    tracer = Tracer()

    @web.middleware
    async def trace(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        hit = Hit(_int(request.query.get("page")), _int(request.query.get("page_size")), 0.0)
        hit.start = loop.time()
        tracer.hits.append(hit)
        tracer.in_flight += 1
        tracer.peak = max(tracer.peak, tracer.in_flight)
        try:
            return await handler(request)
        finally:
            tracer.in_flight -= 1
            hit.end = loop.time()

    sim.app.middlewares.append(trace)
    async with sim:
        yield sim, tracer


def ids(tasks: list[Any]) -> list[str]:
    return [t.task_id for t in tasks]


# --------------------------------------------------------------------------- one pass


async def test_page_one_first_then_the_rest_each_task_once_in_order() -> None:
    async with traced(1000) as (sim, tracer), make_client(sim, concurrency=4) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert ids(tasks) == sim.task_ids()
    first, *rest = tracer.hits
    assert first.page == 1
    assert first.page_size == 100
    assert first.end is not None
    assert all(h.start >= first.end for h in rest)  # the count is known before the fan-out
    pages = Counter(tracer.pages())
    assert all(n == 1 for n in pages.values()), pages  # no page fetched twice
    assert set(range(1, 11)) <= set(pages)
    assert max(pages) <= 11


@pytest.mark.simulator(ids="_id")  # asserts on every task's _id
async def test_iter_tasks_streams_the_same_tasks(sim: Simulator, client: UnpodClient) -> None:
    streamed = [t async for t in client.iter_tasks(SPACE, page_size=64)]
    assert ids(streamed) == sim.task_ids()
    assert len({t.id for t in streamed}) == len(sim)


@pytest.mark.parametrize("page_size", [1, 7, 1000, 5000])
async def test_any_page_size_gives_every_task_once(page_size: int) -> None:
    async with traced(300) as (sim, _), make_client(sim) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=page_size)
    assert ids(tasks) == sim.task_ids()


async def test_empty_space() -> None:
    async with traced(0) as (sim, tracer), make_client(sim) as client:
        assert await client.get_all_tasks(SPACE) == []
    assert tracer.pages() == [1]


async def test_get_tasks_returns_one_tasks_page(sim: Simulator, client: UnpodClient) -> None:
    page = await client.get_tasks(SPACE, page=3, page_size=7)
    assert isinstance(page, TasksPage)
    assert page.count == len(sim)
    assert ids(page.data) == sim.task_ids()[14:21]
    past = await client.get_tasks(SPACE, page=1000, page_size=7)
    assert isinstance(past, TasksPage)
    assert past.data == ()
    assert past.count == len(sim)


# --------------------------------------------------------------------------- laziness


async def test_overstated_count_fan_out_is_lazy() -> None:
    concurrency = 4
    async with (
        traced(1000, count_offset=50_000_000) as (sim, tracer),
        make_client(sim, concurrency=concurrency) as client,
    ):
        alive: list[int] = []
        got: list[str] = []
        started = time.monotonic()

        async def consume() -> None:
            async for task in client.iter_tasks(SPACE, page_size=100):
                got.append(task.task_id)
                alive.append(len(asyncio.all_tasks()))

        await asyncio.wait_for(consume(), timeout=10)
        elapsed = time.monotonic() - started
    assert got == sim.task_ids()
    assert elapsed < 5
    # Ten full pages, the empty page that ends the pass, and at most one window beyond it.
    assert len(tracer.hits) <= 11 + 2 * concurrency + 1
    # Client fetches, plus the in-process server's own connection and handler tasks.
    assert max(alive) <= 8 * concurrency, max(alive)


async def test_understated_count_still_reaches_the_last_task() -> None:
    for offset in (-1, -550, -999, -1000):
        async with traced(1000, count_offset=offset) as (sim, tracer), make_client(sim) as client:
            tasks = await client.get_all_tasks(SPACE, page_size=100)
        assert ids(tasks) == sim.task_ids(), offset
        assert Counter(tracer.pages()).most_common(1)[0][1] == 1


@pytest.mark.parametrize("tasks", [1000, 1050])
async def test_overstated_count_stops_at_the_first_short_or_empty_page(tasks: int) -> None:
    async with (
        traced(tasks, count_offset=5000) as (sim, tracer),
        make_client(sim, concurrency=1) as client,
    ):
        got = await client.get_all_tasks(SPACE, page_size=100)
    assert ids(got) == sim.task_ids()
    last = 11  # page 11 is empty (1000 tasks) or short (1050)
    # With concurrency 1 the window is 2 pages: nothing far past the end is asked for.
    assert tracer.max_page <= last + 2
    assert len(tracer.hits) <= last + 2


async def test_page_size_cap_is_learnt_from_page_one() -> None:
    async with traced(1000, page_size_cap=30) as (sim, tracer), make_client(sim) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert ids(tasks) == sim.task_ids()
    assert tracer.hits[0].page_size == 100
    assert {h.page_size for h in tracer.hits[1:]} == {30}
    assert Counter(tracer.pages()).most_common(1)[0][1] == 1
    assert len(tracer.hits) <= 1000 // 30 + 2 + 1


# --------------------------------------------------------------------------- bounds


async def test_concurrency_bounds_the_whole_client_across_calls() -> None:
    async with (
        traced(600, latency=0.01) as (sim, tracer),
        make_client(sim, concurrency=3) as client,
    ):
        results = await asyncio.gather(
            *(client.get_all_tasks(SPACE, page_size=20) for _ in range(3))
        )
    for tasks in results:
        assert ids(tasks) == sim.task_ids()
    assert tracer.peak <= 3
    assert tracer.peak == 3  # the bound is used, not just respected


async def test_concurrency_bounds_single_page_calls_too() -> None:
    async with (
        traced(200, latency=0.01) as (sim, tracer),
        make_client(sim, concurrency=2) as client,
    ):
        pages = await asyncio.gather(
            *(client.get_tasks(SPACE, page=p, page_size=10) for p in range(1, 11))
        )
    assert [t for page in pages for t in ids(page.data)] == sim.task_ids()[:100]
    assert tracer.peak == 2


async def test_iter_tasks_keeps_about_two_windows_of_pages() -> None:
    concurrency = 2
    page_size = 100
    async with (
        traced(20_000, latency=0.001) as (sim, tracer),
        make_client(sim, concurrency=concurrency) as client,
    ):
        leads: list[int] = []
        count = 0
        async for task in client.iter_tasks(SPACE, page_size=page_size):
            assert task.task_id is not None
            if count % page_size == 0:
                await asyncio.sleep(0.003)  # a slow consumer
                leads.append(tracer.max_page - (count // page_size + 1))
            count += 1
    assert count == len(sim) == 20_000
    # Pages requested ahead of the one being consumed stay within the fetch window.
    assert max(leads) <= 2 * concurrency + 1, max(leads)
    assert max(leads) >= concurrency  # and it does fetch ahead
    assert Counter(tracer.pages()).most_common(1)[0][1] == 1
