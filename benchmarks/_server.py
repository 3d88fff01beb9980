"""The page server: a separate process serving pre-rendered pages of one simulated space.

Every page is rendered once at startup; a request only picks its bytes (after the configured
latency). Faults are planned up front with a seeded RNG: the FIRST attempt of each faulted page
(per space token, so every benchmark run sees the same faults) answers 503 with an HTML body or
429 with ``Retry-After``; the retry succeeds. The space token in the path is free-form: each run
uses its own, and the server keeps request and fault counts per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil
from aiohttp import web

from ._pages import empty_page, render_pages

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

    @property
    def pages(self) -> int:
        return math.ceil(self.n_tasks / self.page_size)


def fault_plan(config: ServerConfig) -> tuple[frozenset[int], frozenset[int]]:
    """The pages whose first attempt answers 503, and those answering 429 (disjoint)."""
    pages = list(range(1, config.pages + 1))
    n503 = round(config.p503 * len(pages))
    n429 = round(config.p429 * len(pages))
    chosen = random.Random(config.seed * 7919 + 1).sample(pages, n503 + n429)
    return frozenset(chosen[:n503]), frozenset(chosen[n503:])


@dataclass
class _State:
    config: ServerConfig
    pages: list[bytes]
    empty: bytes
    f503: frozenset[int]
    f429: frozenset[int]
    attempted: set[tuple[str, int]] = field(default_factory=set)
    counts: dict[str, Counter[str]] = field(default_factory=dict)


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
        if size != config.page_size:
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
        body = state.pages[page - 1] if page <= n_pages else state.empty
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v2/platform/spaces/{space}/tasks/", tasks)
    return app


async def _main(config: ServerConfig, conn: Connection) -> None:
    started = time.perf_counter()
    f503, f429 = fault_plan(config)
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
            conn.send(dict(state.counts.get(message[1], Counter())))

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
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self.config, child), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
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

    def stats(self, space: str) -> dict[str, int]:
        """Requests, pages and faults the server answered for one space token."""
        assert self._conn is not None
        self._conn.send(("stats", space))
        result: dict[str, int] = self._conn.recv()
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
