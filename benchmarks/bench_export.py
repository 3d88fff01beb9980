"""Export throughput and peak memory: ``export_tasks`` to JSONL for 10,000 and 200,000 tasks.

Each export runs in a fresh interpreter against the harness's page server (a separate
process serving pre-rendered pages, no added latency), so the peak RSS (VmHWM) is the
export's alone; every run is verified (task count and the digest of every task id).

    python -m benchmarks.bench_export [--sizes 10000,200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from benchmarks._scenarios import run_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_export")
    parser.add_argument("--sizes", default="10000,200000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    rows: dict[int, list[dict[str, object]]] = {size: [] for size in sizes}
    baseline = 0.0
    for _ in range(args.rounds):
        result = run_memory(sizes, ["export_jsonl"])
        baseline = result.import_mb
        for row in result.rows:
            if not row.get("verified"):
                print(f"unverified run: {row}", file=sys.stderr)
                return 1
            rows[int(row["size"])].append(row)  # type: ignore[call-overload]

    print(f"\nexport_tasks(format='jsonl'), {args.rounds} rounds, medians")
    print(f"RSS after `import unpod_async`: {baseline:.1f} MB")
    print("| tasks | seconds | tasks/s | peak RSS MB | over import MB |")
    print("|---|---|---|---|---|")
    for size in sizes:
        seconds = statistics.median(float(r["seconds"]) for r in rows[size])  # type: ignore[arg-type]
        peak = statistics.median(float(r["peak_mb"]) for r in rows[size])  # type: ignore[arg-type]
        rate = size / seconds
        print(f"| {size:,} | {seconds:.2f} | {rate:,.0f} | {peak:.1f} | {peak - baseline:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
