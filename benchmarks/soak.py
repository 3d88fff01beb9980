"""Soak: a very large space through a faulty server, with the client's memory watched.

    python benchmarks/soak.py                      # 500,000 tasks, 5% faults, export + iter
    python benchmarks/soak.py --tasks 50000 --mode iter

The simulator runs in a child process (so the client's RSS is the client's alone), with every
task rendered up front, and ``--fault-rate`` of the tasks requests failing with a mix of
faults: 503, 502, transient 206, 429 (Retry-After 0.05 s), connection reset before the
headers and mid-body, a truncated body, malformed JSON and an empty body. The client exports
the whole space to JSONL (and/or streams it with ``iter_tasks``) while a thread samples its
RSS once a second. At the end it checks that every task arrived exactly once and prints the
RSS at start, end and peak, and a summary of the curve.

Not part of CI. The run is bounded: ``--max-seconds`` (default 600) covers everything after
the server is ready; a pull still running then is stopped by its ``deadline`` and reported
as far as it got.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import threading
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from unpod_async import DeadlineExceededError, UnpodClient  # noqa: E402

MASK = (1 << 64) - 1
FAULT_KINDS = (
    "503",
    "502",
    "206",
    "429",
    "reset",
    "reset_mid_body",
    "truncated",
    "malformed",
    "empty",
)


# --------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    """This process's resident set size."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("cannot read RSS: install psutil") from None
    return int(psutil.Process().memory_info().rss)


@dataclass
class RssSampler:
    """Samples RSS every ``interval`` seconds on a thread (the event loop may be busy)."""

    interval: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self.samples.append((0.0, rss_bytes()))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic() - self._t0, rss_bytes()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append((time.monotonic() - self._t0, rss_bytes()))


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def summarize(samples: list[tuple[float, int]]) -> dict[str, Any]:
    values = [rss for _, rss in samples]
    start, end, peak = values[0], values[-1], max(values)
    second_half = samples[len(samples) // 2 :]
    slope = 0.0
    if len(second_half) >= 3:
        ts = [t for t, _ in second_half]
        rs = [r for _, r in second_half]
        t_mean, r_mean = statistics.mean(ts), statistics.mean(rs)
        var = sum((t - t_mean) ** 2 for t in ts)
        if var > 0:
            slope = sum((t - t_mean) * (r - r_mean) for t, r in zip(ts, rs, strict=True)) / var
    quantiles = {}
    for q in (0, 10, 25, 50, 75, 90, 100):
        i = min(len(values) - 1, round(q / 100 * (len(values) - 1)))
        quantiles[f"t{q}%"] = values[i]
    return {
        "samples": len(samples),
        "start": start,
        "end": end,
        "peak": peak,
        "peak_minus_start": peak - start,
        "end_minus_start": end - start,
        "second_half_slope_bytes_per_min": slope * 60,
        "along_the_run": quantiles,
    }


def print_curve(name: str, samples: list[tuple[float, int]]) -> dict[str, Any]:
    s = summarize(samples)
    print(f"  RSS {name}: start {mib(s['start'])}, end {mib(s['end'])}, peak {mib(s['peak'])}")
    print(
        f"    peak - start {mib(s['peak_minus_start'])}, end - start {mib(s['end_minus_start'])}, "
        f"second-half slope {s['second_half_slope_bytes_per_min'] / 2**20:+.2f} MiB/min "
        f"({s['samples']} samples, 1/s)"
    )
    along = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in s["along_the_run"].items())
    print(f"    along the run (MiB): {along}")
    return s


# --------------------------------------------------------------------------- server child


