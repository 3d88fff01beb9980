"""Every space of an organization: ``export_spaces`` (concurrent) vs one space after another.

A 20-space organization of 10,000 tasks each (200,000 real-shaped tasks, ~2.6 kB each) is
served by the package's simulator in a separate process, every task rendered before the first
run. Each round runs every contender once, in an order rotated round by round, against the same
server; medians and the spread over rounds are printed as a Markdown table. Every run is
verified: 20 complete files of 10,000 distinct task ids each.

Contenders (all to JSONL, page size 100, the client's default ``concurrency=8``):

- ``sequential``: ``list_spaces``, then ``export_tasks`` for each space in turn (what a caller
  writes without ``export_spaces``);
- ``export_spaces xN``: ``export_spaces(spaces_at_once=N)``.

The server counts the requests it is handling at once (``Simulator.peak_in_flight``): the
``peak at server`` column is the bound as the server saw it.

    python -m benchmarks.bench_spaces [--latency-ms 50,5] [--rounds 3] [--at-once 4,8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

from unpod_async import UnpodClient
from unpod_async.testing import Simulator

SPACES = 20
TASKS = 10_000
PAGE_SIZE = 100
CONCURRENCY = 8
STATS_PATH = "/_bench/peak"


# --- the server process ------------------------------------------------------------------------


def _serve(latency: float, conn: Connection) -> None:
    others = {f"space-{i:02d}": TASKS for i in range(1, SPACES)}
    sim = Simulator(TASKS, space_token="space-00", latency=latency, spaces=others)
    for token in sim.space_tokens:
        sim.space(token).warm()

    @web.middleware
    async def peak(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        if request.path == STATS_PATH:  # read and reset the server's peak in flight
            seen, sim.peak_in_flight = sim.peak_in_flight, 0
            return web.json_response({"peak": seen, "requests": len(sim.requests)})
        return await handler(request)

    sim.app.middlewares.append(peak)

    async def main() -> None:
        await sim.start("127.0.0.1", 0)
        conn.send((sim.base_url, sim.token, sim.org_handle))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await sim.close()

    asyncio.run(main())


@dataclass
class Server:
    process: mp.Process
    conn: Connection
    base_url: str
    token: str
    org: str

    @classmethod
    def start(cls, latency: float) -> Server:
        parent, child = mp.Pipe()
        process = mp.get_context("spawn").Process(target=_serve, args=(latency, child))
        process.start()
        base_url, token, org = parent.recv()
        return cls(process, parent, base_url, token, org)

    def cpu(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(10)


# --- the contenders ----------------------------------------------------------------------------

Contender = Callable[[UnpodClient, Path], Awaitable[int]]


async def sequential(client: UnpodClient, out: Path) -> int:
    tasks = 0
    for space in await client.list_spaces():
        stats = await client.export_tasks(space.token, out / f"{space.token}.jsonl")
        assert stats.complete
        tasks += stats.tasks
    return tasks


def concurrent(at_once: int) -> Contender:
    async def run(client: UnpodClient, out: Path) -> int:
        summary = await client.export_spaces(out, spaces_at_once=at_once, page_size=PAGE_SIZE)
        assert summary.complete, [r.error for r in summary.failed]
        return summary.tasks

    return run


def _verify(out: Path) -> bool:
    files = sorted(out.glob("*.jsonl"))
    if len(files) != SPACES:
        return False
    for path in files:
        ids = {json.loads(line)["task_id"] for line in path.read_bytes().splitlines()}
        if len(ids) != TASKS:
            return False
    return True


async def _peak(server: Server) -> tuple[int, int]:
    """The server's peak in flight since the last call, and the requests it has served."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base_url + STATS_PATH) as resp,
    ):
        body = await resp.json()
    return int(body["peak"]), int(body["requests"])


async def _one(server: Server, contender: Contender) -> dict[str, float]:
    _, before = await _peak(server)  # and the peak starts again from 0
    out = Path(tempfile.mkdtemp(prefix="bench-spaces-"))
    cpu = server.cpu()
    try:
        async with UnpodClient(
            server.token, server.org, base_url=server.base_url, concurrency=CONCURRENCY
        ) as client:
            started = time.perf_counter()
            tasks = await contender(client, out)
            seconds = time.perf_counter() - started
        server_cpu = server.cpu() - cpu
        peak, after = await _peak(server)
        ok = tasks == SPACES * TASKS and _verify(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": seconds,
        "peak": peak,
        "requests": after - before,
        "server_cpu": server_cpu,
        "ok": float(ok),
    }


def _row(name: str, runs: list[dict[str, float]], baseline: float | None) -> str:
    seconds = [r["seconds"] for r in runs]
    median = statistics.median(seconds)
    speedup = "1.00" if baseline is None else f"{baseline / median:.2f}"
    return (
        f"| {name} | {len(runs)} | **{median:.2f}** | {min(seconds):.2f} | {max(seconds):.2f} | "
        f"{SPACES * TASKS / median:,.0f} | {speedup} | {max(r['peak'] for r in runs):.0f} | "
        f"{statistics.median(r['requests'] for r in runs):.0f} | "
        f"{statistics.median(r['server_cpu'] for r in runs) / median:.2f} | "
        f"{sum(r['ok'] for r in runs):.0f}/{len(runs)} |"
    )


async def _scenario(latency: float, rounds: int, at_once: list[int]) -> None:
    contenders: dict[str, Contender] = {"sequential": sequential}
    for n in at_once:
        contenders[f"export_spaces x{n}"] = concurrent(n)
    started = time.perf_counter()
    server = Server.start(latency)
    print(
        f"\n### {latency * 1000:g} ms a page: {SPACES} spaces x {TASKS:,} tasks, page size "
        f"{PAGE_SIZE}, concurrency {CONCURRENCY} (server ready in "
        f"{time.perf_counter() - started:.1f}s)\n",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    names = list(contenders)
    try:
        for round_no in range(rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                run = await _one(server, contenders[name])
                results[name].append(run)
                print(f"  round {round_no + 1} {name}: {run['seconds']:.2f}s", file=sys.stderr)
    finally:
        server.stop()
    baseline = statistics.median(r["seconds"] for r in results["sequential"])
    print(
        "| contender | runs | median s | min s | max s | tasks/s | speed-up | peak at server | "
        "requests | server CPU share | verified |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        print(_row(name, results[name], None if name == "sequential" else baseline))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_spaces")
    parser.add_argument("--latency-ms", default="50,5", help="one scenario per value")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--at-once", default="4,8", help="spaces_at_once values to run")
    args = parser.parse_args(argv)
    at_once = [int(n) for n in args.at_once.split(",")]
    print(
        f"bench_spaces: {args.rounds} rounds, contenders alternate (order rotated each round); "
        f"CPUs {psutil.cpu_count()}, Python {sys.version.split()[0]}"
    )
    for latency in (float(ms) / 1000 for ms in args.latency_ms.split(",")):
        asyncio.run(_scenario(latency, args.rounds, at_once))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
