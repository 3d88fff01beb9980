"""Plain helpers shared by the tests (fixtures live in ``conftest.py``).

Test modules import from here, never from one another:

- constants and clients: ``TOKEN``/``ORG``/``SPACE``, ``make_client`` (for the simulator),
  ``client_for`` (for any URL), both with fast retries;
- small checks and tools: ``ids`` (task ids in order), ``exception_chain``,
  ``assert_clean_chain`` (no aiohttp or tenacity error reaches the caller), ``leftovers``
  (hidden files an export left), ``free_port`` (a port nothing listens on), ``run_python``
  (a child process without the shell's ``UNPOD_*``);
- the command line: ``child_env`` (this environment less the shell's ``UNPOD_*``, plus a
  simulator's token, org and base URL), ``cli_env`` (that, plus no colours, unbuffered output
  and 200 columns), ``run_here`` (``cli.main`` in this process, in a thread);
- the simulator over plain aiohttp (with the ``session`` fixture): ``AUTH``, ``tasks_url``,
  ``get_json`` (status and decoded body), ``docs`` (the simulator's tasks as JSON documents);
- ``Live``, a space that changes while it is paged (tasks arriving and going, answers delayed
  at random), with its ``check`` of a pull;
- the simulator with a :class:`Recorder` in front (``serve_recorded``, or ``threaded_serve``
  on a loop of its own): every request's page, page size, arrival, end and status, and the
  peak number in flight;
- other servers on loopback: ``tasks_server`` (one aiohttp route), and ``MiniServer``, a raw
  ``asyncio.start_server`` that writes exact bytes for what the simulator cannot do (a body
  shorter than its Content-Length, a keep-alive socket closed while idle, a one-byte-a-second
  trickle of headers), with its response builders (``http``, ``chunked``, ``send``,
  ``answer``, ``reset``, ``stall``, ``trickle``, ``short_body``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
import tenacity
from aiohttp import web

from unpod_async import UnpodClient
from unpod_async.testing import Simulator

TOKEN = "test-token"
ORG = "demo-org"
SPACE = "space-demo"
FAST: dict[str, Any] = {"retry_delay": 0.001, "max_retry_delay": 0.01}  # no sleeping for backoff
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]  # what a middleware wraps


def make_client(sim: Simulator, **kwargs: Any) -> UnpodClient:
    """A client for ``sim`` with fast retries."""
    return UnpodClient(TOKEN, ORG, base_url=sim.base_url, **{**FAST, **kwargs})


def client_for(url: str, token: str = TOKEN, **kwargs: Any) -> UnpodClient:
    """A client for a raw test server, with fast retries."""
    return UnpodClient(token, ORG, base_url=url, **{**FAST, **kwargs})


@contextlib.asynccontextmanager
async def tasks_server(
    handler: Handler, *, path: str = "/api/v2/platform/spaces/{space}/tasks/"
) -> AsyncIterator[str]:
    """A one-route server on loopback answering GET ``path`` (the tasks list unless told) with
    ``handler``; its base URL.

    For shapes the simulator does not produce (pretty-printed JSON, tasks with no id at all).
    """
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def ids(tasks: Iterable[Any]) -> list[str | None]:
    """The ``task_id`` of each task, in order."""
    return [t.task_id for t in tasks]


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` / ``__context__`` (and the
    members of an exception group)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
        group = getattr(e, "exceptions", ())
        if isinstance(group, tuple | list):
            todo += [member for member in group if isinstance(member, BaseException)]
    return seen


def assert_clean_chain(exc: BaseException) -> None:
    """Neither aiohttp nor tenacity reaches the caller, not even as a cause or context."""
    for e in exception_chain(exc):
        assert not type(e).__module__.startswith(("aiohttp", "tenacity")), repr(e)
        assert not isinstance(e, aiohttp.ClientError | tenacity.RetryError), repr(e)


def leftovers(directory: Path) -> list[str]:
    """The hidden files in ``directory``: an export's temporary file, partial file, checkpoint."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


