"""Hardening, network faults: refused, reset, short bodies, stale keep-alive, slow peers, queues.

Everything runs over real loopback sockets: the simulator, or ``MiniServer``, a raw
``asyncio.start_server`` that writes exact bytes for what the simulator cannot do (a body
shorter than its Content-Length, a keep-alive socket closed while idle, a one-byte-a-second
trickle of headers). ``MiniServer`` and the helpers here are shared by the other
``test_hardening_*`` modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from unpod_async import APIConnectionError, APITimeoutError, UnpodClient, UnpodError
from unpod_async.testing import Fault, Simulator

from .helpers import ORG, SPACE, TOKEN, make_client

FAST = {"retry_delay": 0.001, "max_retry_delay": 0.01}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]  # what a middleware wraps


def client_for(url: str, token: str = TOKEN, **kwargs: Any) -> UnpodClient:
    """A client for a raw test server, with fast retries."""
    return UnpodClient(token, ORG, base_url=url, **{**FAST, **kwargs})


def http(
    status: int,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    content_type: str | None = "application/json",
    length: int | None = None,
    reason: str = "X",
) -> bytes:
    """One HTTP/1.1 response as exact bytes (``length`` overrides the Content-Length)."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    head = dict(headers or {})
    if "Transfer-Encoding" not in head:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.extend(f"{k}: {v}" for k, v in head.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 4096) -> bytes:
    """``body`` in HTTP/1.1 chunked transfer coding."""
    out = bytearray()
    for i in range(0, len(body), size):
        part = body[i : i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def rst(writer: asyncio.StreamWriter) -> None:
    """Tear the connection down with a RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def task_json(i: int) -> bytes:
    return b'{"_id":"%024x","task_id":"T%06d","status":"completed","input":{"n":%d}}' % (i, i, i)


# A responder writes one answer to a request. It gets the writer and the good page body, and
# returns whether the connection stays open for the next request.
Responder = Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]


@dataclass
class Rule:
    responder: Responder
    page: int | None
    times: int
    hits: int = 0


@dataclass
class Request:
    page: int | None
    size: int | None
    head: bytes
    at: float
    connection: int


@dataclass
class MiniServer:
    """A tiny tasks-list server on a raw socket, with scripted answers per page.

    ``tasks`` tasks (newest first, ``T000249`` ... ``T000000`` for 250), paged by the
    request's ``page``/``page_size``. Rules added with :meth:`on` replace the good answer of
    matching requests (first matching rule wins, ``times`` uses each).
    """

    tasks: int = 250
    count: int | None = None
    tls: ssl.SSLContext | None = None
    rules: list[Rule] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.items = [task_json(i) for i in range(self.tasks - 1, -1, -1)]

    def task_lines(self) -> list[bytes]:
        return list(self.items)

    def task_ids(self) -> list[str]:
        return [f"T{i:06d}" for i in range(self.tasks - 1, -1, -1)]

    def page_body(self, page: int, size: int) -> bytes:
        chunk = self.items[(page - 1) * size : page * size] if page >= 1 else []
        count = len(self.items) if self.count is None else self.count
        return b'{"count":%d,"status_code":200,"message":"ok","data":[%s]}' % (
            count,
            b",".join(chunk),
        )

    def on(self, responder: Responder, *, page: int | None = None, times: int = 1) -> Rule:
        rule = Rule(responder, page, times)
        self.rules.append(rule)
        return rule

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> MiniServer:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                target = head.split(b" ", 2)[1].decode()
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
                page = int(query["page"]) if query.get("page", "").isdigit() else None
                size = int(query["page_size"]) if query.get("page_size", "").isdigit() else None
                self.requests.append(
                    Request(page, size, head, asyncio.get_running_loop().time(), number)
                )
                good = http(200, self.page_body(page or 1, size or 50))
                for rule in self.rules:
                    if rule.times > 0 and (rule.page is None or rule.page == page):
                        rule.times -= 1
                        rule.hits += 1
                        keep = await rule.responder(writer, good)
                        break
                else:
                    writer.write(good)
                    await writer.drain()
                    keep = True
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def send(data: bytes, *, close: bool = True) -> Responder:
    """Answer with exactly ``data``, then close (FIN) unless ``close`` is False."""

    async def respond(writer: asyncio.StreamWriter, good: bytes) -> bool:
        writer.write(data)
        await writer.drain()
        return not close

    return respond


def reset() -> Responder:
    async def respond(writer: asyncio.StreamWriter, good: bytes) -> bool:
        rst(writer)
        return False

    return respond


def stall(seconds: float) -> Responder:
    async def respond(writer: asyncio.StreamWriter, good: bytes) -> bool:
        await asyncio.sleep(seconds)
        writer.write(good)
        await writer.drain()
        return True

    return respond


def trickle(data_of: Callable[[bytes], bytes], every: float = 1.0) -> Responder:
    """Send the answer one byte every ``every`` seconds (slow-loris)."""

    async def respond(writer: asyncio.StreamWriter, good: bytes) -> bool:
        for byte in data_of(good):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)
        return True

    return respond


def truncate(response: bytes) -> bytes:
    """A complete response head whose body stops halfway (Content-Length stays the full size)."""
    head, _, body = response.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n" + body[: len(body) // 2]


def short_body() -> Responder:
    """The good answer cut in half, then FIN: fewer bytes than the Content-Length said."""

    async def respond(writer: asyncio.StreamWriter, good: bytes) -> bool:
        writer.write(truncate(good))
        await writer.drain()
        return False

    return respond


@contextlib.asynccontextmanager
async def serve_wrapped(
    *middlewares: Any, tasks: int = 1000, **kwargs: Any
) -> AsyncIterator[Simulator]:
    """The simulator with aiohttp middlewares in front of it (added before it starts)."""
    sim = Simulator(tasks, token=TOKEN, org_handle=ORG, space_token=SPACE, **kwargs)
    sim.app.middlewares.extend(middlewares)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


# --------------------------------------------------------------------------- queueing


async def test_64_queued_requests_never_time_out_waiting_for_the_pool() -> None:
    """64 requests through 4 slots: the per-attempt timeout starts when a request is sent.

    Each request takes ~0.08 s, the timeout is 0.5 s (room for a loaded machine), and the
    queue is 1.3 s long: a timer that started while a request waited for a pool slot would
    time most of them out.
    """
    in_flight = peak = 0

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    async with (
        serve_wrapped(count, latency=0.08) as sim,
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
    assert peak <= 4
    assert elapsed > 64 / 4 * 0.08  # they really did queue


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
