"""Profile ``iter_tasks``, ``get_all_tasks`` and ``export_tasks`` (and bare, for reference) in (b).

Scenario (b) is CPU-bound (no latency, 2,000 pages of 100 tasks), so the profile shows where
the client spends its CPU. Each contender runs once unprofiled (warm-up), then once under
pyinstrument; the call tree and a flat self-time listing go to ``benchmarks/profiles/``.

    python -m benchmarks.profile_hot_path [--pages 2000] [--output DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pyinstrument import Profiler

from benchmarks._contenders import CONTENDERS, Target
from benchmarks._pages import task_ids
from benchmarks._server import PageServer, ServerConfig

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_hot_path")
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--contenders", default="iter_tasks,get_all_tasks,export_jsonl,bare")
    parser.add_argument("--output", type=Path, default=HERE / "profiles")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)

    config = ServerConfig(n_tasks=args.pages * 100, latency=0.0)
    expected = set(task_ids(config.seed, config.n_tasks))
    with PageServer(config) as server, tempfile.TemporaryDirectory() as tmp:
        for name in args.contenders.split(","):
            contender = CONTENDERS[name]
            reason = contender.available()
            if reason:
                print(f"{name}: skipped, {reason}", file=sys.stderr)
                continue
            for label in ("warm-up", "profiled"):
                target = Target(
                    server.base_url,
                    f"prof-{label}-{name}".replace("_", "-"),
                    100,
                    16,
                    0.1,
                    Path(tmp),
                )
                profiler = Profiler(interval=0.0005) if label == "profiled" else None
                started = time.perf_counter()
                if profiler:
                    profiler.start()
                outcome = asyncio.run(contender.run(target))
                if profiler:
                    profiler.stop()
                seconds = time.perf_counter() - started
                ids = outcome.ids()
                if len(ids) != len(expected) or set(ids) != expected:
                    raise SystemExit(f"{name}: wrong tasks ({len(ids)})")
                if outcome.cleanup:
                    outcome.cleanup()
                del outcome, ids
                print(f"{name} {label}: {seconds:.3f}s", file=sys.stderr)
            assert profiler is not None
            header = (
                f"# {name}, scenario (b): {args.pages} pages x 100 tasks, no latency, "
                f"concurrency 16; {seconds:.3f}s under the profiler\n\n"
            )
            tree = profiler.output_text(unicode=True, show_all=False)
            flat = profiler.output_text(unicode=True, flat=True)
            path = args.output / f"{name}_b.txt"
            path.write_text(
                header + "## call tree\n\n" + tree + "\n## flat (self time)\n\n" + flat,
                encoding="utf-8",
            )
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
