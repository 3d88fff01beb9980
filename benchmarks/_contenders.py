"""The contenders: different ways of pulling every task of one space.

Each takes a ``Target`` and returns an ``Outcome`` whose ``ids`` callable lists the task ids it
produced; the runner calls it after the clock has stopped. naive, httpx, bare and
get_all_tasks keep every decoded task until the end (get-all semantics: a gather loop holds
every page anyway), so they also pay for the garbage collector walking what they hold;
iter_tasks streams (each task's id is kept, the task dropped) and export_jsonl writes a file.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgspec

import unpod_async
from unpod_async import UnpodClient

from . import _pydantic_models as pyd

__all__ = ["CONTENDERS", "Contender", "Outcome", "Target"]

TOKEN = "bench-token"  # the page server accepts anything
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class Target:
    base_url: str
    space: str
    page_size: int
    concurrency: int
    retry_delay: float
    workdir: Path

    def url(self, page: int) -> str:
        return (
            f"{self.base_url}/api/v2/platform/spaces/{self.space}/tasks/"
            f"?page={page}&page_size={self.page_size}"
        )


@dataclass
class Outcome:
    ids: Callable[[], list[str]]
    info: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Contender:
    name: str
    run: Callable[[Target], Coroutine[Any, Any, Outcome]]
    description: str
    retries: bool = True  # survives 429/503 (bare deliberately does not)
    available: Callable[[], str | None] = lambda: None


RETRY_STATUSES = (429, 502, 503, 504)


def _backoff(headers: Any, retry_delay: float, attempt: int) -> float:
    """Plain retry wait of the hand-written contenders: Retry-After if given, else doubling."""
    asked = headers.get("Retry-After")
    if asked is not None:
        try:
            return float(asked)
        except ValueError:
            pass
    return float(retry_delay * 2**attempt)


# --- naive: one page after another, json.loads into dicts ------------------------------------


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


async def run_naive(t: Target) -> Outcome:
    tasks: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        page = 1
        while True:
            body = await _naive_get(session, t.url(page), t.retry_delay)
            doc = json.loads(body)
            data = doc["data"]
            tasks.extend(data)
            if not data or page * t.page_size >= doc["count"]:
                break
            page += 1
    return Outcome(lambda: [task["task_id"] for task in tasks])


async def _gather_all(
    fetch: Callable[[int], Coroutine[Any, Any, Any]], page_size: int
) -> list[Any]:
    """What many users write: page 1 for the count, then every other page at once."""
    first = await fetch(1)
    n_pages = math.ceil(first.count / page_size)
    rest = await asyncio.gather(*(fetch(p) for p in range(2, n_pages + 1)))
    tasks = list(first.data)
    for page in rest:
        tasks.extend(page.data)
    return tasks


# --- httpx + asyncio.gather under a semaphore + pydantic v2 -----------------------------------


async def run_httpx(t: Target) -> Outcome:
    limits = httpx.Limits(max_connections=t.concurrency, max_keepalive_connections=t.concurrency)
    sem = asyncio.Semaphore(t.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def fetch(page: int) -> pyd.TasksPage:
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
            return pyd.TasksPage.model_validate_json(resp.content)

        tasks = await _gather_all(fetch, t.page_size)
    return Outcome(lambda: [task.task_id or "" for task in tasks])


# --- bare: aiohttp + msgspec typed decoding, minimal gather, no retries ------------------------

_BARE_DECODER = msgspec.json.Decoder(unpod_async.TasksPage)


async def run_bare(t: Target) -> Outcome:
    sem = asyncio.Semaphore(t.concurrency)
    connector = aiohttp.TCPConnector(limit=t.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(page: int) -> unpod_async.TasksPage:
            async with sem, session.get(t.url(page)) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"page {page}: HTTP {resp.status} (bare does not retry)")
                body = await resp.read()
            return _BARE_DECODER.decode(body)

        tasks = await _gather_all(fetch, t.page_size)
    return Outcome(lambda: [task.task_id or "" for task in tasks])


# --- the package ------------------------------------------------------------------------------


def _client(t: Target) -> UnpodClient:
    return UnpodClient(
        TOKEN, base_url=t.base_url, concurrency=t.concurrency, retry_delay=t.retry_delay
    )


async def run_iter_tasks(t: Target) -> Outcome:
    """Streamed, as iter_tasks is meant to be used: each task is looked at, then dropped."""
    ids: list[str] = []
    async with _client(t) as client:
        async for task in client.iter_tasks(t.space, page_size=t.page_size):
            ids.append(task.task_id or "")
    return Outcome(lambda: ids)


async def run_get_all_tasks(t: Target) -> Outcome:
    async with _client(t) as client:
        tasks = await client.get_all_tasks(t.space, page_size=t.page_size)
    return Outcome(lambda: [task.task_id or "" for task in tasks])


class _Key(msgspec.Struct):
    task_id: str = ""


_KEY_DECODER = msgspec.json.Decoder(_Key)


def jsonl_ids(path: Path) -> list[str]:
    with path.open("rb") as f:
        return [_KEY_DECODER.decode(line).task_id for line in f if line.strip()]


def export_available() -> str | None:
    if not hasattr(UnpodClient, "export_tasks"):
        return "not available: UnpodClient.export_tasks does not exist yet (unpod_async/_export.py)"
    return None


async def run_export_jsonl(t: Target) -> Outcome:
    path = t.workdir / f"{t.space}.jsonl"
    async with _client(t) as client:
        stats = await client.export_tasks(t.space, path, format="jsonl", page_size=t.page_size)
    info = {
        name: getattr(stats, name)
        for name in ("tasks", "pages", "retries", "bytes")
        if hasattr(stats, name)
    }
    return Outcome(lambda: jsonl_ids(path), info, cleanup=lambda: path.unlink(missing_ok=True))


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("naive", run_naive, "aiohttp, one page after another, json.loads into dicts"),
        Contender(
            "httpx", run_httpx, "httpx.AsyncClient + gather under a semaphore + pydantic v2 models"
        ),
        Contender(
            "bare",
            run_bare,
            "aiohttp + msgspec TasksPage, gather under a semaphore, no retries/order/dedupe",
            retries=False,
        ),
        Contender(
            "iter_tasks",
            run_iter_tasks,
            "UnpodClient.iter_tasks (typed), streamed: each task's id kept, the task dropped",
        ),
        Contender(
            "get_all_tasks",
            run_get_all_tasks,
            "UnpodClient.get_all_tasks: iter_tasks collected into a list (holds every task, "
            "like bare)",
        ),
        Contender(
            "export_jsonl",
            run_export_jsonl,
            "UnpodClient.export_tasks(format='jsonl') to a temp file",
            available=export_available,
        ),
    )
}
