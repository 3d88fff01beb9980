"""Incremental sync against a full re-export: requests and time on a 100,000-task space.

The simulator (``unpod_async.testing``, real-shaped tasks, aged: only the newest 200 tasks in an
open status) runs in a process of its own; each measured run is a fresh interpreter, timed
from the client's first call to its return. A round measures, on the same space:

- ``first sync``: ``sync_tasks`` into a new file (a full pull, stored page by page);
- ``resync, nothing new``: ``sync_tasks`` again;
- ``resync, 1,000 arrivals``: after 1,000 tasks arrive at the head;
- ``full re-export``: ``export_tasks`` to JSONL, what a job without a copy does every time;

the order of the export and the syncs alternates between rounds (the 1,000 arrivals are
deleted again after each). Request counts are the simulator's own log; every sync is checked
(the store then holds exactly the tasks served).

    python -m benchmarks.bench_sync [--tasks 100000] [--rounds 3] [--page-size 100]
                                    [--latency 0] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ARRIVALS = 1000
OPEN_HEAD = 200  # the newest tasks left in an open status


# --- the simulator's process --------------------------------------------------------------------


def _serve(conn: Connection, tasks: int, latency: float) -> None:
    from unpod_async.testing import serve

    async def main() -> None:
        async with serve(tasks=tasks, latency=latency) as sim:
            sim.settle(keep=OPEN_HEAD)
            sim.warm()
            conn.send((sim.base_url, sim.token, sim.org_handle, sim.space_token))
            loop = asyncio.get_running_loop()
            while True:
                command, arg = await loop.run_in_executor(None, conn.recv)
                if command == "insert":
                    sim.insert(arg)
                    sim.warm()
                elif command == "delete":
                    sim.delete(arg, at=0)
                elif command == "stop":
                    conn.send(None)
                    return
                conn.send((len(sim.requests), len(sim)))

    asyncio.run(main())


class Server:
    def __init__(self, tasks: int, latency: float) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, tasks, latency), daemon=True)
        self._proc.start()
        self.base_url, self.token, self.org, self.space = self._conn.recv()

    def ask(self, command: str, arg: int = 0) -> tuple[int, int]:
        """``(requests served so far, tasks in the space)`` after ``command``."""
        self._conn.send((command, arg))
        result: tuple[int, int] = self._conn.recv()
        return result

    def close(self) -> None:
        self._conn.send(("stop", 0))
        self._conn.recv()
        self._proc.join(10)


# --- one measured run, in a fresh interpreter -----------------------------------------------------


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    from unpod_async import UnpodClient

    async with UnpodClient(
        args.token, args.org, base_url=args.url, concurrency=args.concurrency
    ) as client:
        started = time.perf_counter()
        if args.child == "export":
            export = await client.export_tasks(args.space, args.path, page_size=args.page_size)
            seconds = time.perf_counter() - started
            return {"seconds": seconds, "requests": export.requests, "read": export.tasks}
        stats = await client.sync_tasks(args.space, args.path, page_size=args.page_size)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "requests": stats.requests,
        "read": stats.new + stats.updated + stats.unchanged,
        "new": stats.new,
        "full": stats.full,
        "horizon": stats.horizon_page,
        "complete": stats.complete,
    }


def run_child(server: Server, mode: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    before, _ = server.ask("count")
    command = [
        sys.executable, "-m", "benchmarks.bench_sync", "--child", mode, "--path", str(path),
        "--url", server.base_url, "--token", server.token, "--org", server.org,
        "--space", server.space, "--page-size", str(args.page_size),
        "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    after, size = server.ask("count")
    result["served"] = after - before  # the simulator's own count of the requests
    result["size"] = size
    return result


def _stored(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM tasks WHERE deleted_at IS NULL").fetchone()[0])
    finally:
        con.close()


def _round(server: Server, args: argparse.Namespace, workdir: Path, n: int) -> dict[str, Any]:
    db = workdir / f"round{n}.sqlite"
    out = workdir / f"round{n}.jsonl"
    results: dict[str, Any] = {}
    export_first = n % 2 == 1
    if export_first:
        results["export"] = run_child(server, "export", out, args)
    results["first"] = run_child(server, "sync", db, args)
    results["mb"] = sum(p.stat().st_size for p in workdir.glob(f"{db.name}*")) / 1e6
    results["same"] = run_child(server, "sync", db, args)
    server.ask("insert", ARRIVALS)
    results["arrivals"] = run_child(server, "sync", db, args)
    stored = _stored(db)
    server.ask("delete", ARRIVALS)
    if not export_first:
        results["export"] = run_child(server, "export", out, args)
    for name in ("first", "same", "arrivals"):
        if not results[name]["complete"] or results[name]["served"] != results[name]["requests"]:
            raise RuntimeError(f"round {n}: unverified {name} run: {results[name]}")
    if results["arrivals"]["new"] != ARRIVALS or stored != results["arrivals"]["size"]:
        raise RuntimeError(f"round {n}: the store holds {stored} of {results['arrivals']}")
    for path in workdir.iterdir():
        path.unlink()
    return results


ROWS = (
    ("first", "first sync (full pull, stored)"),
    ("same", "resync, nothing new"),
    ("arrivals", f"resync, {ARRIVALS:,} arrivals"),
    ("export", "full re-export (JSONL)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sync")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--child", choices=("sync", "export"), help=argparse.SUPPRESS)
    for name in ("--path", "--url", "--token", "--org", "--space"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_measure(args))))
        return 0

    print(
        f"starting the simulator: {args.tasks:,} tasks, {args.latency * 1000:g} ms latency",
        file=sys.stderr,
    )
    server = Server(args.tasks, args.latency)
    rounds = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as workdir:
            for n in range(args.rounds):
                rounds.append(_round(server, args, Path(workdir), n))
                print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        server.close()

    export_seconds = statistics.median(r["export"]["seconds"] for r in rounds)
    print(
        f"\n{args.tasks:,}-task space, page size {args.page_size}, concurrency "
        f"{args.concurrency}, {args.latency * 1000:g} ms latency; medians of {args.rounds} rounds"
    )
    print("| run | requests | tasks read | seconds | vs full re-export |")
    print("|---|---|---|---|---|")
    for key, label in ROWS:
        requests = statistics.median(r[key]["served"] for r in rounds)
        read = statistics.median(r[key]["read"] for r in rounds)
        seconds = statistics.median(r[key]["seconds"] for r in rounds)
        ratio = f"{seconds / export_seconds:.3f}x" if key != "export" else "1x"
        print(f"| {label} | {requests:,.0f} | {read:,.0f} | {seconds:.3f} | {ratio} |")
    mb = statistics.median(r["mb"] for r in rounds)
    print(f"\nthe store after the first sync (database, WAL and lock): {mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
