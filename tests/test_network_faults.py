"""Network faults: a refused connection, resets, short bodies, stale keep-alive, slow peers.

A reset before the headers or mid-body, a body shorter than its Content-Length, a server that
is silent, stalls or sends one byte a second: each is retried until the pull completes, or
ends, after the retries, in a typed ``UnpodError`` (``APIConnectionError``,
``APITimeoutError``), never a bare aiohttp one; a pooled keep-alive socket the server closed
costs no retry at all. Broken HTTP framing (a huge header line, a bad chunk size, two
Content-Lengths) is with the other bad answers in ``test_response_bodies.py``.

Everything runs over real loopback sockets: the simulator, or ``MiniServer`` (``helpers.py``),
which writes exact bytes for what the simulator cannot do.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from unpod_async import APIConnectionError, APITimeoutError, UnpodError
from unpod_async.testing import Fault, Simulator

from .helpers import (
    SPACE,
    MiniServer,
    client_for,
    free_port,
    make_client,
    reset,
    rst,
    short_body,
    stall,
    trickle,
    truncate,
)

# --------------------------------------------------------------------------- refused


async def test_connection_refused_is_a_typed_error_and_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    async with client_for(url, max_retries=2) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_tasks(SPACE)
    assert type(info.value) is APIConnectionError  # not a timeout
    assert "cannot connect to 127.0.0.1" in str(info.value)
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------- resets


async def test_reset_before_headers_is_retried_until_success(sim: Simulator) -> None:
    sim.faults.append(Fault("reset", page=2, times=2))
    async with make_client(sim) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert [t.task_id for t in tasks] == sim.task_ids()
    assert sum(r.fault == "reset" for r in sim.requests) >= 2


async def test_reset_before_headers_every_time_is_a_connection_error() -> None:
    async with MiniServer() as server:
        server.on(reset(), times=1000)
        async with client_for(server.url, max_retries=2) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.get_tasks(SPACE)
    assert not isinstance(info.value, APITimeoutError)
    assert len(server.requests) >= 3  # the first attempt and two retries


async def test_reset_mid_body_is_retried_until_success(sim: Simulator) -> None:
    sim.faults.append(Fault("reset_mid_body", page=3, times=2))
    async with make_client(sim) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert [t.task_id for t in tasks] == sim.task_ids()


async def test_reset_mid_body_every_time_is_a_connection_error() -> None:
    async with MiniServer() as server:

        async def half_then_rst(writer: asyncio.StreamWriter, good: bytes) -> bool:
            writer.write(truncate(good))
            await writer.drain()
            await asyncio.sleep(0.01)
            rst(writer)
            return False

        server.on(half_then_rst, times=1000)
        async with client_for(server.url, max_retries=2) as client:
            with pytest.raises(APIConnectionError):
                await client.get_tasks(SPACE)
    assert len(server.requests) >= 3


# --------------------------------------------------------------------------- short bodies


async def test_body_shorter_than_content_length_is_a_connection_error() -> None:
    async with MiniServer() as server:
        server.on(short_body(), times=1000)
        async with client_for(server.url, max_retries=1) as client:
            with pytest.raises(APIConnectionError, match=r"cut short|closed"):
                await client.get_tasks(SPACE)
    assert len(server.requests) == 2


async def test_body_shorter_than_content_length_is_retried_until_success() -> None:
    async with MiniServer() as server:
        server.on(short_body(), page=2, times=2)
        async with client_for(server.url) as client:
            tasks = await client.get_all_tasks(SPACE, page_size=50)
    assert [t.task_id for t in tasks] == server.task_ids()
    assert [r.page for r in server.requests].count(2) == 3


# --------------------------------------------------------------------------- keep-alive


async def test_stale_keepalive_closed_while_idle_is_not_an_error() -> None:
    """The server closes an idle keep-alive socket between two requests (its idle timeout)."""

    async def answer_then_close_when_idle(writer: asyncio.StreamWriter, good: bytes) -> bool:
        writer.write(good)  # keep-alive: no Connection: close
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # FIN while the client holds the socket in its pool
        return False

    async with MiniServer() as server:
        server.on(answer_then_close_when_idle, times=1000)
        # No retries at all: the dead pooled socket must not cost an attempt.
        async with client_for(server.url, max_retries=0) as client:
            first = await client.get_tasks(SPACE, page=1)
            await asyncio.sleep(0.2)
            second = await client.get_tasks(SPACE, page=2)
    assert first.data
    assert second.data
    assert server.connections == 2


async def test_stale_keepalive_closed_as_the_request_arrives_is_retried() -> None:
    """The race: the server drops a reused socket just as the next request reaches it."""
    answered: set[int] = set()

    async with MiniServer() as server:

        async def once_per_connection(writer: asyncio.StreamWriter, good: bytes) -> bool:
            connection = server.requests[-1].connection
            if connection in answered:
                writer.close()  # a second request on this socket: close without answering
                return False
            answered.add(connection)
            writer.write(good)
            await writer.drain()
            return True

        server.on(once_per_connection, times=1000)
        async with client_for(server.url, concurrency=1) as client:
            tasks = await client.get_all_tasks(SPACE, page_size=50)
    assert [t.task_id for t in tasks] == server.task_ids()
    reused = [r for r in server.requests if r.connection in answered and r.page != 1]
    assert len(server.requests) > server.connections  # the race really happened
    assert reused


# --------------------------------------------------------------------------- slow peers


async def test_slow_headers_time_out_per_attempt() -> None:
    async with MiniServer() as server:
        server.on(stall(30), times=1000)
        async with client_for(server.url, timeout=0.3, max_retries=1) as client:
            started = time.monotonic()
            with pytest.raises(APITimeoutError, match=r"0\.3s"):
                await client.get_tasks(SPACE)
            elapsed = time.monotonic() - started
    assert 0.55 < elapsed < 1.2  # two attempts of 0.3 s
    assert len(server.requests) == 2


async def test_stalled_page_is_retried_then_succeeds(sim: Simulator) -> None:
    sim.faults.append(Fault("stall", page=2, delay=30))
    async with make_client(sim, timeout=0.3) as client:
        started = time.monotonic()
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert [t.task_id for t in tasks] == sim.task_ids()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("what", "retries"), [("body", 0), ("headers", 0), ("body", 2)])
async def test_slow_loris_trickle_hits_the_per_attempt_timeout(what: str, retries: int) -> None:
    """One byte a second: each attempt must end at ``timeout``, not when the trickle ends."""

    async with MiniServer() as server:
        if what == "body":

            async def head_then_trickle(writer: asyncio.StreamWriter, good: bytes) -> bool:
                head, _, body = good.partition(b"\r\n\r\n")
                writer.write(head + b"\r\n\r\n")
                await writer.drain()
                return await trickle(lambda _: body)(writer, good)

            server.on(head_then_trickle, times=1000)
        else:
            server.on(trickle(lambda good: good), times=1000)  # head and all
        async with client_for(server.url, timeout=0.5, max_retries=retries) as client:
            started = time.monotonic()
            with pytest.raises(APITimeoutError):
                await client.get_tasks(SPACE)
            elapsed = time.monotonic() - started
    attempts = retries + 1
    assert 0.5 * attempts - 0.05 < elapsed < 0.5 * attempts + 0.5
    assert len(server.requests) == attempts


# --------------------------------------------------------------------------- all of them


async def test_errors_are_all_unpod_errors() -> None:
    """Every network failure above surfaces as an UnpodError, never a bare aiohttp one."""
    async with MiniServer() as server:
        server.on(reset(), times=2)  # aiohttp itself silently retries a reset GET once
        server.on(short_body(), times=1)
        server.on(stall(30), times=1)
        async with client_for(server.url, max_retries=0, timeout=0.2) as client:
            for _ in range(3):
                with pytest.raises(UnpodError):
                    await client.get_tasks(SPACE)
