"""Markdown and PNG output of a benchmark run, with the machine facts that frame it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
import os
import platform
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ._contenders import CONTENDERS
from ._pages import generator_name
from ._scenarios import CONCURRENCY, RETRY_DELAY, Cell, DecodeResult, MemoryResult, Plan, Run
from ._server import ServerConfig

__all__ = ["Ratio", "Report", "machine_facts"]

PACKAGES = ("unpod-async", "aiohttp", "msgspec", "tenacity", "httpx", "pydantic", "orjson")
RSS_BUDGET_MB = 30.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def filesystem_of(path: Path) -> str:
    """The type and device of the filesystem holding ``path`` (from /proc/mounts)."""
    best = ("", "unknown", "")
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                device, mount, kind = line.split()[:3]
                inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[0]):
                    best = (mount, kind, device)
    except OSError:
        pass
    return f"{best[1]} ({best[2]} on {best[0]})" if best[0] else "unknown"


def _git_head() -> str:
    head = Path(__file__).resolve().parent.parent / ".git"
    try:
        import subprocess

        out = subprocess.run(
            ["git", "-C", str(head.parent), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip()[:100] or "unknown"
    except OSError:
        return "unknown"


def machine_facts() -> dict[str, str]:
    facts = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit measured": _git_head(),
        "CPUs": str(os.cpu_count()),
        "CPU model": _cpu_model(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "export / bare writer filesystem": filesystem_of(Path(tempfile.gettempdir()).resolve()),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    facts.update({name: _version(name) for name in PACKAGES})
    facts["task JSON"] = generator_name()
    return facts


def _default(name: str) -> Any:
    """A default of ``UnpodClient``'s constructor, as the code at HEAD has it."""
    from unpod_async import UnpodClient

    return inspect.signature(UnpodClient).parameters[name].default


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _span(values: list[float], spec: str = ".2f") -> str:
    if not values:
        return "-"
    return f"{min(values):{spec}}-{max(values):{spec}}"


@dataclass
class Ratio:
    """One ratio, paired round by round: its median and spread over the rounds."""

    name: str
    values: list[float]
    target: str = ""  # e.g. ">= 1.0"
    note: str = ""

    @property
    def median(self) -> float | None:
        return _med(self.values)

    @property
    def verdict(self) -> str:
        if not self.target or self.median is None:
            return "n/a" if self.target else ""
        op, bound = self.target.split()
        ok = self.median >= float(bound) if op == ">=" else self.median <= float(bound)
        return "PASS" if ok else "**MISS**"

    def cell(self, spec: str = ".2f") -> str:
        if self.median is None:
            return "-"
        return f"**{self.median:{spec}}** ({_span(self.values, spec)}, n={len(self.values)})"


