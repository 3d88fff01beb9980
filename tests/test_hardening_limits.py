"""Hardening, limits: Retry-After, the shared 429 pause, deadlines, request rate and AIMD.

Timing is measured where it matters, on the server: a ``Recorder`` middleware in front of the
simulator stamps each request's arrival with the event loop's clock.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import deque
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from unpod_async import (
    APITimeoutError,
    DeadlineExceededError,
    RateLimitError,
    ServerError,
    UnpodError,
)
from unpod_async._retry import parse_retry_after
from unpod_async.testing import Fault, Simulator

from .helpers import SPACE, Handler, MiniServer, client_for, http, make_client, send, serve_recorded

# --------------------------------------------------------------------------- Retry-After


async def test_retry_after_seconds_is_honoured() -> None:
    async with serve_recorded() as (sim, timeline):
        sim.faults.append(Fault("429", page=1, retry_after="0.4"))
        async with make_client(sim) as client:
            started = time.monotonic()
            page = await client.get_tasks(SPACE)
            elapsed = time.monotonic() - started
    assert len(page.data) == 20
    first, second = timeline.arrivals(1)
    assert second - first >= 0.39
    assert 0.39 <= elapsed < 1.0


async def test_retry_after_http_date_is_honoured() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    async with serve_recorded() as (sim, timeline):
        sim.faults.append(Fault("429", page=1, retry_after=format_datetime(when, usegmt=True)))
        async with make_client(sim) as client:
            await client.get_tasks(SPACE)
    first, second = timeline.arrivals(1)
    assert 0.9 <= second - first < 2.5  # the date has whole-second resolution


def test_retry_after_parsing_table() -> None:
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 30, timezone.utc), usegmt=True)
    past = format_datetime(datetime.fromtimestamp(now - 30, timezone.utc), usegmt=True)
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after(date, now=now) == 30
    assert parse_retry_after(past, now=now) == 0
    for junk in ("-1", "soon", "nan", "NaN", "inf", "-inf", "1e400", "", "   ", "Mon, 99 Foo"):
        assert parse_retry_after(junk, now=now) is None, junk
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "value",
    ["-5", "soon", "nan", "inf", "-inf", "1e400", "", "Tue, 31 Feb 2026 99:00:00 GMT"],
)
async def test_unusable_retry_after_falls_back_to_backoff(value: str) -> None:
    """Garbage never means "wait forever" nor a crash: the client's own short backoff."""
    async with serve_recorded() as (sim, _):
        sim.faults.append(Fault("429", page=1, retry_after=value, times=2))
        async with make_client(sim) as client:
            started = time.monotonic()
            page = await client.get_tasks(SPACE)
            assert time.monotonic() - started < 0.5
        assert len(page.data) == 20
        sim.faults.append(Fault("429", page=1, retry_after=value, times=100))
        async with make_client(sim, max_retries=1) as client:
            with pytest.raises(RateLimitError) as info:
                await client.get_tasks(SPACE)
    assert info.value.retry_after is None
    assert info.value.status_code == 429


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("100000", "100000s"),
        ("99999999999999999999", "1e+20s"),
        ("Fri, 01 Jan 2100 00:00:00 GMT", "e+09s"),
    ],
)
async def test_huge_retry_after_fails_at_once_saying_how_long(value: str, said: str) -> None:
    async with serve_recorded() as (sim, _):
        sim.faults.append(Fault("429", page=1, retry_after=value, times=100))
        async with make_client(sim, max_retries=5) as client:
            started = time.monotonic()
            with pytest.raises(RateLimitError) as info:
                await client.get_tasks(SPACE)
            assert time.monotonic() - started < 0.5
    assert len(sim.requests) == 1  # not retried
    message = str(info.value)
    assert said in message
    assert "max_retry_after=120s" in message
    assert info.value.retry_after is not None
    assert info.value.retry_after > 120


async def test_huge_retry_after_on_a_503_fails_at_once_too() -> None:
    async with MiniServer() as server:
        server.on(
            send(
                http(
                    503,
                    b"<h1>down</h1>",
                    content_type="text/html",
                    headers={"Retry-After": "86400"},
                ),
                close=False,
            ),
            times=1000,
        )
        async with client_for(server.url, max_retries=5) as client:
            with pytest.raises(ServerError, match="86400s") as info:
                await client.get_tasks(SPACE)
    assert info.value.retry_after == 86400
    assert len(server.requests) == 1


async def test_retry_after_above_a_custom_max_fails_at_once() -> None:
    async with serve_recorded() as (sim, _):
        sim.faults.append(Fault("429", page=1, retry_after="0.5", times=100))
        async with make_client(sim, max_retry_after=0.2) as client:
            with pytest.raises(
                RateLimitError, match=r"wait 0\.5s, more than max_retry_after=0\.2s"
            ):
                await client.get_tasks(SPACE)
    assert len(sim.requests) == 1


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


# --------------------------------------------------------------------------- deadlines


async def test_deadline_bounds_iter_tasks() -> None:
    async with serve_recorded(latency=0.05) as (sim, _), make_client(sim, concurrency=2) as client:
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


async def test_deadline_bounds_get_all_tasks() -> None:
    async with serve_recorded(latency=0.05) as (sim, _), make_client(sim, concurrency=2) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            await client.get_all_tasks(SPACE, page_size=10, deadline=0.4)
        elapsed = time.monotonic() - started
    assert 0.35 < elapsed < 0.7
    assert info.value.pages > 0
    assert info.value.tasks > 0


async def test_deadline_bounds_export_and_leaves_the_destination(tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(b"previous export\n")
    async with serve_recorded(latency=0.05) as (sim, _), make_client(sim, concurrency=2) as client:
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
        async with make_client(sim, max_requests_per_minute=per_minute, max_retries=0) as client:
            started = time.monotonic()
            a, b = await asyncio.gather(
                client.get_all_tasks(SPACE, page_size=100),
                client.get_all_tasks(SPACE, page_size=100),
            )
            elapsed = time.monotonic() - started
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
        make_client(sim, concurrency=16, adaptive_concurrency=adaptive, max_retries=50) as client,
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
