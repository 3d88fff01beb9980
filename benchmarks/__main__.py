"""``python -m benchmarks``: run the suite, print the table, write RESULTS.md and results.png."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from ._report import Report
from ._scenarios import ALL, default_scenarios, run_decode, run_memory, run_timed

HERE = Path(__file__).resolve().parent
MEMORY_SIZES = (10_000, 100_000, 500_000)
MEMORY_MODES = ("export_jsonl", "iter_tasks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 20 pages, 1 round, scenarios a,b,e; output to a temp dir",
    )
    parser.add_argument("--scenarios", help="comma-separated subset of a,b,c,d,e (default: all)")
    parser.add_argument("--rounds", type=int, help="rounds of (a)/(b)/(c) (default 5, quick 1)")
    parser.add_argument(
        "--contenders", help=f"comma-separated subset of {','.join(ALL)} (default: all)"
    )
    parser.add_argument(
        "--memory-sizes",
        help="comma-separated task counts for (d) (default: 10000,100000,500000)",
    )
    parser.add_argument("--output", type=Path, help="directory for RESULTS.md and results.png")
    args = parser.parse_args(argv)
    default = "a,b,e" if args.quick else "a,b,c,d,e"
    args.scenarios = [s.strip() for s in (args.scenarios or default).split(",") if s.strip()]
    unknown = set(args.scenarios) - set("abcde")
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.contenders = [c.strip() for c in (args.contenders or ",".join(ALL)).split(",")]
    if set(args.contenders) - set(ALL):
        parser.error(f"unknown contenders: {', '.join(set(args.contenders) - set(ALL))}")
    args.rounds = args.rounds or (1 if args.quick else 5)
    sizes = args.memory_sizes or ",".join(map(str, MEMORY_SIZES))
    args.memory_sizes = [int(s) for s in sizes.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = Report(
        argv=shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)]),
        rounds=args.rounds,
        quick=args.quick,
    )
    scenarios = default_scenarios(quick=args.quick)
    timed = [scenarios[k] for k in "abc" if k in args.scenarios]
    if timed:
        report.timed = run_timed(timed, args.rounds, args.contenders)
    if "d" in args.scenarios:
        modes = [m for m in MEMORY_MODES if m in args.contenders]
        report.memory = run_memory(args.memory_sizes, modes)
    if "e" in args.scenarios:
        report.decode = run_decode()
    report.wall_seconds = time.perf_counter() - started
    report.facts["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    output: Path = args.output or (
        Path(tempfile.mkdtemp(prefix="unpod-bench-")) if args.quick else HERE
    )
    output.mkdir(parents=True, exist_ok=True)
    text = report.markdown()
    (output / "RESULTS.md").write_text(text, encoding="utf-8")
    report.chart(output / "results.png")
    print(text)
    print(f"wrote {output / 'RESULTS.md'} and {output / 'results.png'}", file=sys.stderr)
    failed = [r for t in report.timed for runs in t.runs.values() for r in runs if not r.verified]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
