"""One measured pull in a fresh interpreter: ``python -m benchmarks._child SPEC_JSON``.

Every import happens before the clock starts; the clock covers the contender's whole run
(session or client created and closed inside it). With ``lag`` a sleeper task runs beside the
pull: it sleeps 1 ms at a time and records how late it woke (the event loop's lag). Peak RSS
is this process's VmHWM, read right after the pull, before the ids are listed. The ids
delivered go to ``ids_path`` (one per line) after the clock, or, with ``sink="digest"`` (the
memory scenario: a list of 500,000 ids would be what the RSS measures), are folded into a
count and an order-independent digest as they come.

SPEC_JSON (or ``import``, to measure the interpreter with the imports alone) has the fields of
``Target`` plus ``contender``, ``lag``, ``sink`` and ``ids_path``. The result is one line of
JSON on stdout.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def peak_mb() -> float:
    """Peak RSS of this process image, in MiB.

    ``VmHWM`` of /proc/self/status, not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` starts
    at the RSS its parent had when it forked (it survives the exec). ``ru_maxrss`` is the
    fallback off Linux.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


PYTHON_MB = peak_mb()

import asyncio  # noqa: E402

from ._contenders import CONTENDERS, Target  # noqa: E402
from ._pages import ids_digest  # noqa: E402

IMPORT_MB = peak_mb()
SLEEP = 0.001


class Digest:
    """A count and an order-independent digest of ids, folded a thousand at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.digest = 0
        self._batch: list[str] = []

    def add(self, task_id: str) -> None:
        batch = self._batch
        batch.append(task_id)
        if len(batch) >= 1000:
            self._fold()

    def _fold(self) -> None:
        self.count += len(self._batch)
        self.digest = (self.digest + ids_digest(self._batch)) & 0xFFFF_FFFF_FFFF_FFFF
        self._batch.clear()

    def result(self) -> tuple[int, int]:
        self._fold()
        return self.count, self.digest


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measured(spec: dict[str, Any], touch: Any) -> tuple[Any, float, list[float]]:
    contender = CONTENDERS[spec["contender"]]
    target = Target(
        spec["base_url"],
        spec["space"],
        spec["page_size"],
        spec["concurrency"],
        spec["retry_delay"],
        Path(spec["workdir"]),
        spec.get("read_ahead_bytes"),
    )
    lags: list[float] = []
    running = True

    async def sleeper() -> None:
        clock = time.perf_counter
        while running:
            before = clock()
            await asyncio.sleep(SLEEP)
            lags.append(clock() - before - SLEEP)

    beside = asyncio.ensure_future(sleeper()) if spec.get("lag") else None
    await asyncio.sleep(0)
    started = time.perf_counter()
    outcome = await contender.run(target, touch)
    seconds = time.perf_counter() - started
    running = False
    if beside is not None:
        await beside
    return outcome, seconds, lags


def run(spec: dict[str, Any]) -> dict[str, Any]:
    contender = CONTENDERS[spec["contender"]]
    digest = Digest() if spec.get("sink") == "digest" else None
    touched: list[str] = []
    touch = digest.add if digest is not None else touched.append
    result: dict[str, Any] = {"python_mb": PYTHON_MB, "import_mb": IMPORT_MB}
    cpu0 = time.process_time()
    try:
        outcome, seconds, lags = asyncio.run(_measured(spec, touch))
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return result
    result["cpu"] = time.process_time() - cpu0
    result["peak_mb"] = peak_mb()
    result["seconds"] = seconds
    result["info"] = outcome.info
    if lags:
        result["lag"] = {
            "samples": len(lags),
            "p50_ms": _percentile(lags, 0.5) * 1e3,
            "p99_ms": _percentile(lags, 0.99) * 1e3,
            "max_ms": max(lags) * 1e3,
        }
    if contender.writes:
        ids = outcome.ids() if outcome.ids is not None else []
        if digest is not None:
            for task_id in ids:
                digest.add(task_id)
            ids = []
        if outcome.cleanup is not None:
            outcome.cleanup()
    else:
        ids = touched
    if digest is not None:
        result["tasks"], result["digest"] = digest.result()
    elif contender.decodes:
        result["tasks"] = len(ids)
        if spec.get("ids_path"):
            Path(spec["ids_path"]).write_text("\n".join(ids), encoding="ascii")
    return result


def main(argv: list[str]) -> None:
    if argv[0] == "import":
        print(json.dumps({"python_mb": PYTHON_MB, "import_mb": IMPORT_MB}))
        return
    result = run(json.loads(argv[0]))
    times = os.times()
    result["process_cpu"] = times.user + times.system  # this process's whole life
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
