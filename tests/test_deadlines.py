"""``deadline=``: one bound on a whole call, whatever it waits for.

``iter_tasks``, ``get_all_tasks`` and ``export_tasks`` stop at the deadline with
``DeadlineExceededError`` (an ``APITimeoutError``), saying how many pages and tasks they got,
through slow pages, endless retries, a stalled attempt, a long Retry-After, a rate-limit slot
and a sibling request's 429 pause. An export stopped so leaves its destination untouched.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from unpod_async import APITimeoutError, DeadlineExceededError, UnpodError
from unpod_async.testing import Fault, Simulator

from .helpers import SPACE, make_client


async def test_deadline_bounds_iter_tasks(sim: Simulator) -> None:
    sim.latency = 0.05
    async with make_client(sim, concurrency=2) as client:
        consumed = 0

        async def consume() -> None:
            nonlocal consumed
            async for _ in client.iter_tasks(SPACE, page_size=10, deadline=0.5):
                consumed += 1

        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            await consume()
        elapsed = time.monotonic() - started
    error = info.value
    assert isinstance(error, APITimeoutError)
    assert isinstance(error, UnpodError)
    assert 0.45 < elapsed < 0.8
    assert 0 < consumed < 1000
    assert error.tasks == consumed
    assert error.pages >= consumed // 10
    assert f"after {error.pages} pages and {error.tasks} tasks" in str(error)


async def test_deadline_bounds_get_all_tasks(sim: Simulator) -> None:
    sim.latency = 0.05
    async with make_client(sim, concurrency=2) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            await client.get_all_tasks(SPACE, page_size=10, deadline=0.4)
        elapsed = time.monotonic() - started
    assert 0.35 < elapsed < 0.7
    assert info.value.pages > 0
    assert info.value.tasks > 0


async def test_deadline_bounds_export_and_leaves_the_destination(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(b"previous export\n")
    sim.latency = 0.05
    async with make_client(sim, concurrency=2) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            await client.export_tasks(SPACE, out, page_size=10, deadline=0.4)
        elapsed = time.monotonic() - started
    assert 0.35 < elapsed < 0.7
    assert info.value.pages > 0
    assert out.read_bytes() == b"previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["tasks.jsonl"]


async def test_deadline_bounds_retries_of_a_failing_page(sim: Simulator) -> None:
    sim.faults.append(Fault("status", page=3, status=503, times=10_000))
    async with make_client(
        sim, max_retries=10_000, retry_delay=0.05, max_retry_delay=0.05
    ) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            await client.get_all_tasks(SPACE, page_size=100, deadline=0.6)
        elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 0.8
    assert info.value.tasks == 200  # pages 1 and 2 arrived; page 3 never did
    assert info.value.pages >= 2


async def test_deadline_cuts_a_stalled_attempt_short(sim: Simulator) -> None:
    """The per-attempt timeout is 30 s, but the deadline is what is left of the pull."""
    sim.faults.append(Fault("stall", page=1, delay=30))
    async with make_client(sim, timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            await client.get_all_tasks(SPACE, deadline=0.5)
        elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 0.8
    assert (info.value.pages, info.value.tasks) == (0, 0)


async def test_deadline_does_not_sleep_through_a_long_retry_after(sim: Simulator) -> None:
    sim.faults.append(Fault("429", page=1, retry_after="5"))
    async with make_client(sim) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await client.get_all_tasks(SPACE, deadline=0.5)
        assert time.monotonic() - started < 0.7


async def test_deadline_bounds_the_wait_for_a_rate_limit_slot(sim: Simulator) -> None:
    async with make_client(sim, max_requests_per_minute=20) as client:  # one per 3 s
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            await client.get_all_tasks(SPACE, page_size=100, deadline=0.5)
        assert time.monotonic() - started < 1.0
    assert info.value.tasks == 100  # page 1 went out at once; page 2 had to wait 3 s


async def test_deadline_bounds_the_wait_for_a_sibling_429_pause(sim: Simulator) -> None:
    sim.faults.append(Fault("429", page=7, retry_after="2"))
    async with make_client(sim) as client:
        sibling = asyncio.create_task(client.get_tasks(SPACE, page=7))
        await asyncio.sleep(0.1)  # the sibling's 429 has paused the whole client for 2 s
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await client.get_all_tasks(SPACE, page_size=100, deadline=0.5)
        assert time.monotonic() - started < 1.0
        await sibling