@dataclass
class Report:
    argv: str
    rounds: int
    plan: Plan
    quick: bool = False
    runs: dict[str, list[Run]] = field(default_factory=dict)
    memory: MemoryResult | None = None
    decode: DecodeResult | None = None
    wall_seconds: float = 0.0
    facts: dict[str, str] = field(default_factory=machine_facts)

    # --- saved and loaded ---------------------------------------------------------------

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def load(cls, text: str) -> Report:
        doc = json.loads(text)
        plan = doc["plan"]
        report = cls(
            argv=doc["argv"],
            rounds=doc["rounds"],
            plan=Plan(
                servers={k: ServerConfig(**v) for k, v in plan["servers"].items()},
                cells=[Cell(**c) for c in plan["cells"]],
                memory_sizes=plan["memory_sizes"],
                memory_modes=plan["memory_modes"],
            ),
            quick=doc["quick"],
            runs={k: [Run(**r) for r in v] for k, v in doc["runs"].items()},
            memory=MemoryResult(**doc["memory"]) if doc["memory"] else None,
            decode=None,
            wall_seconds=doc["wall_seconds"],
            facts=doc["facts"],
        )
        if doc["decode"]:
            dec = doc["decode"]
            report.decode = DecodeResult(
                dec["page_bytes"], dec["tasks"], [tuple(r) for r in dec["rows"]]
            )
        return report

    # --- the numbers ---------------------------------------------------------------------

    def cell(self, key: str) -> Cell | None:
        return next((c for c in self.plan.cells if c.key == key), None)

    def ok(self, key: str) -> dict[int, Run]:
        return {r.round: r for r in self.runs.get(key, []) if r.verified}

    def paired(self, a: str, b: str, f: Callable[[Run, Run], float | None]) -> list[float]:
        """``f(run of a, run of b)`` for each round where both have a verified run."""
        ra, rb = self.ok(a), self.ok(b)
        values = [f(ra[n], rb[n]) for n in sorted(ra) if n in rb]
        return [v for v in values if v is not None]

    def speed(self, fast: str, slow: str) -> list[float]:
        """time of ``slow`` / time of ``fast``, round by round (>1: ``fast`` is faster)."""
        return self.paired(fast, slow, lambda x, y: y.seconds / x.seconds)

    def ratios(self) -> list[Ratio]:
        out: list[Ratio] = []

        def add(name: str, values: list[float], target: str = "", note: str = "") -> None:
            if values:
                out.append(Ratio(name, values, target, note))

        add(
            "CPU-bound: iter_tasks speed / bare_stream",
            self.speed("cpu/iter_tasks", "cpu/bare_stream"),
            ">= 1.0",
        )
        add(
            "CPU-bound: export_jsonl speed / bare_writer",
            self.speed("cpu/export_jsonl", "cpu/bare_writer"),
            ">= 1.0",
        )
        cpu = self.paired  # the same pairs by the client's CPU seconds: robust to contention
        add(
            "CPU-bound: iter_tasks / bare_stream by client CPU time (bare CPU / ours)",
            cpu("cpu/iter_tasks", "cpu/bare_stream", lambda x, y: y.client_cpu / x.client_cpu),
            note="informative: less sensitive to other jobs than wall time",
        )
        add(
            "CPU-bound: export_jsonl / bare_writer by client CPU time (bare CPU / ours)",
            cpu("cpu/export_jsonl", "cpu/bare_writer", lambda x, y: y.client_cpu / x.client_cpu),
            note="informative: less sensitive to other jobs than wall time",
        )
        for name in ("iter_tasks", "bare_stream", "export_jsonl", "bare_writer", "orjson"):
            add(
                f"CPU-bound: {name} speed / raw_read (share of the transport ceiling)",
                self.speed(f"cpu/{name}", "cpu/raw_read"),
            )
        for name in ("orjson", "httpx_pydantic", "naive"):
            add(
                f"CPU-bound: iter_tasks speed / {name}", self.speed("cpu/iter_tasks", f"cpu/{name}")
            )
        for name in ("iter_tasks", "export_jsonl"):
            add(
                f"faults: {name} time clean / time with 5% first-attempt 503",
                self.speed(f"faults/{name} 503", f"faults/{name} clean"),
                ">= 0.9",
            )
        add(
            "faults: iter_tasks (retry_delay=0.5, the client's default) clean / 503",
            self.speed("faults/iter_tasks 503, retry_delay=0.5", "faults/iter_tasks clean"),
            note="informative: the client's default backoff",
        )
        add(
            "faults: iter_tasks (retry_delay=0.5, read_ahead_bytes=64 MiB) clean / 503",
            self.speed(
                "faults/iter_tasks 503, retry_delay=0.5, read_ahead_bytes=64 MiB",
                "faults/iter_tasks clean",
            ),
            note="informative: the default backoff with a 4x window",
        )
        for name in ("iter_tasks", "export_jsonl"):
            for kind, bound in (("arrivals", "1.1"), ("arrivals+deletes", "1.25")):
                add(
                    f"live ({kind}): {name} requests / static pull's",
                    self.paired(
                        f"live/{name} {kind}",
                        f"faults/{name} clean",
                        lambda x, y: x.requests / y.requests,
                    ),
                    f"<= {bound}",
                )
        for ours, bare in (("iter_tasks", "bare_stream"), ("export_jsonl", "bare_writer")):
            add(
                f"loop lag p99: {ours} / {bare}",
                self.paired(
                    f"lag/{ours}",
                    f"lag/{bare}",
                    lambda x, y: x.lag["p99_ms"] / y.lag["p99_ms"] if x.lag and y.lag else None,
                ),
                "<= 1.0",
            )
        return out

    def live_correct(self) -> list[tuple[str, int, int]]:
        """(cell, runs verified exactly-once, runs) of our contenders on a live space."""
        rows = []
        for cell in self.plan.cells:
            if cell.scenario == "live" and cell.contender != "bare_stream":
                runs = self.runs.get(cell.key, [])
                rows.append((cell.label, sum(r.verified for r in runs), len(runs)))
        return rows

    def rss_growth(self) -> dict[str, tuple[float, float]]:
        """mode -> (RSS at the middle size - smallest, RSS at the largest - smallest)."""
        growth: dict[str, tuple[float, float]] = {}
        if self.memory is None:
            return growth
        for mode in dict.fromkeys(r["mode"] for r in self.memory.rows):
            rows = sorted(
                (r for r in self.memory.rows if r["mode"] == mode and "peak_mb" in r),
                key=lambda r: r["size"],
            )
            if len(rows) >= 2:
                mid = rows[len(rows) // 2]["peak_mb"] - rows[0]["peak_mb"]
                growth[mode] = (mid, rows[-1]["peak_mb"] - rows[0]["peak_mb"])
        return growth

    def targets(self) -> list[tuple[str, str, str, str]]:
        """(target, measured, required, verdict) rows."""
        rows = [
            (r.name, r.cell(), r.target, r.verdict) for r in self.ratios() if r.target and r.values
        ]
        for label, good, total in self.live_correct():
            verdict = "PASS" if total and good == total else "**MISS**"
            rows.append(
                (
                    f"live: {label}: every task that existed throughout, exactly once",
                    f"{good}/{total} runs",
                    "all runs",
                    verdict,
                )
            )
        growth = self.rss_growth().get("export_jsonl")
        if growth is not None and self.memory is not None:
            sizes = sorted({r["size"] for r in self.memory.rows})
            ok = growth[1] <= RSS_BUDGET_MB
            rows.append(
                (
                    f"peak RSS: export of {sizes[-1]:,} tasks minus {sizes[0]:,}",
                    f"**{growth[1]:.1f} MiB** ({sizes[len(sizes) // 2]:,}: {growth[0]:+.1f} MiB)",
                    f"<= {RSS_BUDGET_MB:g} MiB",
                    "PASS" if ok else "**MISS**",
                )
            )
        return rows

    # --- markdown ----------------------------------------------------------------------------

    def markdown(self) -> str:
        out = ["# unpod-async benchmark results", ""]
        out.append(f"Command: `{self.argv}`; total wall time **{self.wall_seconds:.0f} s**.")
        if self.quick:
            out += [
                "",
                "**Smoke configuration (`--quick`): spaces far too small for any verdict below "
                "to mean anything.**",
            ]
        out += ["", "| machine | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.facts.items()]
        out += ["", *self._method(), "", *self._contenders()]
        out += self._targets_section()
        out += self._ratios_section()
        out += self._timed_sections()
        out += self._lag_section()
        out += self._live_section()
        out += self._memory_section()
        out += self._decode_section()
        out += self._profiles_section()
        return "\n".join(out) + "\n"

    def _profiles_section(self, top: int = 8) -> list[str]:
        """The head of each py-spy summary in benchmarks/profiles (profile_hot_path.py)."""
        files = sorted((Path(__file__).resolve().parent / "profiles").glob("*.txt"))
        if not files or self.quick:
            return []
        out = [
            "## Profiles (py-spy, CPU-bound)",
            "",
            "`python -m benchmarks.profile_hot_path`, run separately from the timed rounds; the "
            "whole summaries (inclusive times, modules, the export's writer thread) are in "
            "[profiles/](profiles/). Top self-time frames of the event-loop thread:",
            "",
        ]
        for path in files:
            lines = path.read_text(encoding="utf-8").splitlines()
            head = lines[0].removeprefix("# ") if lines else path.stem
            body = [x for x in lines if x.strip().endswith(")") and "%" in x][:top]
            worker = next((x for x in lines if x.startswith("## worker thread")), None)
            out += [f"**{head}**", "", "```", *body, "```", ""]
            if worker:
                out += [
                    worker.removeprefix("## ").replace("; its self time, in % of the pull", "."),
                    "",
                ]
        return out

    def _method(self) -> list[str]:
        servers = self.plan.servers
        sizes = ", ".join(
            f"`{k}` {c.n_tasks:,} tasks"
            + (f" at {c.latency * 1000:g} ms" if c.latency else "")
            + (f", {c.p503:.0%} first-attempt 503" if c.p503 else "")
            + (f", an arrival every {c.arrive_every} requests" if c.arrive_every else "")
            + (f", a delete every {c.delete_every}" if c.delete_every else "")
            for k, c in servers.items()
        )
        return [
            "## Method",
            "",
            "- **Page servers** run in processes of their own (aiohttp.web on 127.0.0.1), one "
            f"per configuration: {sizes}. Pages hold 100 realistic tasks (see `task JSON` above: "
            f"{self._task_bytes()} on average, transcripts, non-ASCII text). A static space's "
            "pages are rendered once at startup; a live one cuts each page per request from "
            "its task list, and each run gets its own copy of the space.",
            "- **Every measured pull runs in a fresh interpreter** (`benchmarks/_child.py`): all "
            "imports before the clock; the clock covers creating and closing the session or "
            "client and the whole pull. Peak RSS is the child's VmHWM right after the pull.",
            f"- **Rounds alternate**: {self.rounds} round(s); each round runs every cell once, "
            "in an order rotated per round within each group of cells compared with each "
            "other. A ratio is computed **per round** from two runs a few seconds apart; the "
            "tables give its **median** and its **spread (min-max over the rounds)**. "
            "httpx_pydantic and naive run fewer rounds (their ratios are wide).",
            f"- Concurrency {CONCURRENCY} everywhere (`UnpodClient(concurrency=16, "
            f"retry_delay={RETRY_DELAY})`, `read_ahead_bytes` at its default of "
            f"{_default('read_ahead_bytes') / 2**20:g} MiB; the bare "
            "loops' semaphore and connector limit are 16). A 503's first retry waits "
            f"{RETRY_DELAY / 8:g}-{RETRY_DELAY / 4:g} s, the next from "
            f"{RETRY_DELAY / 2:g}-{RETRY_DELAY:g} s, doubling; two faulty cells use the "
            f"client's default `retry_delay={_default('retry_delay'):g}` (one of them with a "
            "64 MiB window).",
            "- **Every run is verified**: static spaces: the ids delivered (read back from the "
            "file for the writers) equal the space's, no duplicates; live spaces: every task "
            "that existed throughout the pull exactly once, nothing that never existed (tasks "
            "that arrived or were deleted during the pull may or may not appear, once); "
            "raw_read: the bytes read equal the bytes the server sent.",
            "- **Loop lag**: a task beside the pull sleeps 1 ms at a time and records how late "
            "it wakes; p50/p99/max over the run's samples.",
            "- The machine is shared (2 cores) with other jobs: `other CPU` is what the rest of "
            "the machine (neither the child nor the page server) used over a child's life, "
            "imports included: the noise a run suffered, at most.",
        ]

    def _task_bytes(self) -> str:
        dec = self.decode
        return f"~{dec.page_bytes / dec.tasks / 1000:.1f} KB" if dec else "~2.6 KB"

    def _contenders(self) -> list[str]:
        used = dict.fromkeys(c.contender for c in self.plan.cells)
        used.update(dict.fromkeys(self.plan.memory_modes))
        out = ["| contender | what it does | what it omits |", "|---|---|---|"]
        for name in used:
            c = CONTENDERS[name]
            out.append(f"| {name} | {c.does} | {c.omits} |")
        return [*out, ""]

    def _targets_section(self) -> list[str]:
        rows = self.targets()
        if not rows:
            return []
        out = [
            "## Targets",
            "",
            "| target | measured: median (min-max, rounds) | required | verdict |",
            "|---|---|---|---|",
        ]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        analysis = Path(__file__).resolve().parent / "profiles" / "ANALYSIS.md"
        if analysis.exists() and not self.quick and any("MISS" in r[3] for r in rows):
            first = analysis.read_text(encoding="utf-8").splitlines()[0].removeprefix("# ")
            out += [
                "",
                "What stands in the way of each miss, from py-spy profiles: "
                f"[profiles/ANALYSIS.md](profiles/ANALYSIS.md) ({first}).",
            ]
        return [*out, ""]

    def _ratios_section(self) -> list[str]:
        ratios = self.ratios()
        if not ratios:
            return []
        out = [
            "## Every ratio of this run",
            "",
            "Speed ratio `X / Y` = time of Y / time of X in the same round (> 1: X is faster); "
            "`clean / 503` likewise (1.0: the faults cost nothing); requests and lag ratios "
            "are X's / Y's.",
            "",
            "| ratio | median (min-max, rounds) | target |",
            "|---|---|---|",
        ]
        for r in ratios:
            target = f"{r.target}: {r.verdict}" if r.target else r.note
            out.append(f"| {r.name} | {r.cell()} | {target} |")
        return [*out, ""]

    def _timed_sections(self) -> list[str]:
        titles = {
            "cpu": "CPU-bound: no added latency",
            "lag": "Loop lag runs (CPU-bound, a 1 ms sleeper beside the pull)",
            "faults": "50 ms pages, concurrency 16: clean and with 5% first-attempt 503",
            "live": "Live space, 50 ms pages, concurrency 16",
        }
        out: list[str] = []
        for scenario, title in titles.items():
            cells = [c for c in self.plan.cells if c.scenario == scenario]
            if not cells:
                continue
            config = self.plan.servers[cells[0].server]
            out += [f"## {title}", ""]
            out.append(
                f"{config.n_tasks:,} tasks, {config.pages:,} pages of {config.page_size}."
                + (
                    f" Ideal time (pages / concurrency x latency): "
                    f"{config.pages / CONCURRENCY * config.latency:.3f} s."
                    if config.latency
                    else ""
                )
            )
            out += [
                "",
                "| cell | runs verified | median s (min-max) | tasks/s | requests | client CPU s | "
                "server CPU s | other CPU s | peak RSS MiB |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for cell in cells:
                runs = self.runs.get(cell.key, [])
                ok = [r for r in runs if r.completed]
                if not ok:
                    error = runs[0].error if runs else "no run"
                    out.append(f"| {cell.label} | 0/{len(runs)} | failed: {error} |||||||")
                    continue
                secs = [r.seconds for r in ok]
                median = statistics.median(secs)
                tasks = statistics.median(r.tasks for r in ok) or config.n_tasks
                out.append(
                    f"| {cell.label} | {sum(r.verified for r in runs)}/{len(runs)} "
                    f"| **{median:.3f}** "
                    f"({_span(secs, '.3f')}) | {tasks / median:,.0f} "
                    f"| {statistics.median(r.requests for r in ok):.0f} "
                    f"| {statistics.median(r.client_cpu for r in ok):.2f} "
                    f"| {statistics.median(r.server_cpu for r in ok):.2f} "
                    f"| {statistics.median(r.other_cpu for r in ok):.2f} "
                    f"| {statistics.median(r.peak_mb for r in ok):.0f} |"
                )
            failed = [r for c in cells for r in self.runs.get(c.key, []) if not r.verified]
            if failed:
                out.append("")
            for r in failed:
                expected = " (expected: no repairs)" if r.cell.startswith("live/bare") else ""
                out.append(f"- not verified: {r.cell}, round {r.round}: {r.error}{expected}")
            if scenario == "faults":
                faults = [r.faults for c in cells for r in self.ok(c.key).values() if r.faults]
                if faults:
                    out += ["", f"503s served per faulty run: {statistics.median(faults):.0f}."]
            out.append("")
        return out

    def _lag_section(self) -> list[str]:
        cells = [c for c in self.plan.cells if c.lag]
        if not cells:
            return []
        out = [
            "## Event-loop lag while pulling (CPU-bound)",
            "",
            "| contender | p50 ms | p99 ms: median (min-max) | max ms (median) | samples/run |",
            "|---|---|---|---|---|",
        ]
        for cell in cells:
            lags = [r.lag for r in self.ok(cell.key).values() if r.lag]
            if not lags:
                continue
            p99 = [x["p99_ms"] for x in lags]
            out.append(
                f"| {cell.contender} | {statistics.median(x['p50_ms'] for x in lags):.1f} "
                f"| **{statistics.median(p99):.1f}** ({_span(p99, '.1f')}) "
                f"| {statistics.median(x['max_ms'] for x in lags):.1f} "
                f"| {statistics.median(x['samples'] for x in lags):.0f} |"
            )
        return [*out, ""]

    def _live_section(self) -> list[str]:
        cells = [c for c in self.plan.cells if c.scenario == "live"]
        if not cells:
            return []
        out = [
            "## Live space: requests and correctness",
            "",
            "Static pull = the clean 50 ms pull of the same space size. `exactly once` counts "
            "runs where every task that existed throughout came out exactly once (bare_stream "
            "is shown for reference: it has no repairs).",
            "",
            "| cell | requests (min-max) | static pull | arrived / delivered | deleted "
            "| repairs | duplicates dropped | missing | duplicates out | exactly once |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for cell in cells:
            runs = self.runs.get(cell.key, [])
            done = [r for r in runs if r.check]
            if not done:
                continue
            static = self.ok(f"faults/{cell.contender} clean")
            req = [r.requests for r in done]

            def med(name: str, rows: list[Run] = done) -> str:
                return f"{statistics.median(r.check.get(name, 0) for r in rows):.0f}"

            def info(name: str, rows: list[Run] = done) -> str:
                values = [r.info[name] for r in rows if name in r.info]
                return f"{statistics.median(values):.0f}" if values else "-"

            static_req = (
                f"{statistics.median(r.requests for r in static.values()):.0f}" if static else "-"
            )
            out.append(
                f"| {cell.label} | {statistics.median(req):.0f} ({_span(req, '.0f')}) "
                f"| {static_req} | {med('arrived')} / {med('arrivals_delivered')} "
                f"| {med('deleted')} | {info('repairs')} | {info('duplicates')} "
                f"| {med('missing')} | {med('duplicates')} "
                f"| {sum(r.verified for r in runs)}/{len(runs)} |"
            )
        return [*out, ""]

    def _memory_section(self) -> list[str]:
        mem = self.memory
        if mem is None:
            return []
        out = [
            "## Memory: peak RSS of a fresh process pulling a whole space",
            "",
            f"No added latency. Python alone {mem.python_mb:.1f} MiB; after the imports (the "
            f"harness imports every contender's libraries) **{mem.import_mb:.1f} MiB**. The "
            "consumer folds the ids into a digest as they come (a list of 500,000 ids would be "
            "what the RSS measures); the files are read back after the peak is taken.",
            "",
            "| contender | tasks | peak RSS MiB | over imports MiB | seconds | verified |",
            "|---|---|---|---|---|---|",
        ]
        for row in mem.rows:
            if "peak_mb" not in row:
                out.append(f"| {row['mode']} | {row['size']:,} | failed: {row.get('error')} ||||")
                continue
            out.append(
                f"| {row['mode']} | {row['size']:,} | {row['peak_mb']:.1f} "
                f"| {row['peak_mb'] - mem.import_mb:.1f} | {row['seconds']:.2f} "
                f"| {'yes' if row['verified'] else 'NO'} |"
            )
        out.append("")
        sizes = sorted({r["size"] for r in mem.rows})
        for mode, (mid, top) in self.rss_growth().items():
            out.append(
                f"- {mode}: {sizes[len(sizes) // 2]:,} minus {sizes[0]:,}: **{mid:+.1f} MiB**; "
                f"{sizes[-1]:,} minus {sizes[0]:,}: **{top:+.1f} MiB**"
            )
        return [*out, ""]

    def _decode_section(self) -> list[str]:
        dec = self.decode
        if dec is None:
            return []
        typed = dict(dec.rows).get("msgspec typed (TasksPage)")
        out = [
            f"## Decode only: one page ({dec.tasks} tasks, {dec.page_bytes / 1024:.0f} KiB)",
            "",
            "| decoder | median us/page | us/task | MB/s | time vs msgspec typed |",
            "|---|---|---|---|---|",
        ]
        for name, micros in dec.rows:
            vs = f"{micros / typed:.2f}x" if typed else "-"
            out.append(
                f"| {name} | {micros:,.0f} | {micros / dec.tasks:.1f} "
                f"| {dec.page_bytes / micros:,.0f} | {vs} |"
            )
        return [*out, ""]

    # --- chart -------------------------------------------------------------------------------

    def chart(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 3, figsize=(16, 9))
        ratios = {r.name: r for r in self.ratios()}

        def bars(ax: Any, items: list[tuple[str, str]], title: str, lines: list[float]) -> None:
            shown = [(label, ratios[name]) for label, name in items if name in ratios]
            if not shown:
                ax.set_visible(False)
                return
            meds = [r.median or 0.0 for _, r in shown]
            low = [m - min(r.values) for m, (_, r) in zip(meds, shown, strict=True)]
            high = [max(r.values) - m for m, (_, r) in zip(meds, shown, strict=True)]
            colors = ["tab:green" if r.verdict == "PASS" else "tab:red" for _, r in shown]
            colors = [
                c if r.target else "tab:gray" for c, (_, r) in zip(colors, shown, strict=True)
            ]
            ax.bar(range(len(shown)), meds, yerr=[low, high], capsize=4, color=colors)
            ax.set_xticks(range(len(shown)), [label for label, _ in shown], fontsize=8)
            for x, m in enumerate(meds):
                ax.annotate(f"{m:.2f}", (x, m), ha="center", va="bottom", fontsize=8)
            for y in lines:
                ax.axhline(y, color="black", linestyle="--", linewidth=1)
            ax.set_title(title, fontsize=10)

        bars(
            axes[0][0],
            [
                ("iter_tasks\n/ bare_stream", "CPU-bound: iter_tasks speed / bare_stream"),
                ("export_jsonl\n/ bare_writer", "CPU-bound: export_jsonl speed / bare_writer"),
                (
                    "iter_tasks\n/ raw_read",
                    "CPU-bound: iter_tasks speed / raw_read (share of the transport ceiling)",
                ),
                (
                    "export_jsonl\n/ raw_read",
                    "CPU-bound: export_jsonl speed / raw_read (share of the transport ceiling)",
                ),
            ],
            "CPU-bound speed ratio (target >= 1.0 vs its bare)",
            [1.0],
        )
        bars(
            axes[0][1],
            [
                (
                    "iter_tasks",
                    "faults: iter_tasks time clean / time with 5% first-attempt 503",
                ),
                (
                    "export_jsonl",
                    "faults: export_jsonl time clean / time with 5% first-attempt 503",
                ),
                (
                    "iter_tasks\nretry_delay=0.5",
                    "faults: iter_tasks (retry_delay=0.5, the client's default) clean / 503",
                ),
                (
                    "iter_tasks\nretry_delay=0.5\n64 MiB window",
                    "faults: iter_tasks (retry_delay=0.5, read_ahead_bytes=64 MiB) clean / 503",
                ),
            ],
            "5% first-attempt 503: time clean / time faulty (target >= 0.9)",
            [0.9],
        )
        bars(
            axes[0][2],
            [
                (f"{short}\n{kind}", f"live ({kind}): {name} requests / static pull's")
                for name, short in (("iter_tasks", "iter"), ("export_jsonl", "export"))
                for kind in ("arrivals", "arrivals+deletes")
            ],
            "live space: requests / static pull (targets 1.1, 1.25)",
            [1.1, 1.25],
        )
        ax = axes[1][0]
        lag_cells = [c for c in self.plan.cells if c.lag]
        p99s = [[r.lag["p99_ms"] for r in self.ok(c.key).values() if r.lag] for c in lag_cells]
        if any(p99s):
            meds = [statistics.median(v) if v else 0.0 for v in p99s]
            ax.bar(
                range(len(lag_cells)),
                meds,
                yerr=[
                    [m - min(v or [0]) for m, v in zip(meds, p99s, strict=True)],
                    [max(v or [0]) - m for m, v in zip(meds, p99s, strict=True)],
                ],
                capsize=4,
                color=[
                    "tab:gray" if c.contender.startswith("bare") else "tab:blue" for c in lag_cells
                ],
            )
            ax.set_xticks(range(len(lag_cells)), [c.contender for c in lag_cells], fontsize=8)
            for x, m in enumerate(meds):
                ax.annotate(f"{m:.1f}", (x, m), ha="center", va="bottom", fontsize=8)
            ax.set_ylabel("ms")
            ax.set_title("event-loop lag p99 while pulling (ours <= bare)", fontsize=10)
        else:
            ax.set_visible(False)
        ax = axes[1][1]
        if self.memory is not None and self.memory.rows:
            for mode in dict.fromkeys(r["mode"] for r in self.memory.rows):
                rows = sorted(
                    (r for r in self.memory.rows if r["mode"] == mode and "peak_mb" in r),
                    key=lambda r: r["size"],
                )
                ax.plot(
                    [r["size"] for r in rows],
                    [r["peak_mb"] - self.memory.import_mb for r in rows],
                    marker="o",
                    label=mode,
                )
            ax.set_xscale("log")
            ax.set_xlabel("tasks in the space")
            ax.set_ylabel("peak RSS over imports, MiB")
            ax.legend(fontsize=8)
            ax.set_title("peak RSS by space size (export: 500k - 10k <= 30 MiB)", fontsize=10)
        else:
            ax.set_visible(False)
        ax = axes[1][2]
        cpu_cells = [c for c in self.plan.cells if c.scenario == "cpu"]
        rates = []
        for c in cpu_cells:
            ok = list(self.ok(c.key).values())
            if ok:
                n = self.plan.servers[c.server].n_tasks
                rates.append((c.contender, n / statistics.median(r.seconds for r in ok)))
        if rates:
            ax.barh(
                range(len(rates)),
                [r for _, r in rates],
                color=[
                    "tab:blue" if n in ("iter_tasks", "export_jsonl") else "tab:gray"
                    for n, _ in rates
                ],
            )
            ax.set_yticks(range(len(rates)), [n for n, _ in rates], fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("tasks/s (median)")
            ax.set_title("CPU-bound throughput", fontsize=10)
        else:
            ax.set_visible(False)
        fig.suptitle(
            f"unpod-async benchmarks ({self.facts['date']}; medians, bars = min-max over "
            f"{self.rounds} alternating rounds)",
            fontsize=11,
        )
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