def serve_forever(args: argparse.Namespace) -> None:
    from unpod_async.testing import Simulator

    async def main() -> None:
        sim = Simulator(
            args.tasks,
            fault_rate=args.fault_rate,
            fault_kinds=FAULT_KINDS,
            retry_after="0.05",
            latency=args.latency,
        )
        started = time.monotonic()
        sim.warm()
        await sim.start()
        ready = {
            "url": sim.base_url,
            "token": sim.token,
            "org": sim.org_handle,
            "space": sim.space_token,
            "warm_seconds": round(time.monotonic() - started, 1),
            "rss": rss_bytes(),
        }
        print(json.dumps(ready), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(sys.stdin.fileno(), stop.set)  # the parent went away
        await stop.wait()
        faults: dict[str, int] = {}
        for record in sim.requests:
            if record.fault:
                faults[record.fault] = faults.get(record.fault, 0) + 1
        print(json.dumps({"requests": len(sim.requests), "faults": faults}), flush=True)
        await sim.close()

    asyncio.run(main())


# --------------------------------------------------------------------------- the soak


def expected_ids(n: int) -> set[str]:
    from unpod_async.testing._data import make_record

    return {make_record(0, serial).task_id for serial in range(n)}


def check_export(path: Path, n: int) -> dict[str, Any]:
    import msgspec

    class Key(msgspec.Struct):
        task_id: str | None = None

    decode = msgspec.json.Decoder(Key).decode
    seen: set[str] = set()
    lines = duplicates = 0
    with path.open("rb") as f:
        for line in f:
            lines += 1
            key = decode(line).task_id
            if key in seen:
                duplicates += 1
            elif key is not None:
                seen.add(key)
    expected = expected_ids(n)
    return {
        "lines": lines,
        "unique": len(seen),
        "duplicates": duplicates,
        "missing": len(expected - seen),
        "unexpected": len(seen - expected),
    }


async def soak_export(
    client: UnpodClient, space: str, args: argparse.Namespace, budget: float
) -> dict[str, Any]:
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="unpod-soak-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "soak.jsonl"
    sampler = RssSampler()
    sampler.start()
    started = time.monotonic()
    result: dict[str, Any] = {"phase": "export"}
    try:
        stats = await client.export_tasks(
            space, path, page_size=args.page_size, deadline=max(1.0, budget)
        )
        result.update(
            tasks=stats.tasks,
            pages=stats.pages,
            retries=stats.retries,
            duplicates_dropped=stats.duplicates,
            passes=stats.passes,
            bytes=stats.bytes,
        )
    except DeadlineExceededError as exc:
        result.update(stopped_by_deadline=True, tasks=exc.tasks, pages=exc.pages)
    finally:
        sampler.stop()
    result["seconds"] = round(time.monotonic() - started, 2)
    result["tasks_per_second"] = round(result.get("tasks", 0) / max(result["seconds"], 1e-9))
    print(
        f"export: {result.get('tasks', 0):,} tasks, {result.get('pages', 0):,} pages, "
        f"{result.get('retries', 0):,} retries in {result['seconds']:.1f}s "
        f"({result['tasks_per_second']:,} tasks/s)"
        + (" -- STOPPED BY THE TIME BUDGET" if result.get("stopped_by_deadline") else "")
    )
    result["rss"] = print_curve("during export", sampler.samples)
    if path.exists():
        result["check"] = check_export(path, args.tasks)
        print(f"  file check: {result['check']}")
        if not args.keep:
            path.unlink()
    return result


async def soak_iter(
    client: UnpodClient, space: str, args: argparse.Namespace, budget: float
) -> dict[str, Any]:
    sampler = RssSampler()
    sampler.start()
    started = time.monotonic()
    result: dict[str, Any] = {"phase": "iter"}
    # The consumer keeps O(1) memory, so the curve is the client's: a count and an
    # order-independent digest of the task ids, compared with the expected ones afterwards.
    count = 0
    digest = 0
    try:
        tasks = client.iter_tasks(space, page_size=args.page_size, deadline=max(1.0, budget))
        async with aclosing(tasks) as stream:
            async for task in stream:
                count += 1
                digest = (digest + hash(task.task_id)) & MASK
    except DeadlineExceededError as exc:
        result.update(stopped_by_deadline=True, pages=exc.pages)
    finally:
        sampler.stop()
    result["seconds"] = round(time.monotonic() - started, 2)
    result["tasks_per_second"] = round(count / max(result["seconds"], 1e-9))
    expected = 0
    for task_id in expected_ids(args.tasks):
        expected = (expected + hash(task_id)) & MASK
    exact = count == args.tasks and digest == expected
    result.update(tasks=count, exactly_the_expected_ids=exact)
    print(
        f"iter_tasks: {count:,} tasks in {result['seconds']:.1f}s "
        f"({result['tasks_per_second']:,} tasks/s); every id exactly once: {exact}"
        + (" -- STOPPED BY THE TIME BUDGET" if result.get("stopped_by_deadline") else "")
    )
    result["rss"] = print_curve("during iter_tasks", sampler.samples)
    return result


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        "--tasks",
        str(args.tasks),
        "--fault-rate",
        str(args.fault_rate),
        "--latency",
        str(args.latency),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    assert server.stdin is not None
    report: dict[str, Any] = {"tasks": args.tasks, "fault_rate": args.fault_rate}
    try:
        print(f"rendering {args.tasks:,} tasks in the server process ...", flush=True)
        ready = json.loads(await server.stdout.readline())
        print(
            f"server ready at {ready['url']} after {ready['warm_seconds']}s "
            f"(server RSS {mib(ready['rss'])}), fault rate {args.fault_rate:.0%}",
            flush=True,
        )
        began = time.monotonic()
        async with UnpodClient(
            ready["token"],
            ready["org"],
            base_url=ready["url"],
            concurrency=args.concurrency,
            retry_delay=0.05,
            max_retry_delay=1.0,
            max_retries=8,
        ) as client:
            report["client_rss_before"] = rss_bytes()
            phases = ["export", "iter"] if args.mode == "both" else [args.mode]
            for phase in phases:
                left = args.max_seconds - (time.monotonic() - began)
                if left <= 5:
                    print(f"{phase}: skipped, the time budget is spent")
                    continue
                run = soak_export if phase == "export" else soak_iter
                report[phase] = await run(client, ready["space"], args, left)
        server.stdin.close()
        tail = json.loads(await server.stdout.readline())
        report["server"] = tail
        print(f"server: {tail['requests']:,} requests, injected faults {tail['faults']}")
    finally:
        if server.returncode is None:
            server.terminate()
        await server.wait()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500_000)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.0, help="server latency, seconds")
    parser.add_argument("--mode", choices=("export", "iter", "both"), default="both")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--out", help="directory for the export (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the exported file")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_forever(args)
        return 0
    report = asyncio.run(soak(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    check = report.get("export", {}).get("check", {})
    ok = (
        check.get("missing", 0) == 0
        and check.get("duplicates", 0) == 0
        and report.get("iter", {}).get("exactly_the_expected_ids", True)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
