"""The page server: a separate process serving the pages of one simulated space.

A static space's pages are rendered once at startup; a request only picks its bytes (after the
configured latency). Faults are planned up front with a seeded RNG: the FIRST attempt of each
faulted page (per space token, so every benchmark run sees the same faults) answers 503 with an
HTML body or 429 with ``Retry-After``; the retry succeeds.

A live space (``arrive_every`` and/or ``delete_every``) changes while it is read: every
``arrive_every``-th request to a space token adds one new task at the head (newest first), and
every ``delete_every``-th removes one task at a seeded random position, both at the moment the
request is answered (after its latency, before its page is cut). Each token gets its own copy
of the space, so every run starts from the same tasks; the server keeps which tasks arrived and
which were deleted, so that the harness can check that every task that existed throughout the
pull came out exactly once.

The space token in the path is free-form: each run uses its own, and the server keeps request,
fault and byte counts per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil
from aiohttp import web

from ._pages import empty_page, make_pool, page_head, render_pages, render_tasks

__all__ = ["PageServer", "ServerConfig", "fault_plan"]

_HTML_503 = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    b"<body><center><h1>503 Service Temporarily Unavailable</h1></center>"
    b"<hr><center>nginx</center></body></html>\r\n"
)
_JSON_429 = b'{"detail":"Request was throttled. Expected available in 1 second."}'


@dataclass(frozen=True)
class ServerConfig:
    n_tasks: int
    page_size: int = 100
    latency: float = 0.0
    p503: float = 0.0
    p429: float = 0.0
    retry_after: str = "0.1"
    seed: int = 7
    arrive_every: int = 0  # live space: one new task at the head every N requests (0: never)
    delete_every: int = 0  # live space: one task deleted every N requests (0: never)

    @property
    def pages(self) -> int:
        return math.ceil(self.n_tasks / self.page_size)

    @property
    def live(self) -> bool:
        return bool(self.arrive_every or self.delete_every)


def fault_plan(config: ServerConfig) -> tuple[frozenset[int], frozenset[int]]:
    """The pages whose first attempt answers 503, and those answering 429 (disjoint)."""
    pages = list(range(1, config.pages + 1))
    n503 = round(config.p503 * len(pages))
    n429 = round(config.p429 * len(pages))
    chosen = random.Random(config.seed * 7919 + 1).sample(pages, n503 + n429)
    return frozenset(chosen[:n503]), frozenset(chosen[n503:])


class _LiveSpace:
    """One token's copy of a space that changes with the requests it answers."""

    def __init__(self, state: _State, token: str) -> None:
        self.state = state
        config = state.config
        self.tasks = list(state.tasks)  # bytes of each task, newest first
        self.serials = list(range(config.n_tasks - 1, -1, -1))
        self.next_serial = config.n_tasks
        self.answered = 0
        self.arrived: list[int] = []
        self.deleted: list[int] = []
        self.rng = random.Random(zlib.crc32(token.encode()) ^ config.seed)

    def answer(self) -> None:
        """Apply the changes this request triggers (it is about to be answered)."""
        config = self.state.config
        self.answered += 1
        if config.arrive_every and self.answered % config.arrive_every == 0:
            serial = self.next_serial
            self.next_serial += 1
            self.tasks[0:0] = render_tasks(config.seed, [serial], self.state.pool)
            self.serials.insert(0, serial)
            self.arrived.append(serial)
        if config.delete_every and self.answered % config.delete_every == 0 and self.tasks:
            at = self.rng.randrange(len(self.tasks))
            del self.tasks[at]
            self.deleted.append(self.serials.pop(at))

    def page(self, number: int, size: int) -> bytes:
        start = (number - 1) * size
        chunk = self.tasks[start : start + size]
        return b"".join((page_head(len(self.tasks)), b",".join(chunk), b"]}"))


@dataclass
class _State:
    config: ServerConfig
    pages: list[bytes]
    empty: bytes
    f503: frozenset[int]
    f429: frozenset[int]
    tasks: list[bytes] = field(default_factory=list)  # live spaces: each task's bytes
    pool: Any = None
    attempted: set[tuple[str, int]] = field(default_factory=set)
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    live: dict[str, _LiveSpace] = field(default_factory=dict)


def _json_error(status: int, message: str) -> web.Response:
    body = b'{"status_code":%d,"message":"%s","data":{}}' % (status, message.encode())
    return web.Response(status=status, body=body, content_type="application/json")


