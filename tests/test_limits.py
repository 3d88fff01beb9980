"""How hard the client presses on the server: the in-flight bound, the shared 429 pause, the
request rate, and adaptive concurrency (AIMD).

- ``concurrency`` bounds the requests in flight across every call of a client (the admission
  gate), and a request's timeout starts when it is sent, not while it waits for a slot;
- a 429 (or a backoff) pauses every request of the client, also those waiting for a rate slot;
- ``max_requests_per_minute`` spreads requests so that a server's rate limit is never hit;
- ``adaptive_concurrency=True`` halves the bound on overload and creeps back on success.

Timing is measured where it matters, on the server: a ``Recorder`` (``helpers.py``) in front
of the simulator stamps each request's arrival with the event loop's clock.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import time
from collections import deque
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from unpod_async import RateLimitError
from unpod_async.testing import Fault

from .helpers import SPACE, Handler, ids, make_client, serve_recorded

# --------------------------------------------------------------------------- in-flight bound


async def test_concurrency_bounds_the_whole_client_across_calls() -> None:
    async with (
        serve_recorded(600, latency=0.01) as (sim, tracer),
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
        serve_recorded(200, latency=0.01) as (sim, tracer),
        make_client(sim, concurrency=2) as client,
    ):
        pages = await asyncio.gather(
            *(client.get_tasks(SPACE, page=p, page_size=10) for p in range(1, 11))
        )
    assert [t for page in pages for t in ids(page.data)] == sim.task_ids()[:100]
    assert tracer.peak == 2


async def test_64_queued_requests_never_time_out_waiting_for_the_pool() -> None:
    """64 requests through 4 slots: the per-attempt timeout starts when a request is sent.

    Each request takes ~0.08 s, the timeout is 0.5 s (room for a loaded machine), and the
    queue is 1.3 s long: a timer that started while a request waited for a pool slot would
    time most of them out.
    """
    async with (
        serve_recorded(latency=0.08) as (sim, server),
        make_client(sim, concurrency=4, timeout=0.5, max_retries=0) as client,
    ):
        started = time.monotonic()
        pages = await asyncio.gather(
            *(client.get_tasks(SPACE, page=1 + i % 10, page_size=100) for i in range(64))
        )
        elapsed = time.monotonic() - started
        assert client._gate.peak_in_flight <= 4
    assert all(len(page.data) == 100 for page in pages)
    assert len(sim.requests) == 64  # no retries: max_retries=0, and none was needed
    assert server.peak <= 4
    assert elapsed > 64 / 4 * 0.08  # they really did queue


# --------------------------------------------------------------------------- the shared 429 pause


@pytest.mark.parametrize("retry_after", ["0.4", None])
async def test_a_429_pauses_every_request_of_the_client(retry_after: str | None) -> None:
    # Independent calls sharing one client (not one pull, whose in-order window would stall
    # on the limited page anyway): none of them may start a request during the pause.
    pause = 0.4
    async with serve_recorded(1000, latency=0.02) as (sim, tracer):
        sim.faults.append(Fault("429", page=6, retry_after=retry_after))
        options = {} if retry_after else {"retry_delay": pause, "max_retry_delay": pause}
        async with make_client(sim, concurrency=4, **options) as client:
            pages = await asyncio.gather(
                *(client.get_tasks(SPACE, page=p, page_size=10) for p in range(1, 61))
            )
    assert [t.task_id for page in pages for t in page.data] == sim.task_ids()[:600]
    limited = next(h for h in tracer.hits if h.page == 6)
    t0 = limited.end
    # A request already on its way when the 429 came back may land within a few ms.
    during = [h.page for h in tracer.hits if t0 + 0.05 <= h.start < t0 + pause / 2]
    assert during == []
    assert len([h for h in tracer.hits if h.start >= t0 + pause / 2]) > 10
    if retry_after:
        retry = [h for h in tracer.hits if h.page == 6][1]
        assert retry.start >= t0 + pause - 1e-3
        during = [h.page for h in tracer.hits if t0 + 0.05 <= h.start < t0 + pause - 1e-3]
        assert during == []


async def test_429_pause_holds_every_concurrent_request_of_the_client() -> None:
    """One request's 429 holds all the others: none reaches the server before it expires."""
    async with serve_recorded() as (sim, timeline):
        sim.faults.append(Fault("429", page=1, retry_after="0.5"))
        async with make_client(sim, concurrency=8) as client:
            throttled = asyncio.create_task(client.get_tasks(SPACE, page=1))
            while not timeline.hits or timeline.hits[0].status is None:
                await asyncio.sleep(0.005)
            got_429 = timeline.hits[0].start
            await asyncio.sleep(0.05)  # the 429 has been read: the pause is on
            others = [client.get_tasks(SPACE, page=p) for p in range(2, 10)]
            pages = await asyncio.gather(throttled, *others)
    assert all(len(p.data) == 20 for p in pages)
    later = [hit.start for hit in timeline.hits[1:]]
    assert len(later) == 9  # the throttled retry and the eight others
    assert min(later) >= got_429 + 0.49, [round(at - got_429, 3) for at in later]


