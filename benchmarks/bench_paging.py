"""Acceptance benchmark of the core client: ``get_all_tasks`` against the bare gather loop.

1,000 simulated pages of 100 tasks at 50 ms per page, concurrency 16, both contenders in the
same run, alternating, 5 rounds; prints the median speed ratio get_all/bare (bare time /
get_all time: 1.0 means as fast as the bare aiohttp + msgspec loop) and each contender's
ratio to the ideal time (pages / concurrency x latency = 3.125 s).

    python -m benchmarks.bench_paging [--rounds 5] [--pages 1000] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from benchmarks._scenarios import Scenario, run_timed
from benchmarks._server import ServerConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_paging")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)

    contenders = ["get_all_tasks", "bare"]
    scenario = Scenario(
        "paging",
        f"get_all_tasks vs bare: {args.pages} pages at {args.latency * 1000:g} ms",
        ServerConfig(n_tasks=args.pages * 100, latency=args.latency),
        tuple(contenders),
        concurrency=args.concurrency,
    )
    (result,) = run_timed([scenario], args.rounds, contenders)
    ideal = scenario.ideal_seconds or 0.0
    print(f"\n{scenario.title}, concurrency {args.concurrency}, {args.rounds} rounds")
    for name in contenders:
        runs = result.runs[name]
        ok = [r.seconds for r in runs if r.verified]
        if len(ok) != len(runs):
            print(f"{name}: {len(runs) - len(ok)} run(s) failed: {runs[0].error}")
            return 1
        median = statistics.median(ok)
        print(
            f"  {name:<14} median {median:.3f}s  (min {min(ok):.3f}, max {max(ok):.3f})  "
            f"ideal/time = {ideal / median:.3f}  ({median / ideal:.2f}x the ideal {ideal:.3f}s)"
        )
    t_get, t_bare = result.median("get_all_tasks"), result.median("bare")
    assert t_get is not None
    assert t_bare is not None
    bare_by_round = {r.round: r.seconds for r in result.runs["bare"]}
    paired = [bare_by_round[r.round] / r.seconds for r in result.runs["get_all_tasks"]]
    print(
        f"  median ratio get_all/bare (speed, bare time / get_all time) = {t_bare / t_get:.3f}  "
        f"(per round {min(paired):.3f}-{max(paired):.3f}, median {statistics.median(paired):.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
