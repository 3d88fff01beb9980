"""Markdown and PNG output of a benchmark run, with the machine facts that frame it."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ._contenders import CONTENDERS
from ._pages import generator_name
from ._scenarios import RETRY_DELAY, DecodeResult, MemoryResult, TimedResult

__all__ = ["Report", "machine_facts"]

PACKAGES = ("unpod-async", "aiohttp", "msgspec", "tenacity", "httpx", "pydantic", "orjson")

# (scenario, contender, versus, minimum speed ratio)
# "iter" targets are checked twice: streamed (iter_tasks) and holding every task like the
# other in-memory contenders do (get_all_tasks, the strict like-for-like comparison).
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("a", "iter_tasks", "bare", 0.95),
    ("a", "get_all_tasks", "bare", 0.95),
    ("a", "export_jsonl", "bare", 0.95),
    ("b", "iter_tasks", "bare", 0.9),
    ("b", "get_all_tasks", "bare", 0.9),
    ("b", "export_jsonl", "bare", 1.0),
    ("b", "iter_tasks", "httpx", 5.0),
    ("b", "get_all_tasks", "httpx", 5.0),
    ("b", "export_jsonl", "httpx", 5.0),
    ("b", "iter_tasks", "naive", 3.0),
    ("b", "get_all_tasks", "naive", 3.0),
    ("b", "export_jsonl", "naive", 3.0),
)
RATIOS = tuple(
    (fast, slow)
    for fast in ("iter_tasks", "get_all_tasks", "export_jsonl")
    for slow in ("bare", "httpx", "naive")
)
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


def machine_facts() -> dict[str, str]:
    facts = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPUs": str(os.cpu_count()),
        "CPU model": _cpu_model(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    facts.update({name: _version(name) for name in PACKAGES})
    facts["task JSON"] = generator_name()
    return facts


def _fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def speed_ratio(
    result: TimedResult, fast: str, slow: str, other: TimedResult | None = None
) -> tuple[float | None, tuple[float, float] | None]:
    """median time of ``slow`` / median time of ``fast`` (>1: ``fast`` is faster), and the
    range of the same ratio paired round by round. ``other`` holds ``slow`` if not ``result``."""
    base = other or result
    t_fast, t_slow = result.median(fast), base.median(slow)
    if t_fast is None or t_slow is None:
        return None, None
    slow_by_round = {r.round: r.seconds for r in base.ok_runs(slow)}
    paired = [
        slow_by_round[r.round] / r.seconds for r in result.ok_runs(fast) if r.round in slow_by_round
    ]
    return t_slow / t_fast, ((min(paired), max(paired)) if paired else None)


def _verdict(value: float | None, minimum: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value >= minimum else "**FAIL**"


@dataclass
class Report:
    argv: str
    rounds: int
    quick: bool = False
    timed: list[TimedResult] = field(default_factory=list)
    memory: MemoryResult | None = None
    decode: DecodeResult | None = None
    wall_seconds: float = 0.0
    facts: dict[str, str] = field(default_factory=machine_facts)

    def by_key(self, key: str) -> TimedResult | None:
        return next((r for r in self.timed if r.scenario.key == key), None)

    # --- markdown ----------------------------------------------------------------------------

    def markdown(self) -> str:
        out = ["# unpod-async benchmark results", ""]
        out.append(f"Command: `{self.argv}`; total wall time **{self.wall_seconds:.0f} s**.")
        out.append("")
        out += ["| machine | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.facts.items()]
        out += ["", *self._method(), ""]
        for result in self.timed:
            out += self._timed_section(result)
        out += self._memory_section()
        out += self._decode_section()
        out += self._targets_section()
        return "\n".join(out) + "\n"

    def _method(self) -> list[str]:
        return [
            "## Method",
            "",
            f"- A page server runs in a separate process (aiohttp.web on 127.0.0.1) and serves "
            f"pages rendered once at startup; {self.rounds} round(s), contenders alternate "
            "round-robin (order rotated each round); medians are reported.",
            "- Every run is verified: the count and the set of task ids must equal the space's.",
            "- The `runs` column counts each contender's runs: in the default run naive and httpx "
            "run fewer rounds (see `default_scenarios`) to keep the whole run under 10 minutes; "
            "their gap to the package is wide enough that fewer runs do not change a verdict.",
            "- Speed ratio `X/Y` = median time of Y / median time of X (>1: X faster); the range "
            "in brackets is the same ratio paired round by round.",
            f"- Client retry backoff `retry_delay={RETRY_DELAY}` s (a 503 retry waits "
            f"{RETRY_DELAY / 2:g}-{RETRY_DELAY:g} s, a 429 at least its Retry-After of 0.1 s); "
            "naive and httpx retry 429/503 themselves: Retry-After if given, else "
            f"{RETRY_DELAY:g} s doubling. bare never retries, so it sits out the faulty scenario.",
            "- Client and server share the machine's CPUs: CPU columns are seconds of CPU per "
            "run; `server share` is server CPU / wall time (1.0 = one whole core); `other procs` "
            "is CPU used meanwhile by the rest of the machine (other jobs: noise).",
            "",
            "| contender | what it is |",
            "|---|---|",
            *(f"| {c.name} | {c.description} |" for c in CONTENDERS.values()),
        ]

    def _timed_section(self, result: TimedResult) -> list[str]:
        sc = result.scenario
        out = [
            f"## ({sc.key}) {sc.title}",
            "",
            f"{result.expected_tasks:,} tasks, {sc.server.pages:,} pages of "
            f"{sc.server.page_size}, concurrency {sc.concurrency}; server rendered the pages in "
            f"{result.render_seconds:.1f} s.",
            "",
            "| contender | runs | median s | min s | max s | tasks/s | requests/run | "
            "client CPU s | server CPU s | server share | other procs CPU s | verified |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, runs in result.runs.items():
            ok = [r for r in runs if r.verified]
            if not ok:
                error = runs[0].error if runs else "no run"
                out.append(f"| {name} | {len(runs)} | failed: {error} | | | | | | | | | no |")
                continue
            secs = [r.seconds for r in ok]
            median = statistics.median(secs)
            share = statistics.median(r.server_cpu / r.seconds for r in ok)
            out.append(
                f"| {name} | {len(runs)} | **{median:.3f}** | {min(secs):.3f} | {max(secs):.3f} "
                f"| {result.expected_tasks / median:,.0f} "
                f"| {statistics.median(r.requests for r in ok):.0f} "
                f"| {statistics.median(r.client_cpu for r in ok):.2f} "
                f"| {statistics.median(r.server_cpu for r in ok):.2f} | {share:.2f} "
                f"| {statistics.median(r.other_cpu for r in ok):.2f} | {len(ok)}/{len(runs)} |"
            )
        for name, reason in result.skipped.items():
            if reason != "not part of this scenario":
                out.append(f"| {name} | 0 | skipped: {reason} | | | | | | | | | |")
        all_ok = [r for runs in result.runs.values() for r in runs if r.verified]
        if all_ok:
            worst = max(all_ok, key=lambda r: r.server_cpu / r.seconds)
            out += [
                "",
                f"Server CPU share: at most **{worst.server_cpu / worst.seconds:.2f}** of one core "
                f"(during {worst.contender}, round {worst.round}); the server "
                + (
                    "is NOT the bottleneck."
                    if worst.server_cpu / worst.seconds < 0.9
                    else "is close to a full core: it may be a bottleneck here."
                ),
            ]
        out += ["", "| speed ratio | value | per-round range |", "|---|---|---|"]
        for fast, slow in RATIOS:
            value, paired = speed_ratio(result, fast, slow)
            if value is not None:
                span = f"{paired[0]:.2f}-{paired[1]:.2f}" if paired else "-"
                out.append(f"| {fast}/{slow} | {value:.2f} | {span} |")
        ideal = sc.ideal_seconds
        if ideal:
            for name in result.runs:
                typical = result.median(name)
                if typical:
                    out.append(
                        f"| {name} vs ideal {ideal:.3f} s (pages / concurrency x latency) "
                        f"| {ideal / typical:.2f} | time {typical / ideal:.2f}x ideal |"
                    )
        base = self.by_key(sc.baseline) if sc.baseline else None
        if base is not None:
            for name in result.runs:
                value, paired = speed_ratio(result, name, name, other=base)
                if value is not None:
                    span = f"{paired[0]:.2f}-{paired[1]:.2f}" if paired else "-"
                    out.append(
                        f"| {name} ({sc.key}) / {name} ({base.scenario.key}) "
                        f"| {value:.2f} | {span} |"
                    )
        faults = [r.faults for runs in result.runs.values() for r in runs]
        if any(faults):
            out += ["", f"Faults served per run: {statistics.median(faults):.0f} (median)."]
        out.append("")
        return out

    def _memory_section(self) -> list[str]:
        mem = self.memory
        if mem is None:
            return []
        out = [
            "## (d) Memory: peak RSS of a fresh process pulling a whole space",
            "",
            f"Baseline: python alone {mem.python_mb:.1f} MB; after `import unpod_async` "
            f"**{mem.import_mb:.1f} MB**. Peak RSS is the child's VmHWM (/proc/self/status): "
            "its ru_maxrss would start at the parent's RSS, which Linux carries across "
            "fork + exec.",
            "",
            "| mode | tasks | peak RSS MB | over import MB | seconds | verified |",
            "|---|---|---|---|---|---|",
        ]
        for row in mem.rows:
            if "error" in row:
                out.append(
                    f"| {row['mode']} | {row['size']:,} | failed: {row['error'][:200]} | | | no |"
                )
                continue
            out.append(
                f"| {row['mode']} | {row['size']:,} | {row['peak_mb']:.1f} "
                f"| {row['peak_mb'] - mem.import_mb:.1f} | {row['seconds']:.2f} "
                f"| {'yes' if row['verified'] else 'NO'} |"
            )
        for mode, reason in mem.skipped.items():
            out.append(f"| {mode} | - | skipped: {reason} | | | |")
        out.append("")
        for mode, growth in self.rss_growth().items():
            out.append(
                f"- {mode}: peak RSS at the largest size minus at the smallest = "
                f"**{growth:.1f} MB** (target <= {RSS_BUDGET_MB:g} MB: "
                f"{'PASS' if growth <= RSS_BUDGET_MB else 'FAIL'})"
            )
        out.append("")
        return out

    def rss_growth(self) -> dict[str, float]:
        growth: dict[str, float] = {}
        if self.memory is None:
            return growth
        for mode in dict.fromkeys(r["mode"] for r in self.memory.rows):
            rows = sorted(
                (r for r in self.memory.rows if r["mode"] == mode and "peak_mb" in r),
                key=lambda r: r["size"],
            )
            if len(rows) >= 2:
                growth[mode] = rows[-1]["peak_mb"] - rows[0]["peak_mb"]
        return growth

    def _decode_section(self) -> list[str]:
        dec = self.decode
        if dec is None:
            return []
        typed = dict(dec.rows).get("msgspec typed (TasksPage)")
        out = [
            f"## (e) Decode only: one page ({dec.tasks} tasks, {dec.page_bytes / 1024:.0f} KiB)",
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
        out.append("")
        return out

    def targets(self) -> list[tuple[str, float | None, float, str]]:
        rows: list[tuple[str, float | None, float, str]] = []
        for key, fast, slow, minimum in TARGETS:
            result = self.by_key(key)
            if result is None:
                continue
            value, _ = speed_ratio(result, fast, slow)
            rows.append((f"({key}) {fast}/{slow}", value, minimum, _verdict(value, minimum)))
        faulty, wan = self.by_key("c"), self.by_key("a")
        if faulty is not None and wan is not None:
            for name in ("iter_tasks", "export_jsonl"):
                value, _ = speed_ratio(faulty, name, name, other=wan)
                rows.append((f"(c) {name}: (c) vs (a)", value, 0.9, _verdict(value, 0.9)))
        growth = self.rss_growth().get("export_jsonl")
        if growth is not None:
            ok = "PASS" if growth <= RSS_BUDGET_MB else "**FAIL**"
            rows.append(("(d) export RSS(500k) - RSS(10k), MB (max 30)", growth, RSS_BUDGET_MB, ok))
        return rows

    def _targets_section(self) -> list[str]:
        rows = self.targets()
        if not rows:
            return []
        out = ["## Targets", ""]
        if self.quick:
            out += [
                "Smoke configuration (--quick): too small for these verdicts to mean anything.",
                "",
            ]
        out += ["| target | measured | required | verdict |", "|---|---|---|---|"]
        for name, value, minimum, verdict in rows:
            req = f"<= {minimum:g}" if name.startswith("(d)") else f">= {minimum:g}"
            out.append(f"| {name} | {_fmt(value, '.2f')} | {req} | {verdict} |")
        out.append("")
        return out

    # --- chart -------------------------------------------------------------------------------

    def chart(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = [r for r in self.timed] + [x for x in (self.memory, self.decode) if x]
        if not panels:
            return
        cols = min(2, len(panels))
        rows = (len(panels) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
        flat = [ax for row in axes for ax in row]
        for ax, panel in zip(flat, panels, strict=False):
            if isinstance(panel, TimedResult):
                names = [n for n in panel.runs if panel.median(n)]
                values = [panel.median(n) or 0.0 for n in names]
                ax.set_title(f"({panel.scenario.key}) {panel.scenario.title}", fontsize=9)
                ax.set_ylabel("median seconds (log)")
                ax.set_yscale("log")
                if panel.scenario.ideal_seconds:
                    ax.axhline(panel.scenario.ideal_seconds, color="grey", ls="--", lw=1)
                fmt = "{:.2f}"
            elif isinstance(panel, MemoryResult):
                names = [f"{r['mode']}\n{r['size'] // 1000}k" for r in panel.rows if "peak_mb" in r]
                values = [r["peak_mb"] for r in panel.rows if "peak_mb" in r]
                ax.axhline(panel.import_mb, color="grey", ls="--", lw=1)
                ax.set_title("(d) peak RSS, MB (dashed: import only)", fontsize=9)
                fmt = "{:.0f}"
            else:
                names = [n.replace(" (", "\n(") for n, _ in panel.rows]
                values = [v for _, v in panel.rows]
                ax.set_title("(e) decode one 100-task page, us", fontsize=9)
                fmt = "{:.0f}"
            bars = ax.bar(range(len(values)), values, color="tab:blue")
            for bar, name in zip(bars, names, strict=True):
                if name.startswith(("iter", "export", "get_all")):
                    bar.set_color("tab:orange")
            ax.set_xticks(range(len(values)), names, fontsize=7, rotation=20)
            ax.bar_label(bars, [fmt.format(v) for v in values], fontsize=7)
        for ax in flat[len(panels) :]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