async def test_429_pause_also_holds_requests_waiting_for_their_rate_slot() -> None:
    async with serve_recorded() as (sim, timeline):
        sim.faults.append(Fault("429", page=1, retry_after="0.5"))
        async with make_client(sim, concurrency=8, max_requests_per_minute=600) as client:
            # Sent 0.1 s apart; page 1's 429 at once pauses the client for 0.5 s.
            await asyncio.gather(*(client.get_tasks(SPACE, page=p) for p in range(1, 9)))
    limited = next(hit for hit in timeline.hits if hit.status == 429)
    later = [round(hit.start - limited.start, 3) for hit in timeline.hits if hit is not limited]
    assert min(later) >= 0.49, later


# --------------------------------------------------------------------------- request rate


def sliding_window_limit(limit: int, window: float) -> tuple[Any, list[float]]:
    """A middleware answering 429 past ``limit`` requests in any ``window`` seconds.

    The window is 10% shorter than nominal, a tolerance for scheduling jitter on a busy CI
    machine: a client spacing its requests ``window / limit`` apart never hits it, while a
    burst does.
    """
    accepted: deque[float] = deque()
    rejected: list[float] = []
    span = window * 0.9

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if "/tasks/" not in request.path:
            return await handler(request)
        now = asyncio.get_running_loop().time()
        while accepted and accepted[0] <= now - span:
            accepted.popleft()
        if len(accepted) >= limit:
            rejected.append(now)
            return web.json_response(
                {"message": "Request was throttled.", "status_code": 429},
                status=429,
                headers={"Retry-After": "1"},
            )
        accepted.append(now)
        return await handler(request)

    return middleware, rejected


async def test_max_requests_per_minute_spreads_a_bulk_pull_without_a_429() -> None:
    """10 requests a (scaled) minute of 1 s: 600/minute. Two pulls share the budget."""
    limit, window = 10, 1.0
    per_minute = limit * 60 / window
    limiter, rejected = sliding_window_limit(limit, window)
    async with serve_recorded(middlewares=[limiter]) as (sim, timeline):
        # Without the client-side limit, the same pull bursts into the server's limit.
        async with make_client(sim, max_retries=0) as client:
            with pytest.raises(RateLimitError):
                await asyncio.gather(
                    client.get_all_tasks(SPACE, page_size=100),
                    client.get_all_tasks(SPACE, page_size=100),
                )
        await asyncio.sleep(window)
        rejected.clear()
        timeline.hits.clear()
        # Client and server share this loop: a collection of the garbage earlier tests left
        # would stall both and let two spaced sends reach the handler back to back.
        gc.collect()
        gc.disable()
        try:
            async with make_client(
                sim, max_requests_per_minute=per_minute, max_retries=0
            ) as client:
                started = time.monotonic()
                a, b = await asyncio.gather(
                    client.get_all_tasks(SPACE, page_size=100),
                    client.get_all_tasks(SPACE, page_size=100),
                )
                elapsed = time.monotonic() - started
        finally:
            gc.enable()
    assert rejected == []
    assert [t.task_id for t in a] == [t.task_id for t in b] == sim.task_ids()
    arrivals = timeline.arrivals()
    assert len(arrivals) == 22
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    interval = 60 / per_minute
    assert min(gaps) >= 0.5 * interval  # evenly spread: no burst (jitter allowed for)
    assert elapsed >= 21 * interval * 0.95


# --------------------------------------------------------------------------- AIMD


@pytest.mark.parametrize("kind", ["429", "503"])
async def test_an_overload_burst_halves_the_bound_and_successes_restore_it(kind: str) -> None:
    samples: list[tuple[int, int]] = []
    box: list[Any] = []
    async with serve_recorded(middlewares=[overloaded_server(10**6, samples, box)]) as (sim, _):
        fault = Fault("429", retry_after="0") if kind == "429" else Fault("status", status=503)
        sim.faults.append(replace(fault, times=8))
        async with make_client(sim, concurrency=8, adaptive_concurrency=True) as client:
            box.append(client)
            await asyncio.gather(*(client.get_tasks(SPACE, page=p) for p in range(1, 9)))
            assert client._gate.limit <= 4  # halved (at least once) by the burst
            await client.get_all_tasks(SPACE, page_size=10)  # ~100 clean answers
            assert client._gate.limit == 8  # crept back up to the bound, not above
    assert max(limit for limit, _ in samples) <= 8


