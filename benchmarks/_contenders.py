"""The contenders: ways of pulling every task of one space, each doing the same work minus
exactly what it says it omits.

Each is ``run(target, touch)``: it pulls the space and calls ``touch(task_id)`` once for every
task it delivers (the consumer: identical in every contender that decodes), and returns an
``Outcome``. The streaming contenders drop each page once its tasks are touched; the file
contenders write a JSONL file in ``target.workdir`` (one filesystem for all) and read its ids
back only after the clock has stopped. Nothing here holds a whole space in memory.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgspec
import orjson

import unpod_async
from unpod_async import UnpodClient

from . import _pydantic_models as pyd

__all__ = ["CONTENDERS", "Contender", "Outcome", "Target", "jsonl_ids"]

TOKEN = "bench-token"  # the page server accepts anything
MAX_ATTEMPTS = 6
RETRY_STATUSES = (429, 502, 503, 504)

Touch = Callable[[str], object]


@dataclass(frozen=True)
class Target:
    base_url: str
    space: str
    page_size: int
    concurrency: int
    retry_delay: float
    workdir: Path
    read_ahead_bytes: int | None = None  # the client's default unless set

    def url(self, page: int) -> str:
        return (
            f"{self.base_url}/api/v2/platform/spaces/{self.space}/tasks/"
            f"?page={page}&page_size={self.page_size}"
        )


@dataclass
class Outcome:
    # The ids a file contender wrote, read back after the clock (None: the ids are those
    # the contender touched, or it decodes nothing).
    ids: Callable[[], list[str]] | None
    info: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Contender:
    name: str
    run: Callable[[Target, Touch], Coroutine[Any, Any, Outcome]]
    does: str
    omits: str
    retries: bool = True  # survives 503 (the bare loops deliberately do not)
    writes: bool = False  # writes a JSONL file (the export contenders)
    decodes: bool = True  # delivers tasks (raw_read does not: it is verified by bytes)


# --- the shared loop of the bare contenders --------------------------------------------------


async def _gather_pages(
    t: Target, first: Callable[[bytes], int], each: Callable[[bytes], object]
) -> int:
    """What many users write: page 1 for the count, then every other page at once under a
    semaphore of ``concurrency``; each body goes to ``each`` as it arrives (any order) and is
    dropped. No retries, no ordering, no dedupe. Returns the number of pages."""
    sem = asyncio.Semaphore(t.concurrency)
    connector = aiohttp.TCPConnector(limit=t.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(page: int) -> bytes:
            async with sem, session.get(t.url(page)) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"page {page}: HTTP {resp.status} (bare does not retry)")
                return await resp.read()

        async def fetch(page: int) -> None:
            each(await get(page))

        count = first(await get(1))
        n_pages = math.ceil(count / t.page_size)
        await asyncio.gather(*(fetch(p) for p in range(2, n_pages + 1)))
    return max(1, n_pages)


# --- bare typed stream: the contender of iter_tasks -------------------------------------------

_TYPED = msgspec.json.Decoder(unpod_async.TasksPage)


async def run_bare_stream(t: Target, touch: Touch) -> Outcome:
    def each(body: bytes) -> int:
        page = _TYPED.decode(body)
        for task in page.data:
            touch(task.task_id or "")
        return page.count

    pages = await _gather_pages(t, each, each)
    return Outcome(None, {"pages": pages})


# --- bare JSONL writer: the contender of export_tasks(format="jsonl") -------------------------


class _RawPage(msgspec.Struct, gc=False):
    count: int = 0
    data: list[msgspec.Raw] = []


_RAW = msgspec.json.Decoder(_RawPage)


class _Key(msgspec.Struct):
    task_id: str = ""


_KEY_DECODER = msgspec.json.Decoder(_Key)


def jsonl_ids(path: Path) -> list[str]:
    with path.open("rb") as f:
        return [_KEY_DECODER.decode(line).task_id for line in f if line.strip()]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_outcome(path: Path, info: dict[str, Any]) -> Outcome:
    return Outcome(lambda: jsonl_ids(path), info, cleanup=lambda: path.unlink(missing_ok=True))


async def run_bare_writer(t: Target, touch: Touch) -> Outcome:
    dest = t.workdir / f"{t.space}.jsonl"
    partial = dest.with_name(f".{dest.name}.partial")
    with partial.open("wb") as f:

        def each(body: bytes) -> int:
            page = _RAW.decode(body)
            if page.data:
                f.write(b"\n".join(page.data))
                f.write(b"\n")
            return page.count

        pages = await _gather_pages(t, each, each)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, dest)
    _fsync_dir(dest.parent)
    return _file_outcome(dest, {"pages": pages})


# --- raw resp.read(): the transport ceiling --------------------------------------------------


class _Count(msgspec.Struct, gc=False):
    count: int = 0


_COUNT = msgspec.json.Decoder(_Count)


async def run_raw_read(t: Target, touch: Touch) -> Outcome:
    total = 0

    def first(body: bytes) -> int:
        nonlocal total
        total += len(body)
        return _COUNT.decode(body).count  # only the count: msgspec skips the tasks

    def each(body: bytes) -> None:
        nonlocal total
        total += len(body)

    pages = await _gather_pages(t, first, each)
    return Outcome(None, {"pages": pages, "bytes": total})


# --- aiohttp + orjson ------------------------------------------------------------------------


async def run_orjson(t: Target, touch: Touch) -> Outcome:
    def each(body: bytes) -> int:
        doc = orjson.loads(body)
        for task in doc["data"]:
            touch(task["task_id"])
        count: int = doc["count"]
        return count

    pages = await _gather_pages(t, each, each)
    return Outcome(None, {"pages": pages})


# --- naive: one page after another, json.loads into dicts ------------------------------------


def _backoff(headers: Any, retry_delay: float, attempt: int) -> float:
    """Plain retry wait of the hand-written contenders: Retry-After if given, else doubling."""
    asked = headers.get("Retry-After")
    if asked is not None:
        try:
            return float(asked)
        except ValueError:
            pass
    return float(retry_delay * 2**attempt)


async def _naive_get(session: aiohttp.ClientSession, url: str, retry_delay: float) -> bytes:
    for attempt in range(MAX_ATTEMPTS):
        last = attempt == MAX_ATTEMPTS - 1
        try:
            async with session.get(url) as resp:
                body = await resp.read()
                status, headers = resp.status, resp.headers
        except aiohttp.ClientError:
            if last:
                raise
            await asyncio.sleep(retry_delay * 2**attempt)
            continue
        if status in RETRY_STATUSES and not last:
            await asyncio.sleep(_backoff(headers, retry_delay, attempt))
            continue
        if status != 200:
            raise RuntimeError(f"HTTP {status} for {url}")
        return body
    raise AssertionError("unreachable")


async def run_naive(t: Target, touch: Touch) -> Outcome:
    pages = 0
    async with aiohttp.ClientSession() as session:
        page = 1
        while True:
            doc = json.loads(await _naive_get(session, t.url(page), t.retry_delay))
            pages += 1
            data = doc["data"]
            for task in data:
                touch(task["task_id"])
            if not data or page * t.page_size >= doc["count"]:
                break
            page += 1
    return Outcome(None, {"pages": pages})


# --- httpx + gather under a semaphore + pydantic v2 -------------------------------------------


async def run_httpx(t: Target, touch: Touch) -> Outcome:
    limits = httpx.Limits(max_connections=t.concurrency, max_keepalive_connections=t.concurrency)
    sem = asyncio.Semaphore(t.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def fetch(page: int) -> int:
            for attempt in range(MAX_ATTEMPTS):
                last = attempt == MAX_ATTEMPTS - 1
                try:
                    async with sem:
                        resp = await client.get(t.url(page))
                except httpx.TransportError:
                    if last:
                        raise
                    await asyncio.sleep(t.retry_delay * 2**attempt)
                    continue
                if resp.status_code in RETRY_STATUSES and not last:
                    await asyncio.sleep(_backoff(resp.headers, t.retry_delay, attempt))
                    continue
                resp.raise_for_status()
                break
            doc = pyd.TasksPage.model_validate_json(resp.content)
            for task in doc.data:
                touch(task.task_id or "")
            return doc.count

        count = await fetch(1)
        n_pages = math.ceil(count / t.page_size)
        await asyncio.gather(*(fetch(p) for p in range(2, n_pages + 1)))
    return Outcome(None, {"pages": n_pages})


# --- the package ------------------------------------------------------------------------------


def _client(t: Target) -> UnpodClient:
    extra = {} if t.read_ahead_bytes is None else {"read_ahead_bytes": t.read_ahead_bytes}
    return UnpodClient(
        TOKEN, base_url=t.base_url, concurrency=t.concurrency, retry_delay=t.retry_delay, **extra
    )


async def run_iter_tasks(t: Target, touch: Touch) -> Outcome:
    async with (
        _client(t) as client,
        aclosing(client.iter_tasks(t.space, page_size=t.page_size)) as tasks,
    ):
        async for task in tasks:
            touch(task.task_id or "")
    stats = getattr(tasks, "stats", None)  # a TaskIterator's running figures
    info = {name: getattr(stats, name) for name in STATS_FIELDS if hasattr(stats, name)}
    return Outcome(None, info)


STATS_FIELDS = (
    "tasks",
    "pages",
    "requests",
    "retries",
    "repairs",
    "arrivals",
    "duplicates",
    "recovered",
    "rereads",
    "passes",
    "missing",
    "bytes",
)


async def run_export_jsonl(t: Target, touch: Touch) -> Outcome:
    path = t.workdir / f"{t.space}.jsonl"
    async with _client(t) as client:
        stats = await client.export_tasks(t.space, path, format="jsonl", page_size=t.page_size)
    info = {name: getattr(stats, name) for name in STATS_FIELDS if hasattr(stats, name)}
    return _file_outcome(path, info)


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender(
            "iter_tasks",
            run_iter_tasks,
            "`UnpodClient.iter_tasks`: typed `Task` Structs, every task once, in server order, "
            "retried; the consumer touches each task (`task_id` into a list)",
            "nothing",
        ),
        Contender(
            "bare_stream",
            run_bare_stream,
            "aiohttp; page 1 for the count, then `asyncio.gather` of every other page under a "
            "semaphore of the same concurrency; msgspec typed decode of each page into "
            "`unpod_async.TasksPage`; the same consumer touches each task; each page dropped "
            "after its tasks are touched (streaming)",
            "retries, server order, dedupe, repairs of a live space, the byte-bounded window",
            retries=False,
        ),
        Contender(
            "export_jsonl",
            run_export_jsonl,
            "`UnpodClient.export_tasks(format='jsonl')`: each task's own bytes, one per line, in "
            "server order, deduped, retried; written beside the destination, fsync, rename, "
            "fsync of the directory",
            "nothing",
            writes=True,
        ),
        Contender(
            "bare_writer",
            run_bare_writer,
            "aiohttp, the same gather loop; msgspec decode of each page into `list[Raw]`; the "
            "tasks written one per line to a file on the same filesystem as the export, beside "
            "the destination; fsync, rename, fsync of the directory (as the export does)",
            "retries, server order, dedupe, repairs, UTF-8 validation, compaction of "
            "multi-line tasks, checkpoints/progress, writing off the event loop (it writes "
            "and fsyncs on the loop)",
            retries=False,
            writes=True,
        ),
        Contender(
            "raw_read",
            run_raw_read,
            "aiohttp, the same gather loop, `await resp.read()` of each page and nothing else "
            "(page 1's `count` only): the transport ceiling",
            "all decoding and the consumer",
            retries=False,
            decodes=False,
        ),
        Contender(
            "orjson",
            run_orjson,
            "aiohttp, the same gather loop, `orjson.loads` of each page into dicts; the same "
            "consumer; streaming",
            "types, retries, order, dedupe, repairs of a live space, the byte-bounded window",
            retries=False,
        ),
        Contender(
            "httpx_pydantic",
            run_httpx,
            "`httpx.AsyncClient` + `gather` under a semaphore + pydantic v2 `TasksPage` "
            "(field for field the msgspec models); the same consumer; streaming; retries "
            "429/502/503/504 and connection errors",
            "order, dedupe, repairs of a live space, the byte-bounded window",
        ),
        Contender(
            "naive",
            run_naive,
            "aiohttp, one page after another, `json.loads` into dicts; the same consumer; "
            "retries 429/502/503/504 and connection errors",
            "concurrency, types, dedupe",
        ),
    )
}
