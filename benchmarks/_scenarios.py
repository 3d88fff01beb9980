"""The scenarios, and the runner that measures them.

Every measured pull runs in a fresh interpreter (``_child``) against page servers that run in
processes of their own and stay up for the whole run. Rounds alternate: each round runs every
cell (a contender in a scenario) once, the order rotated per round within each group of cells
that are compared with each other, so that a ratio pairs two runs made a few seconds apart.

* ``cpu``: pages of 100 realistic tasks, no added latency (CPU-bound: the client, not the
  network, is the limit);
* ``lag``: the same, with a 1 ms sleeper task beside the pull measuring how late it wakes;
* ``faults``: 50 ms pages at concurrency 16, clean and with 5% of first attempts answered 503;
* ``live``: the same space changing while it is read (a task arrives every 3 requests; and
  also a delete every 40), compared with the clean pull of ``faults``, and checked: every task
  that existed throughout the pull comes out exactly once;
* ``memory``: peak RSS of one export (and one ``iter_tasks``) per space size;
* ``decode``: one page through each decoder, in this process (no network).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
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
from ._contenders import CONTENDERS
from ._pages import ids_digest, render_pages, task_id, task_ids
from ._server import PageServer, ServerConfig

__all__ = [
    "SCENARIOS",
    "Cell",
    "DecodeResult",
    "MemoryResult",
    "Plan",
    "Run",
    "make_plan",
    "run_decode",
    "run_memory",
    "run_rounds",
]

# Backoff base: a 503's first retry waits 0.0125-0.025 s, the next 0.05-0.1 s, doubling.
RETRY_DELAY = 0.1
CONCURRENCY = 16
PAGE_SIZE = 100
SCENARIOS = ("cpu", "lag", "faults", "live", "memory", "decode")
ROOT = Path(__file__).resolve().parent.parent


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Cell:
    """One contender in one scenario, against one server."""

    key: str  # unique, e.g. "cpu/iter_tasks"
    scenario: str
    group: str  # cells compared with each other (their order rotates together)
    server: str
    contender: str
    lag: bool = False
    retry_delay: float = RETRY_DELAY
    read_ahead_bytes: int | None = None  # the client's default unless set
    max_rounds: int | None = None  # a cap for slow contenders whose ratio is wide anyway

    @property
    def label(self) -> str:
        return self.key.split("/", 1)[1]


@dataclass
class Plan:
    servers: dict[str, ServerConfig]
    cells: list[Cell]
    memory_sizes: list[int]
    memory_modes: list[str]


def make_plan(quick: bool, scenarios: list[str], contenders: list[str] | None = None) -> Plan:
    n_cpu, n_wan = (2_000, 4_000) if quick else (300_000, 100_000)
    slow_cap = None if quick else 3
    servers: dict[str, ServerConfig] = {}
    cells: list[Cell] = []

    def add(cell: Cell, config: ServerConfig) -> None:
        if contenders is not None and cell.contender not in contenders:
            return
        servers[cell.server] = config
        cells.append(cell)

    cpu = ServerConfig(n_tasks=n_cpu)
    if "cpu" in scenarios:
        for name in ("raw_read", "bare_stream", "iter_tasks", "bare_writer", "export_jsonl"):
            add(Cell(f"cpu/{name}", "cpu", "cpu", "cpu", name), cpu)
        for name in ("orjson", "httpx_pydantic", "naive"):
            cap = None if name == "orjson" else slow_cap
            add(Cell(f"cpu/{name}", "cpu", "cpu", "cpu", name, max_rounds=cap), cpu)
    if "lag" in scenarios:
        for name in ("bare_stream", "iter_tasks", "bare_writer", "export_jsonl"):
            add(Cell(f"lag/{name}", "lag", "lag", "cpu", name, lag=True), cpu)
    clean = ServerConfig(n_tasks=n_wan, latency=0.05)
    if "faults" in scenarios or "live" in scenarios:  # live compares with the clean pull
        for name in ("iter_tasks", "export_jsonl", "bare_stream"):
            if name == "bare_stream" and "faults" not in scenarios:
                continue
            add(Cell(f"faults/{name} clean", "faults", "wan", "wan", name), clean)
    if "faults" in scenarios:
        faulty = ServerConfig(n_tasks=n_wan, latency=0.05, p503=0.05)
        for name in ("iter_tasks", "export_jsonl"):
            add(Cell(f"faults/{name} 503", "faults", "wan", "wan-503", name), faulty)
        add(
            Cell(
                "faults/iter_tasks 503, retry_delay=0.5",
                "faults",
                "wan",
                "wan-503",
                "iter_tasks",
                retry_delay=0.5,
            ),
            faulty,
        )
        add(
            Cell(
                "faults/iter_tasks 503, retry_delay=0.5, read_ahead_bytes=64 MiB",
                "faults",
                "wan",
                "wan-503",
                "iter_tasks",
                retry_delay=0.5,
                read_ahead_bytes=64 << 20,
            ),
            faulty,
        )
    if "live" in scenarios:
        arrive = ServerConfig(n_tasks=n_wan, latency=0.05, arrive_every=3)
        churn = ServerConfig(n_tasks=n_wan, latency=0.05, arrive_every=3, delete_every=40)
        for name in ("iter_tasks", "export_jsonl", "bare_stream"):
            add(Cell(f"live/{name} arrivals", "live", "live", "arrive", name), arrive)
            add(Cell(f"live/{name} arrivals+deletes", "live", "live", "churn", name), churn)
    sizes = [1_000, 2_000, 5_000] if quick else [10_000, 100_000, 500_000]
    modes = ["export_jsonl", "iter_tasks", "bare_writer"] if "memory" in scenarios else []
    if contenders is not None:
        modes = [m for m in modes if m in contenders]
    return Plan(servers, cells, sizes, modes)


@dataclass
class Run:
    cell: str
    round: int
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    other_cpu: float = 0.0  # CPU the rest of the machine used meanwhile (other jobs: noise)
    peak_mb: float = 0.0
    lag: dict[str, float] | None = None
    requests: int = 0
    faults: int = 0
    tasks: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    check: dict[str, int] = field(default_factory=dict)
    completed: bool = False  # the pull finished (verified: and delivered the right tasks)
    verified: bool = False
    error: str | None = None


def _busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine so far."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def child(spec: dict[str, Any] | str, timeout: float = 600) -> dict[str, Any]:
    """Run one ``_child`` and return its JSON result."""
    arg = spec if isinstance(spec, str) else json.dumps(spec)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._child", arg],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"child failed: {proc.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _check_static(ids: list[str], expected: set[str]) -> dict[str, int]:
    got = set(ids)
    return {
        "duplicates": len(ids) - len(got),
        "missing": len(expected - got),
        "unexpected": len(got - expected),
    }


def _check_live(
    ids: list[str], config: ServerConfig, initial: set[str], stats: dict[str, Any]
) -> dict[str, int]:
    """Every task that existed throughout the pull exactly once, nothing that never existed."""
    arrived = {task_id(config.seed, s) for s in stats.get("arrived", [])}
    deleted = {task_id(config.seed, s) for s in stats.get("deleted", [])}
    throughout = initial - deleted
    got = set(ids)
    return {
        "duplicates": len(ids) - len(got),
        "missing": len(throughout - got),
        "unexpected": len(got - initial - arrived),
        "arrived": len(arrived),
        "arrivals_delivered": len(got & arrived),
        "deleted": len(deleted),
        "deleted_delivered": len(got & deleted),
    }


def _run_once(
    cell: Cell,
    round_no: int,
    server: PageServer,
    initial: set[str],
    workdir: Path,
) -> Run:
    config = server.config
    space = f"r{round_no}-{cell.key}".replace("/", "-").replace(" ", "-").replace("_", "-")
    space = "".join(ch for ch in space if ch.isalnum() or ch == "-")
    ids_path = workdir / f"{space}.ids"
    spec = {
        "contender": cell.contender,
        "base_url": server.base_url,
        "space": space,
        "page_size": config.page_size,
        "concurrency": CONCURRENCY,
        "retry_delay": cell.retry_delay,
        "workdir": str(workdir),
        "lag": cell.lag,
        "read_ahead_bytes": cell.read_ahead_bytes,
        "ids_path": str(ids_path),
    }
    run = Run(cell.key, round_no)
    busy0, srv0 = _busy_seconds(), server.cpu_seconds()
    try:
        result = child(spec)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        result = {"error": str(exc)[:300]}
    run.server_cpu = server.cpu_seconds() - srv0
    stats = server.stats(space)
    run.requests = int(stats.get("requests", 0))
    run.faults = int(stats.get("503", 0)) + int(stats.get("429", 0))
    if "error" in result:
        run.error = result["error"]
        return run
    run.completed = True
    run.seconds = result["seconds"]
    run.client_cpu = result["cpu"]
    run.peak_mb = result["peak_mb"]
    run.lag = result.get("lag")
    run.info = result.get("info", {})
    # The other processes' CPU over the child's whole life (imports included).
    busy = _busy_seconds() - busy0
    run.other_cpu = max(0.0, busy - run.server_cpu - result.get("process_cpu", run.client_cpu))
    contender = CONTENDERS[cell.contender]
    if not contender.decodes:
        n_pages = max(1, -(-config.n_tasks // config.page_size))
        ok = run.info.get("bytes") == stats.get("bytes") and run.info.get("pages") == n_pages
        run.check = {"bytes": int(run.info.get("bytes", 0)), "pages": int(run.info["pages"])}
        run.verified = ok
        if not ok:
            run.error = f"read {run.info} but the server sent {stats}"
        return run
    ids = ids_path.read_text(encoding="ascii").split("\n") if ids_path.exists() else []
    ids_path.unlink(missing_ok=True)
    ids = [i for i in ids if i]
    run.tasks = len(ids)
    if config.live:
        run.check = _check_live(ids, config, initial, stats)
    else:
        run.check = _check_static(ids, initial)
    bad = {k: run.check[k] for k in ("duplicates", "missing", "unexpected") if run.check[k]}
    run.verified = not bad
    if bad:
        run.error = ", ".join(f"{v} {k}" for k, v in bad.items())
    return run


def run_rounds(plan: Plan, rounds: int) -> dict[str, list[Run]]:
    """Every cell once a round, in an order rotated per round within each group."""
    results: dict[str, list[Run]] = {cell.key: [] for cell in plan.cells}
    if not plan.cells:
        return results
    servers = {key: PageServer(config) for key, config in plan.servers.items()}
    try:
        _log(f"starting {len(servers)} page servers ...")
        for server in servers.values():
            server.launch()
        for key, server in servers.items():
            server.wait_ready()
            _log(f"  {key}: {server.config.n_tasks:,} tasks, ready in {server.render_seconds:.1f}s")
        initial = {
            key: set(task_ids(config.seed, config.n_tasks)) for key, config in plan.servers.items()
        }
        groups: dict[str, list[Cell]] = {}
        for cell in plan.cells:
            groups.setdefault(cell.group, []).append(cell)
        with tempfile.TemporaryDirectory(prefix="unpod-bench-") as tmp:
            for round_no in range(1, rounds + 1):
                for cells in groups.values():
                    shift = (round_no - 1) % len(cells)
                    for cell in cells[shift:] + cells[:shift]:
                        if cell.max_rounds is not None and round_no > cell.max_rounds:
                            continue
                        run = _run_once(
                            cell, round_no, servers[cell.server], initial[cell.server], Path(tmp)
                        )
                        results[cell.key].append(run)
                        _log(_describe(run, rounds))
    finally:
        for server in servers.values():
            server.stop()
    return results


def _describe(run: Run, rounds: int) -> str:
    status = "ok" if run.verified else f"FAILED: {run.error}"
    lag = f" lag p99={run.lag['p99_ms']:.1f}ms" if run.lag else ""
    return (
        f"round {run.round}/{rounds} {run.cell:<42} {run.seconds:7.3f}s req={run.requests} "
        f"faults={run.faults} cpu={run.client_cpu:.2f}s server={run.server_cpu:.2f}s "
        f"other={run.other_cpu:.2f}s rss={run.peak_mb:.0f}MB{lag} {status}"
    )


# --- memory ---------------------------------------------------------------------------------


@dataclass
class MemoryResult:
    import_mb: float
    python_mb: float
    rows: list[dict[str, Any]] = field(default_factory=list)


def run_memory(sizes: list[int], modes: list[str]) -> MemoryResult:
    """Peak RSS of one pull per mode and space size, each in a fresh process."""
    base = child("import")
    result = MemoryResult(import_mb=base["import_mb"], python_mb=base["python_mb"])
    _log(f"[memory] python alone {base['python_mb']:.1f} MB, with imports {base['import_mb']:.1f}")
    with tempfile.TemporaryDirectory(prefix="unpod-bench-mem-") as tmp:
        for size in sizes:
            config = ServerConfig(n_tasks=size)
            with PageServer(config) as server:
                expected = ids_digest(task_ids(config.seed, size))
                for mode in modes:
                    space = f"m-{size}-{mode}".replace("_", "-")
                    spec = {
                        "contender": mode,
                        "base_url": server.base_url,
                        "space": space,
                        "page_size": PAGE_SIZE,
                        "concurrency": CONCURRENCY,
                        "retry_delay": RETRY_DELAY,
                        "workdir": tmp,
                        "sink": "digest",
                    }
                    row: dict[str, Any] = {"mode": mode, "size": size}
                    try:
                        row.update(child(spec))
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        row["error"] = str(exc)[:300]
                    row["verified"] = row.get("tasks") == size and row.get("digest") == expected
                    result.rows.append(row)
                    _log(
                        f"[memory] {mode:<13} {size:>8,} tasks: peak RSS "
                        f"{row.get('peak_mb', float('nan')):.1f} MB in "
                        f"{row.get('seconds', float('nan')):.2f}s verified={row['verified']}"
                    )
    return result


# --- decode only ----------------------------------------------------------------------------


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
        ("unpod_async decode_typed_page", _decode.decode_typed_page),
        ("unpod_async decode_raw_page", _decode.decode_raw_page),
    ]
    _check_same_work(body, adapter, typed)
    rows = []
    for name, decode in decoders:
        timer = timeit.Timer(lambda decode=decode: decode(body))  # type: ignore[misc]
        number, _ = timer.autorange()
        per_page = [t / number for t in timer.repeat(repeat=repeat, number=number)]
        rows.append((name, statistics.median(per_page) * 1e6))
        _log(f"[decode] {name:<32} {rows[-1][1]:9.1f} us/page")
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