async def test_the_bound_does_not_adapt_unless_asked() -> None:
    async with serve_recorded(middlewares=[overloaded_server(10**6, [], [])]) as (sim, _):
        sim.faults.append(Fault("status", status=503, times=8))
        async with make_client(sim, concurrency=8) as client:
            await asyncio.gather(*(client.get_tasks(SPACE, page=p) for p in range(1, 9)))
            assert client._gate.limit == 8  # stray 503s do not throttle a default client


def overloaded_server(capacity: int, samples: list[tuple[int, int]], client_box: list[Any]) -> Any:
    """503 whenever ``capacity`` tasks requests are already in flight; samples the client's
    in-flight bound at each arrival."""
    in_flight = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if "/tasks/" not in request.path:
            return await handler(request)
        limit = client_box[0]._gate.limit if client_box else 0
        if in_flight >= capacity:
            samples.append((limit, 503))
            return web.Response(status=503, text="<h1>busy</h1>", content_type="text/html")
        in_flight += 1
        try:
            response = await handler(request)
        finally:
            in_flight -= 1
        samples.append((limit, response.status))
        return response

    return middleware


async def _overload_run(adaptive: bool) -> list[tuple[int, int]]:
    samples: list[tuple[int, int]] = []
    box: list[Any] = []
    server = overloaded_server(4, samples, box)
    async with (
        serve_recorded(2000, middlewares=[server], latency=0.01) as (sim, _),
        # Without AIMD, 16 requests in flight against a capacity of 4 answer 503 most of the
        # time: retries enough that the baseline run finishes (its 503 rate is what counts).
        make_client(sim, concurrency=16, adaptive_concurrency=adaptive, max_retries=1000) as client,
    ):
        box.append(client)
        tasks = await client.get_all_tasks(SPACE, page_size=10)
        assert client._gate.limit <= 16
    assert [t.task_id for t in tasks] == sim.task_ids()
    return samples


async def test_aimd_converges_on_a_server_with_less_capacity_than_concurrency() -> None:
    samples = await _overload_run(adaptive=True)
    limits = [limit for limit, _ in samples]
    assert max(limits) <= 16
    late = samples[len(samples) // 2 :]
    late_503 = sum(status == 503 for _, status in late) / len(late)
    late_limit = statistics.mean(limit for limit, _ in late)
    assert 1.5 <= late_limit <= 8, late_limit  # hovers near the capacity of 4
    assert late_503 < 0.2, late_503  # overload has become rare

    fixed = await _overload_run(adaptive=False)
    fixed_503 = sum(status == 503 for _, status in fixed) / len(fixed)
    assert fixed_503 > 2 * late_503


# --------------------------------------------------------------------------- cancellation


async def test_cancelling_random_waiters_under_load_keeps_the_gate_whole() -> None:
    """Waiters cancelled at random moments, some in the very step a slot is released (the
    case that once raised ``ValueError: <Future cancelled> is not in deque``): every cancel
    surfaces as CancelledError, and the gate's count comes back to zero."""
    import random

    from unpod_async._limits import Gate

    rng = random.Random(11)
    gate = Gate(4)
    served = 0

    async def user() -> None:
        nonlocal served
        await gate.acquire(ahead=rng.random() < 0.3)
        try:
            await asyncio.sleep(rng.random() * 0.001)
            served += 1
        finally:
            gate.release(overloaded=False, answered=True)

    for _ in range(30):
        for _ in range(4):  # this test holds every slot: the users queue
            await gate.acquire()
        jobs = [asyncio.create_task(user()) for _ in range(30)]
        await asyncio.sleep(0)
        for _ in range(4):
            rng.choice(jobs).cancel()  # cancelled while queued...
            gate.release(overloaded=False, answered=True)  # ...and a slot freed at once
            await asyncio.sleep(rng.random() * 0.001)
        results = await asyncio.gather(*jobs, return_exceptions=True)
        unexpected = [
            r for r in results if r is not None and not isinstance(r, asyncio.CancelledError)
        ]
        assert unexpected == []
        assert gate.in_flight == 0
        assert not gate._waiters
    assert served > 0
    # Still whole: four at a time, no more.
    peak = 0

    async def probe() -> None:
        nonlocal peak
        await gate.acquire()
        peak = max(peak, gate.in_flight)
        await asyncio.sleep(0.001)
        gate.release(overloaded=False, answered=True)

    await asyncio.gather(*(probe() for _ in range(20)))
    assert peak == 4
