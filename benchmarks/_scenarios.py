"""Scenarios (a)-(e) and the runners that measure them.

Timed scenarios (a, b, c) run round-robin: each round runs every contender of every selected
scenario once, in an order rotated per round, against page servers started once. Scenario (c)
is (a) plus faults, so when both are selected their rounds interleave and (c) is compared with
the same run's (a).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson
import psutil
from pydantic import TypeAdapter

from unpod_async import _decode, _models

from . import _pydantic_models as pyd
from ._contenders import CONTENDERS, Target
from ._pages import ids_digest, render_pages, task_ids
from ._server import PageServer, ServerConfig

__all__ = [
    "DecodeResult",
    "MemoryResult",
    "Run",
    "Scenario",
    "TimedResult",
    "default_scenarios",
    "run_decode",
    "run_memory",
    "run_timed",
]

RETRY_DELAY = 0.1  # client backoff base: a 503 retry waits 0.05-0.1 s, a 429 max(that, 0.1 s)
CONCURRENCY = 16


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    server: ServerConfig
    contenders: tuple[str, ...]
    concurrency: int = CONCURRENCY
    retry_delay: float = RETRY_DELAY
    max_rounds: dict[str, int] = field(default_factory=dict)  # caps for slow contenders
    excluded: dict[str, str] = field(default_factory=dict)  # contender -> why it sits out
    baseline: str | None = None  # the scenario this one is compared with

    @property
    def ideal_seconds(self) -> float | None:
        if not self.server.latency:
            return None
        return self.server.pages / self.concurrency * self.server.latency


ALL = ("naive", "httpx", "bare", "iter_tasks", "get_all_tasks", "export_jsonl")


def default_scenarios(quick: bool = False) -> dict[str, Scenario]:
    n_a, n_b = (2_000, 2_000) if quick else (100_000, 200_000)
    # Round caps keep the default run under 10 minutes on 2 cores. naive pages sequentially
    # (1,000 x 50 ms = 50+ s a run in (a)); httpx + pydantic keeps every task as GC-tracked
    # models (15-20 s a run in (a), 35-60 s in (b)). Their ratios to the package are wide
    # (> 5x), so fewer runs suffice; the "runs" column of each table says how many.
    caps_a = {} if quick else {"naive": 1, "httpx": 2}
    caps_b = {} if quick else {"naive": 2, "httpx": 1}
    caps_c = {} if quick else {"httpx": 1}
    wan = ServerConfig(n_tasks=n_a, latency=0.05)
    return {
        "a": Scenario(
            "a", f"WAN-like: 50 ms/page, {wan.pages:,} pages", wan, ALL, max_rounds=caps_a
        ),
        "b": Scenario(
            "b",
            f"CPU-bound: no latency, {n_b // 100:,} pages",
            ServerConfig(n_tasks=n_b, latency=0.0),
            ALL,
            max_rounds=caps_b,
        ),
        "c": Scenario(
            "c",
            "Faulty: (a) + 5% first-attempt 503, 1% 429 (Retry-After: 0.1)",
            ServerConfig(n_tasks=n_a, latency=0.05, p503=0.05, p429=0.01, seed=7),
            ALL,
            max_rounds=caps_c,
            excluded={
                "get_all_tasks": "same code path as iter_tasks, which (c) measures",
                **(
                    {}
                    if quick
                    else {"naive": "sequential: ~50 s a run, and no (c) target involves it"}
                ),
            },
            baseline="a",
        ),
    }


@dataclass
class Run:
    contender: str
    round: int
    seconds: float
    client_cpu: float
    server_cpu: float
    other_cpu: float = 0.0  # CPU the rest of the machine used meanwhile (other processes)
    requests: int = 0
    faults: int = 0
    verified: bool = False
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimedResult:
    scenario: Scenario
    expected_tasks: int
    render_seconds: float
    runs: dict[str, list[Run]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def ok_runs(self, name: str) -> list[Run]:
        return [r for r in self.runs.get(name, []) if r.verified]

    def median(self, name: str) -> float | None:
        runs = self.ok_runs(name)
        return statistics.median(r.seconds for r in runs) if runs else None


def _busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine so far."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _verify(ids: list[str], expected: set[str]) -> str | None:
    if len(ids) == len(expected) and set(ids) == expected:
        return None
    got = set(ids)
    return (
        f"{len(ids)} tasks ({len(ids) - len(got)} duplicates), "
        f"{len(expected - got)} missing, {len(got - expected)} unexpected"
    )


def _run_once(
    server: PageServer,
    scenario: Scenario,
    name: str,
    round_no: int,
    expected: set[str],
    workdir: Path,
) -> Run:
    contender = CONTENDERS[name]
    space = f"{scenario.key}-r{round_no}-{name}".replace("_", "-")
    target = Target(
        server.base_url,
        space,
        scenario.server.page_size,
        scenario.concurrency,
        scenario.retry_delay,
        workdir,
    )

    async def timed() -> tuple[Any, float]:
        started = time.perf_counter()
        outcome = await contender.run(target)
        return outcome, time.perf_counter() - started

    gc.collect()
    busy0 = _busy_seconds()
    cpu0, srv0, wall0 = time.process_time(), server.cpu_seconds(), time.perf_counter()
    outcome = None
    error = None
    try:
        outcome, seconds = asyncio.run(timed())
    except Exception as exc:
        seconds = time.perf_counter() - wall0
        error = f"{type(exc).__name__}: {exc}"[:300]
    run = Run(
        name,
        round_no,
        seconds,
        client_cpu=time.process_time() - cpu0,
        server_cpu=server.cpu_seconds() - srv0,
    )
    run.other_cpu = max(0.0, _busy_seconds() - busy0 - run.client_cpu - run.server_cpu)
    stats = server.stats(space)
    run.requests = stats.get("requests", 0)
    run.faults = stats.get("503", 0) + stats.get("429", 0)
    if outcome is not None:
        run.info = outcome.info
        error = _verify(outcome.ids(), expected)
        if outcome.cleanup:
            outcome.cleanup()
    run.error = error
    run.verified = error is None
    del outcome
    gc.collect()
    return run


def run_timed(scenarios: list[Scenario], rounds: int, contenders: list[str]) -> list[TimedResult]:
    """Round-robin over every (scenario, contender) pair; servers stay up for the whole run."""
    results: list[TimedResult] = []
    servers: list[PageServer] = []
    try:
        for sc in scenarios:
            _log(f"[{sc.key}] starting page server ({sc.server.pages:,} pages) ...")
            server = PageServer(sc.server).start()
            servers.append(server)
            _log(f"[{sc.key}] rendered in {server.render_seconds:.1f}s on {server.base_url}")
            result = TimedResult(
                sc, sc.server.n_tasks, server.render_seconds, {n: [] for n in contenders}
            )
            for name in contenders:
                contender = CONTENDERS[name]
                reason = contender.available()
                if name in sc.excluded:
                    reason = sc.excluded[name]
                elif name not in sc.contenders:
                    reason = "not part of this scenario"
                elif reason is None and not contender.retries and sc.server.p503 + sc.server.p429:
                    reason = "does not retry by design (no 429/503 handling): cannot finish"
                if reason:
                    result.skipped[name] = reason
                    del result.runs[name]
            results.append(result)
        expected = {sc.key: set(task_ids(sc.server.seed, sc.server.n_tasks)) for sc in scenarios}
        with tempfile.TemporaryDirectory(prefix="unpod-bench-") as tmp:
            for round_no in range(1, rounds + 1):
                for server, result in zip(servers, results, strict=True):
                    sc = result.scenario
                    names = list(result.runs)
                    shift = (round_no - 1) % max(1, len(names))
                    for name in names[shift:] + names[:shift]:
                        if round_no > sc.max_rounds.get(name, rounds):
                            continue
                        run = _run_once(server, sc, name, round_no, expected[sc.key], Path(tmp))
                        result.runs[name].append(run)
                        status = "ok" if run.verified else f"FAILED: {run.error}"
                        _log(
                            f"[{sc.key}] round {round_no}/{rounds} {name:<13} {run.seconds:7.3f}s "
                            f"req={run.requests} faults={run.faults} "
                            f"cpu client={run.client_cpu:.2f}s server={run.server_cpu:.2f}s "
                            f"other={run.other_cpu:.2f}s "
                            f"{status}"
                        )
    finally:
        for server in servers:
            server.stop()
    return results


# --- (d) memory -----------------------------------------------------------------------------


@dataclass
class MemoryResult:
    import_mb: float
    python_mb: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._memory_child", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed: {proc.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_memory(sizes: list[int], modes: list[str]) -> MemoryResult:
    base = _child(["import"])
    result = MemoryResult(import_mb=base["import_mb"], python_mb=base["python_mb"])
    _log(
        f"[d] python alone {base['python_mb']:.1f} MB, with unpod_async {base['import_mb']:.1f} MB"
    )
    for mode in list(modes):
        reason = CONTENDERS[mode].available()
        if reason:
            result.skipped[mode] = reason
            modes.remove(mode)
    with tempfile.TemporaryDirectory(prefix="unpod-bench-mem-") as tmp:
        for size in sizes:
            config = ServerConfig(n_tasks=size, latency=0.0)
            with PageServer(config) as server:
                expected = ids_digest(task_ids(config.seed, size))
                for mode in modes:
                    space = f"d-{size}-{mode}".replace("_", "-")
                    row: dict[str, Any] = {"mode": mode, "size": size}
                    try:
                        row.update(_child([mode, server.base_url, space, tmp]))
                        row["verified"] = row["tasks"] == size and row["digest"] == expected
                    except RuntimeError as exc:
                        row.update(error=str(exc), verified=False)
                    result.rows.append(row)
                    _log(
                        f"[d] {mode:<13} {size:>8,} tasks: peak RSS "
                        f"{row.get('peak_mb', float('nan')):.1f} MB "
                        f"in {row.get('seconds', float('nan')):.2f}s verified={row['verified']}"
                    )
    return result


# --- (e) decode only --------------------------------------------------------------------------


@dataclass
class DecodeResult:
    page_bytes: int
    tasks: int
    rows: list[tuple[str, float]]  # (decoder, median microseconds per page)


def run_decode(repeat: int = 7) -> DecodeResult:
    body = render_pages(7, 100, 100)[0]
    adapter = TypeAdapter(pyd.TasksPage)
    typed = msgspec.json.Decoder(_models.TasksPage)
    decoders: list[tuple[str, Callable[[bytes], object]]] = [
        ("json.loads", json.loads),
        ("orjson.loads", orjson.loads),
        ("pydantic v2 validate_json", adapter.validate_json),
        ("msgspec typed (TasksPage)", typed.decode),
        ("msgspec Raw (RAW_PAGE_DECODER)", _decode.RAW_PAGE_DECODER.decode),
    ]
    _check_same_work(body, adapter, typed)
    rows = []
    for name, decode in decoders:
        timer = timeit.Timer(lambda decode=decode: decode(body))  # type: ignore[misc]
        number, _ = timer.autorange()
        per_page = [t / number for t in timer.repeat(repeat=repeat, number=number)]
        rows.append((name, statistics.median(per_page) * 1e6))
        _log(f"[e] {name:<32} {rows[-1][1]:9.1f} us/page")
    return DecodeResult(len(body), 100, rows)


def _check_same_work(body: bytes, adapter: TypeAdapter[pyd.TasksPage], typed: Any) -> None:
    """The pydantic model must build the same data as the msgspec one (a faithful contender)."""
    via_msgspec = msgspec.to_builtins(typed.decode(body))
    via_pydantic = adapter.dump_python(adapter.validate_json(body), by_alias=True)
    mine = json.dumps(via_msgspec, sort_keys=True, default=str)
    theirs = json.dumps(_drop_none_like(via_pydantic, via_msgspec), sort_keys=True, default=str)
    if mine != theirs:
        raise AssertionError("the pydantic models do not decode the same data as msgspec")


def _drop_none_like(value: Any, like: Any) -> Any:
    """msgspec.to_builtins omits fields left at their default; keep only the keys it kept."""
    if isinstance(value, dict) and isinstance(like, dict):
        return {k: _drop_none_like(v, like[k]) for k, v in value.items() if k in like}
    if isinstance(value, list) and isinstance(like, list):
        return [_drop_none_like(v, w) for v, w in zip(value, like, strict=True)]
    return value
