"""Whole-space paging against the simulator over loopback: order, laziness, caps, read-ahead.

Every task once and in order, whatever the page size or a wrong ``count``; pages fetched
lazily and only a window ahead of the consumer; a server page-size cap learnt from page one.
How many requests are in flight at once is in ``test_limits.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from unpod_async import TasksPage, UnpodClient
from unpod_async.testing import Simulator

from .helpers import SPACE, ids, make_client, serve_recorded

# --------------------------------------------------------------------------- one pass


async def test_page_one_first_then_the_rest_each_task_once_in_order() -> None:
    async with serve_recorded(1000) as (sim, tracer), make_client(sim, concurrency=4) as client:
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
    async with serve_recorded(300) as (sim, _), make_client(sim) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=page_size)
    assert ids(tasks) == sim.task_ids()


async def test_empty_space() -> None:
    async with serve_recorded(0) as (sim, tracer), make_client(sim) as client:
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
        serve_recorded(1000, count_offset=50_000_000) as (sim, tracer),
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
        async with (
            serve_recorded(1000, count_offset=offset) as (sim, tracer),
            make_client(sim) as client,
        ):
            tasks = await client.get_all_tasks(SPACE, page_size=100)
        assert ids(tasks) == sim.task_ids(), offset
        assert Counter(tracer.pages()).most_common(1)[0][1] == 1


@pytest.mark.parametrize("tasks", [1000, 1050])
async def test_overstated_count_stops_at_the_first_short_or_empty_page(tasks: int) -> None:
    async with (
        serve_recorded(tasks, count_offset=5000) as (sim, tracer),
        make_client(sim, concurrency=1) as client,
    ):
        got = await client.get_all_tasks(SPACE, page_size=100)
    assert ids(got) == sim.task_ids()
    last = 11  # page 11 is empty (1000 tasks) or short (1050)
    # With concurrency 1 the window is 2 pages: nothing far past the end is asked for.
    assert tracer.max_page <= last + 2
    assert len(tracer.hits) <= last + 2


async def test_page_size_cap_is_learnt_from_page_one() -> None:
    async with serve_recorded(1000, page_size_cap=30) as (sim, tracer), make_client(sim) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert ids(tasks) == sim.task_ids()
    assert tracer.hits[0].page_size == 100
    assert {h.page_size for h in tracer.hits[1:]} == {30}
    assert Counter(tracer.pages()).most_common(1)[0][1] == 1
    assert len(tracer.hits) <= 1000 // 30 + 2 + 1


# --------------------------------------------------------------------------- read-ahead


async def test_iter_tasks_reads_ahead_within_its_byte_budget() -> None:
    # Fetched pages wait as bytes, bounded by read_ahead_bytes (plus the requests in flight,
    # at most 2 x concurrency), not by a count of pages: a slow consumer never makes the
    # client hold more than about the budget.
    concurrency = 2
    page_size = 100
    async with (
        serve_recorded(20_000, latency=0.001) as (sim, tracer),
        make_client(sim, concurrency=concurrency, read_ahead_bytes=1_000_000) as client,
    ):
        page_bytes = len(b",".join(sim.tasks_json()[:page_size]))
        leads: list[int] = []
        count = 0
        async for task in client.iter_tasks(SPACE, page_size=page_size):
            assert task.task_id is not None
            if count % page_size == 0:
                await asyncio.sleep(0.003)  # a slow consumer
                leads.append(tracer.max_page - (count // page_size + 1))
            count += 1
    assert count == len(sim) == 20_000
    budget_pages = -(-1_000_000 // page_bytes)
    assert max(leads) <= budget_pages + 2 * concurrency + 1, max(leads)
    assert max(leads) >= concurrency  # and it does fetch ahead
    assert Counter(tracer.pages()).most_common(1)[0][1] == 1