async def run_python(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """``python *args`` in a child process: its exit code, stdout and stderr.

    The child gets this environment less any ``UNPOD_*`` variable (from a developer's shell),
    plus ``env``.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(None, **(env or {})),
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


def free_port() -> int:
    """A loopback port nothing listens on (a connection to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the command line


def child_env(sim: Simulator | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child (or of ``run_here``): this one less any ``UNPOD_*`` variable
    (from a developer's shell), plus ``sim``'s token, org and base URL if given, plus ``extra``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNPOD_")}
    if sim is not None:
        env.update(
            UNPOD_API_TOKEN=sim.token, UNPOD_ORG_HANDLE=sim.org_handle, UNPOD_BASE_URL=sim.base_url
        )
    env.update(extra)
    return env


def cli_env(sim: Simulator | None = None, **extra: str) -> dict[str, str]:
    """:func:`child_env` with no rich colours, unbuffered output and 200 columns (``extra``
    still wins)."""
    return child_env(sim, **{"PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "200", **extra})


async def run_here(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``main(args)`` in this process (in a thread: the simulator keeps this loop), with
    exactly ``env`` as the environment: quicker than a subprocess where exit codes and output
    are all a test looks at."""
    from unpod_async import cli  # here: only the tests of the command line import it

    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = await asyncio.to_thread(cli.main, list(args))
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- the simulator's API

AUTH = {"Authorization": f"Token {TOKEN}"}  # the simulator's default token


def tasks_url(sim: Simulator, space: str | None = None) -> str:
    """The tasks list of ``space`` (the simulator's own space unless told)."""
    return f"{sim.base_url}/api/v2/platform/spaces/{space or sim.space_token}/tasks/"


async def get_json(
    session: aiohttp.ClientSession, url: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    """GET ``url`` with ``params``: the status and the decoded body."""
    async with session.get(url, params=params) as resp:
        return resp.status, json.loads(await resp.read())


def docs(sim: Simulator) -> list[dict[str, Any]]:
    """The simulator's tasks, newest first, as the JSON documents it serves."""
    return [json.loads(raw) for raw in sim.tasks_json()]


# --------------------------------------------------------------------------- a live space


class Live:
    """Changes the space as it is paged: a task arrives every ``arrive`` requests, one at a
    random place goes every ``delete``; ``jitter`` seconds at most before each is served.

    The place of a delete is drawn from the whole space, or from its first ``delete_within``
    tasks (near the head) if given.
    """

    def __init__(
        self,
        sim: Simulator,
        seed: int,
        arrive: int,
        delete: int,
        jitter: float,
        *,
        delete_within: int | None = None,
    ):
        self.original = sim.task_ids()
        self.deleted: set[str] = set()
        self.arrived: set[str] = set()
        self.requests = 0
        self._rng = random.Random(seed)
        self._arrive, self._delete, self._jitter = arrive, delete, jitter
        self._delete_within = delete_within
        sim.on_request = self

    async def __call__(self, page: int, sim: Simulator) -> None:
        if self._jitter:
            await asyncio.sleep(self._rng.random() * self._jitter)
        self.requests += 1
        if self._arrive and self.requests % self._arrive == 0:
            self.arrived.update(sim.insert(1))
        if self._delete and self.requests % self._delete == 0:
            at = self._rng.randrange(
                len(sim) if self._delete_within is None else self._delete_within
            )
            self.deleted.update(sim.delete(1, at=at))

    def check(self, got: list[str]) -> None:
        counts = Counter(got)
        assert [k for k, n in counts.items() if n > 1] == []  # nothing twice
        survivors = [k for k in self.original if k not in self.deleted]
        assert [k for k in survivors if k not in counts] == []  # nothing that stayed is lost
        assert set(counts) <= set(self.original) | self.arrived


# --------------------------------------------------------------------------- recording requests


@dataclass
class Hit:
    """One request as the server saw it."""

    page: int | None
    page_size: int | None
    start: float  # arrival, on the server's event-loop clock
    wall: float  # arrival, on the wall clock (``time.time()``: what an HTTP date is read with)
    end: float | None = None  # when the server's handler was done with it
    status: int | None = None  # the status answered (None: no answer, e.g. a reset)


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


@dataclass
class Recorder:
    """An aiohttp middleware that records every request the server sees, and the peak in flight."""

    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    def pages(self) -> list[int | None]:
        return [h.page for h in self.hits]

    @property
    def max_page(self) -> int:
        return max((h.page or 0 for h in self.hits), default=0)

    def arrivals(self, page: int | None = None) -> list[float]:
        """Arrival times (event-loop clock), oldest first, of every request or those of ``page``."""
        return sorted(h.start for h in self.hits if page is None or h.page == page)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        query = request.query
        hit = Hit(_int(query.get("page")), _int(query.get("page_size")), loop.time(), time.time())
        self.hits.append(hit)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            response = await handler(request)
            hit.status = response.status
            return response
        finally:
            self.in_flight -= 1
            hit.end = loop.time()


@contextlib.asynccontextmanager
async def serve_recorded(
    tasks: int = 1000, *, middlewares: Sequence[Any] = (), **kwargs: Any
) -> AsyncIterator[tuple[Simulator, Recorder]]:
    """The simulator, behind ``middlewares`` (outermost first) and then a :class:`Recorder`."""
    sim = Simulator(tasks, token=TOKEN, org_handle=ORG, space_token=SPACE, **kwargs)
    recorder = Recorder()
    sim.app.middlewares.extend([*middlewares, recorder.middleware])
    await sim.start()
    try:
        yield sim, recorder
    finally:
        await sim.close()


@contextlib.contextmanager
def threaded_serve(tasks: int = 1000, **kwargs: Any) -> Iterator[tuple[Simulator, Recorder]]:
    """:func:`serve_recorded`, but the simulator runs on its own event loop in a thread.

    The test's loop then holds only the client's tasks, so ``asyncio.all_tasks()`` shows
    exactly what the client left behind.
    """
    sim = Simulator(tasks, token=TOKEN, org_handle=ORG, space_token=SPACE, **kwargs)
    recorder = Recorder()
    sim.app.middlewares.append(recorder.middleware)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="simulator", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(sim.start(), loop).result(5)
        yield sim, recorder
    finally:
        # Let the server see the client's disconnects before it shuts down: a handler still
        # being cancelled at shutdown can leave its socket open (a server-side ResourceWarning).
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.1), loop).result(5)
        asyncio.run_coroutine_threadsafe(sim.close(), loop).result(5)
        # Let the closed server transports run their connection_lost (which closes the
        # sockets) before the loop goes away.
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# --------------------------------------------------------------------------- MiniServer


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


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def answer(make: Callable[[bytes], bytes], *, close: bool = False) -> Responder:
    """Answer with ``make(good_body)`` (a whole response) instead of the good page."""

    async def respond(writer: asyncio.StreamWriter, good: bytes) -> bool:
        writer.write(make(body_of(good)))
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


def sim_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The simulator options a test asks for with ``@pytest.mark.simulator(...)`` (e.g.
    ``legacy_shapes=True`` for a test written against the earlier task shape)."""
    marker = request.node.get_closest_marker("simulator")
    return dict(marker.kwargs) if marker is not None else {}
