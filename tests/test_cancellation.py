"""Closing an iterator early or cancelling a caller stops every request at once, cleanly.

The simulator runs on its own event loop in a thread here (``threaded_serve``), so that the
test's loop holds only the client's tasks and ``asyncio.all_tasks()`` shows exactly what the
client left behind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing
from typing import Any

import pytest

from unpod_async import UnpodClient
from unpod_async.testing import Fault, Simulator

from .helpers import SPACE, TOKEN, make_client, threaded_serve


def others() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def wait_for_requests(sim: Simulator, n: int) -> None:
    async with asyncio.timeout(5):
        while len(sim.requests) < n:
            await asyncio.sleep(0.005)


async def assert_quiet(sim: Simulator, seconds: float = 0.3) -> None:
    """The server sees no new request from now on.

    A request written just before the cancellation may still reach the server (its own loop
    runs in another thread): the check starts after a short settling time.
    """
    await asyncio.sleep(0.05)
    seen = len(sim.requests)
    await asyncio.sleep(seconds)
    assert len(sim.requests) == seen


@pytest.fixture
def no_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING, logger="asyncio")
    yield
    gc.collect()
    problems = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert problems == []  # e.g. "Task was destroyed but it is pending!"


@pytest.mark.usefixtures("no_leaks")
async def test_aclosing_an_iterator_cancels_every_request_in_flight() -> None:
    with threaded_serve(1000, latency=0.05) as (sim, _):
        async with make_client(sim, concurrency=4) as client:
            got = 0
            busy = 0
            async with aclosing(client.iter_tasks(SPACE, page_size=10)) as tasks:
                async for _ in tasks:
                    got += 1
                    if got == 25:
                        busy = len(others())
                        break
            assert busy >= 2  # requests were in flight when we stopped
            assert others() == set()
            assert len(sim.requests) < 100
            await assert_quiet(sim)
            # The client is still whole: its admission slots came back.
            page = await asyncio.wait_for(client.get_tasks(SPACE, page_size=5), 5)
            assert len(page.data) == 5


def hold_pages_after(last: int) -> Callable[[int, Simulator], Awaitable[None]]:
    """A server hook that answers pages up to ``last`` and holds later ones (until cancelled)."""

    async def hook(page: int, sim: Simulator) -> None:
        if page > last:
            await asyncio.sleep(30)

    return hook


@pytest.mark.usefixtures("no_leaks")
async def test_cancelling_the_caller_of_get_all_tasks() -> None:
    with threaded_serve(1000) as (sim, server):
        sim.on_request = hold_pages_after(2)
        async with make_client(sim, concurrency=4) as client:
            job = asyncio.create_task(client.get_all_tasks(SPACE, page_size=10))
            await wait_for_requests(sim, 6)
            assert server.in_flight >= 3
            job.cancel()
            async with asyncio.timeout(1):
                with pytest.raises(asyncio.CancelledError):
                    await job
            assert others() == set()
            await assert_quiet(sim)
            assert len(sim.requests) <= 2 + 2 * 4
            sim.on_request = None
            tasks = await asyncio.wait_for(client.get_all_tasks(SPACE, page_size=100), 5)
            assert [t.task_id for t in tasks] == sim.task_ids()


async def test_a_cancellation_is_never_lost() -> None:
    # Cancel at many random moments while responses stream in: every single cancellation
    # must end the call with CancelledError (none may be swallowed by a completing request,
    # as asyncio.wait_for does before Python 3.12, CPython gh-86296).
    rng = random.Random(7)
    lost = 0
    # 5 ms a page: a pull of 100 pages at concurrency 4 takes >= 125 ms, so every cancel at
    # 0-30 ms lands mid-pull (without latency a fast machine finishes some pulls first).
    with threaded_serve(1000, latency=0.005) as (sim, _):
        async with make_client(sim, concurrency=4) as client:
            for _ in range(30):
                job = asyncio.create_task(client.get_all_tasks(SPACE, page_size=10))
                await asyncio.sleep(rng.random() * 0.03)
                assert not job.done()
                job.cancel()
                try:
                    await job
                except asyncio.CancelledError:
                    pass
                else:
                    lost += 1
                assert others() == set()
    assert lost == 0, f"{lost} of 30 cancellations were swallowed"


@pytest.mark.usefixtures("no_leaks")
async def test_cancelling_during_retry_backoff() -> None:
    with threaded_serve(100) as (sim, _):
        sim.faults.append(Fault("status", status=503, page=1, times=10))
        async with make_client(sim, retry_delay=5.0, max_retry_delay=5.0) as client:
            job = asyncio.create_task(client.get_tasks(SPACE))
            await wait_for_requests(sim, 1)
            await asyncio.sleep(0.05)
            job.cancel()
            async with asyncio.timeout(1):  # not after the backoff
                with pytest.raises(asyncio.CancelledError):
                    await job
            assert others() == set()
            await assert_quiet(sim, 0.1)
            assert len(sim.requests) == 1


@pytest.mark.usefixtures("no_leaks")
async def test_cancelling_during_a_429_pause() -> None:
    with threaded_serve(100) as (sim, _):
        sim.faults.append(Fault("429", page=1, retry_after="5"))
        async with make_client(sim) as client:
            job = asyncio.create_task(client.get_tasks(SPACE))
            await wait_for_requests(sim, 1)
            await asyncio.sleep(0.05)
            job.cancel()
            async with asyncio.timeout(1):
                with pytest.raises(asyncio.CancelledError):
                    await job
            assert others() == set()
            assert len(sim.requests) == 1


@pytest.mark.usefixtures("no_leaks")
async def test_cancelled_waiters_do_not_leak_admission_slots() -> None:
    with threaded_serve(1000, latency=0.02) as (sim, server):
        async with make_client(sim, concurrency=2) as client:
            for round_ in range(4):
                jobs = [
                    asyncio.create_task(client.get_tasks(SPACE, page=p, page_size=10))
                    for p in range(1, 13)
                ]
                await asyncio.sleep(0.01 + 0.013 * round_)
                for job in jobs[round_ % 2 :: 2]:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
            assert others() == set()
            server.peak = 0
            pages = await asyncio.wait_for(
                asyncio.gather(*(client.get_tasks(SPACE, page=p, page_size=10) for p in (1, 2, 3))),
                5,
            )
            assert [len(p.data) for p in pages] == [10, 10, 10]
            assert server.peak == 2  # both slots are still there, and no more


@pytest.mark.usefixtures("no_leaks")
async def test_closing_the_client_under_a_running_pull() -> None:
    with threaded_serve(1000) as (sim, _):
        sim.on_request = hold_pages_after(1)
        client = make_client(sim, concurrency=4)
        job = asyncio.create_task(client.get_all_tasks(SPACE, page_size=10))
        await wait_for_requests(sim, 4)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        await client.aclose()
        assert others() == set()
        with pytest.raises(RuntimeError):
            await client.get_tasks(SPACE)


async def test_no_request_when_the_client_is_closed() -> None:
    with threaded_serve(10) as (sim, _):
        client = UnpodClient(TOKEN, base_url=sim.base_url)
        await client.aclose()
        with pytest.raises(RuntimeError):
            await client.get_tasks(SPACE)
        with pytest.raises(RuntimeError):
            async for _ in client.iter_tasks(SPACE):
                pass
        assert sim.requests == []
