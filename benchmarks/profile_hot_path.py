"""Profile CPU-bound pulls with py-spy and summarise where the time goes.

Each contender pulls a static space (no added latency, pages of 100 tasks) ``--repeat``
times, each in a fresh ``benchmarks._child`` process recorded by ``py-spy record`` (sampling,
idle included, frames by function). The raw collapsed stacks go to ``benchmarks/out/profiles/``
and one short text summary of all the recordings together goes to
``benchmarks/profiles/<contender>.txt`` (one recording alone can mislead: the export's writes
depend on the kernel's writeback at that moment). Percentages are of the event-loop thread's
samples during the pull (imports and start-up left out); a worker thread's busy samples (the
export's writer) are listed apart, in % of the same duration. msgspec's decoders are C: their
time is the self time of the Python frame that calls them (``decode_typed_page``,
``decode_raw_page``, ``raw_keys``, ``each``). The consumer appends each task's id to a list,
as in the timed runs.

    pip install py-spy
    python -m benchmarks.profile_hot_path [--tasks 300000] [--repeat 3] [--contenders a,b]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks._server import PageServer, ServerConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOP = "BaseEventLoop.run_forever"
WORKER = "_worker (concurrent/futures/thread.py"
IDLE = ("select (selectors.py", "EpollSelector.select", "KqueueSelector.select")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frames(stack: str) -> list[str]:
    return [frame for frame in stack.split(";") if frame]


def _name(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``func (path/file.py)``: one name per function."""
    match = _FRAME.match(frame)
    return f"{match['func']} ({match['file']})" if match else frame


def _package(frame: str) -> str:
    match = _FRAME.match(frame)
    path = match["file"] if match else frame
    if path.startswith("unpod_async/"):
        return path.removesuffix(".py")
    return path.split("/", 1)[0].removesuffix(".py") if "/" in path else path


def _counters(samples: list[tuple[list[str], int]]) -> tuple[Counter[str], ...]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for names, count in samples:
        own[names[-1]] += count
        packages[_package(names[-1])] += count
        for name in set(names[1:]):
            inclusive[name] += count
    return own, inclusive, packages


def summarise(raws: list[Path], title: str, top: int = 25) -> str:
    loop: list[tuple[list[str], int]] = []
    worker: list[tuple[list[str], int]] = []
    text = "\n".join(raw.read_text(encoding="utf-8", errors="replace") for raw in raws)
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        names = [_name(f) for f in _frames(stack)]
        at = next((i for i, n in enumerate(names) if n.startswith(LOOP)), None)
        if at is not None:
            loop.append((names[at:], int(count)))
            continue
        at = next((i for i, n in enumerate(names) if n.startswith(WORKER)), None)
        if at is not None and len(names) > at + 1:  # busy: not blocked waiting for work
            worker.append((names[at:], int(count)))
    total = sum(c for _, c in loop) or 1
    idle = sum(c for names, c in loop if any(names[-1].startswith(p) for p in IDLE))
    own, inclusive, packages = _counters(loop)
    lines = [
        f"# {title}",
        "",
        f"{total} samples of the event-loop thread during the pull (= 100%); "
        f"{100 * idle / total:.1f}% of them idle (waiting in the selector for the server).",
        "",
        "## event loop: self time (the frame on top of the stack; C calls count to their caller)",
        "",
    ]
    lines += [f"{100 * c / total:6.1f}%  {name}" for name, c in own.most_common(top)]
    lines += ["", "## event loop: self time by module", ""]
    lines += [f"{100 * c / total:6.1f}%  {name}" for name, c in packages.most_common(15)]
    lines += ["", "## event loop: inclusive time (the frame anywhere on the stack)", ""]
    lines += [
        f"{100 * c / total:6.1f}%  {name}"
        for name, c in inclusive.most_common(3 * top)
        if not name.startswith(("BaseEventLoop.", "Handle._run", "_run_once"))
    ][: 2 * top]
    if worker:
        busy = sum(c for _, c in worker)
        w_own, _, _ = _counters(worker)
        lines += [
            "",
            f"## worker thread (off the loop): busy {busy} samples = {100 * busy / total:.1f}% "
            "of the pull's duration; its self time, in % of the pull",
            "",
        ]
        lines += [f"{100 * c / total:6.1f}%  {name}" for name, c in w_own.most_common(12)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_hot_path")
    parser.add_argument("--tasks", type=int, default=300_000)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--repeat", type=int, default=3, help="recordings per contender, summarised together"
    )
    parser.add_argument("--contenders", default="iter_tasks,export_jsonl,bare_stream,bare_writer")
    parser.add_argument("--output", type=Path, default=HERE / "profiles")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    raw_dir = HERE / "out" / "profiles"
    raw_dir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(n_tasks=args.tasks)
    with PageServer(config) as server, tempfile.TemporaryDirectory() as tmp:
        for name in args.contenders.split(","):
            spec = {
                "contender": name,
                "base_url": server.base_url,
                "space": f"prof-{name}".replace("_", "-"),
                "page_size": config.page_size,
                "concurrency": 16,
                "retry_delay": 0.1,
                "workdir": tmp,  # the ids go into a list, as in the timed runs
            }
            raws, seconds, verified = [], [], True
            for i in range(args.repeat):
                raw = raw_dir / f"{name}.{i}.raw"
                cmd = [py_spy, "record", "--idle", "-F", "-r", str(args.rate), "-f", "raw"]
                cmd += ["-o", str(raw), "--", sys.executable, "-m", "benchmarks._child"]
                spec["space"] = f"prof-{name}-{i}".replace("_", "-")
                proc = subprocess.run(
                    [*cmd, json.dumps(spec)], capture_output=True, text=True, cwd=ROOT, check=False
                )
                if proc.returncode != 0:
                    print(f"{name}: py-spy failed: {proc.stderr[-800:]}", file=sys.stderr)
                    return 1
                line = [x for x in proc.stdout.splitlines() if x.startswith("{")][-1]
                result = json.loads(line)  # py-spy prints its own lines around the child's
                raws.append(raw)
                seconds.append(result["seconds"])
                verified = verified and result.get("tasks") == args.tasks
            head = subprocess.run(
                ["git", "-C", str(ROOT), "log", "-1", "--format=%h"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            title = (
                f"{name} at {head or 'unknown commit'}: {args.tasks:,} tasks, pages of 100, "
                f"no added latency, concurrency 16, py-spy at {args.rate} Hz, {args.repeat} "
                f"recordings summed; {statistics.median(seconds):.2f} s median under the "
                f"profiler ({min(seconds):.2f}-{max(seconds):.2f}), "
                f"{args.tasks / statistics.median(seconds):,.0f} tasks/s, verified {verified}"
            )
            text = summarise(raws, title)
            (args.output / f"{name}.txt").write_text(text, encoding="utf-8")
            print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