def _app(state: _State) -> web.Application:
    config = state.config
    latency = config.latency
    faulty = state.f503 | state.f429
    n_pages = len(state.pages)

    async def tasks(request: web.Request) -> web.Response:
        space = request.match_info["space"]
        counts = state.counts.get(space)
        if counts is None:
            counts = state.counts[space] = Counter()
        counts["requests"] += 1
        query = request.query
        try:
            page = int(query["page"])
            size = int(query["page_size"])
        except (KeyError, ValueError):
            return _json_error(400, "page and page_size are required integers")
        if latency:
            await asyncio.sleep(latency)
        if page <= 0:
            return _json_error(206, "Tasks Fetch Failed")
        if size <= 0 or (size != config.page_size and not config.live):
            # A live space cuts its pages per request (repairs ask for other sizes).
            return _json_error(400, f"bench server pre-rendered page_size={config.page_size} only")
        if page in faulty and (space, page) not in state.attempted:
            state.attempted.add((space, page))
            if page in state.f503:
                counts["503"] += 1
                return web.Response(status=503, body=_HTML_503, content_type="text/html")
            counts["429"] += 1
            return web.Response(
                status=429,
                body=_JSON_429,
                content_type="application/json",
                headers={"Retry-After": config.retry_after},
            )
        counts["pages"] += 1
        if config.live:
            live = state.live.get(space)
            if live is None:
                live = state.live[space] = _LiveSpace(state, space)
            live.answer()
            body = live.page(page, size)
        else:
            body = state.pages[page - 1] if page <= n_pages else state.empty
        counts["bytes"] += len(body)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v2/platform/spaces/{space}/tasks/", tasks)
    return app


async def _main(config: ServerConfig, conn: Connection) -> None:
    started = time.perf_counter()
    f503, f429 = fault_plan(config)
    if config.live:
        pool = make_pool(config.seed, config.n_tasks)
        state = _State(
            config=config,
            pages=[],
            empty=b"",
            f503=f503,
            f429=f429,
            tasks=render_tasks(config.seed, range(config.n_tasks - 1, -1, -1), pool),
            pool=pool,
        )
    else:
        state = _State(
            config=config,
            pages=render_pages(config.seed, config.n_tasks, config.page_size),
            empty=empty_page(config.n_tasks),
            f503=f503,
            f429=f429,
        )
    render_seconds = time.perf_counter() - started
    runner = web.AppRunner(_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_message() -> None:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            stop.set()
            return
        if message == "stop":
            stop.set()
        elif isinstance(message, tuple) and message[0] == "stats":
            counts: dict[str, Any] = dict(state.counts.get(message[1], Counter()))
            live = state.live.pop(message[1], None)  # asked once, after the run: free it
            if live is not None:
                counts["arrived"] = live.arrived
                counts["deleted"] = live.deleted
            conn.send(counts)

    loop.add_reader(conn.fileno(), on_message)
    conn.send(("ready", port, render_seconds))
    try:
        await stop.wait()
    finally:
        loop.remove_reader(conn.fileno())
        await runner.cleanup()


def _serve(config: ServerConfig, conn: Connection) -> None:
    try:
        asyncio.run(_main(config, conn))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


class PageServer:
    """Start with ``with PageServer(config) as server:``; ``server.base_url`` is its address."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = 0
        self.render_seconds = 0.0
        self._proc: Any = None
        self._conn: Connection | None = None
        self._ps: psutil.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    def start(self, timeout: float = 180.0) -> PageServer:
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> PageServer:
        """Start the process (it renders its pages meanwhile); :meth:`wait_ready` joins it."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self.config, child), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        return self

    def wait_ready(self, timeout: float = 180.0) -> PageServer:
        parent = self._conn
        assert parent is not None
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError(f"page server did not start within {timeout:g}s")
        try:
            message = parent.recv()
        except EOFError:
            self._proc.join(5)
            raise RuntimeError(
                f"page server exited during startup (exit code {self._proc.exitcode})"
            ) from None
        if message[0] != "ready":
            self.stop()
            raise RuntimeError(f"page server failed: {message[1]}")
        _, self.port, self.render_seconds = message
        self._ps = psutil.Process(self._proc.pid)
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        assert self._ps is not None
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def stats(self, space: str) -> dict[str, Any]:
        """Requests, pages, bytes and faults the server answered for one space token, and (a
        live space, which is then forgotten) the serials that arrived and were deleted."""
        assert self._conn is not None
        self._conn.send(("stats", space))
        result: dict[str, Any] = self._conn.recv()
        return result

    def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send("stop")
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
