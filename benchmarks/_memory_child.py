"""Child process of scenario (d): one pull in a fresh interpreter, then its peak RSS as JSON.

``python -m benchmarks._memory_child MODE [BASE_URL SPACE WORKDIR]`` with MODE one of
``import`` (just import the package), ``export_jsonl`` or ``iter_tasks`` (streamed: each task is
looked at and dropped, as a streaming consumer would).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path


def _peak_mb() -> float:
    """Peak RSS of this process image, in MiB.

    ``VmHWM`` of /proc/self/status, not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` starts
    at the RSS its parent had when it forked (it survives the exec), so a child of a 2 GB
    benchmark process would report at least 2 GB. ``ru_maxrss`` is the fallback off Linux.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _pull(mode: str, base_url: str, space: str, workdir: Path) -> dict[str, object]:
    import msgspec

    from unpod_async import UnpodClient

    from ._pages import ids_digest

    class Key(msgspec.Struct):
        task_id: str = ""

    key = msgspec.json.Decoder(Key)

    client = UnpodClient("bench-token", base_url=base_url, concurrency=16, retry_delay=0.1)
    async with client:
        if mode == "iter_tasks":
            count = 0
            digest_ids: list[str] = []
            digest = 0
            async for task in client.iter_tasks(space, page_size=100):
                count += 1
                digest_ids.append(task.task_id or "")
                if len(digest_ids) == 1000:  # fold as we go: keeping every id would cost RSS
                    digest += ids_digest(digest_ids)
                    digest_ids.clear()
            digest = (digest + ids_digest(digest_ids)) & 0xFFFF_FFFF_FFFF_FFFF
            return {"tasks": count, "digest": digest, "peak_mb": _peak_mb()}
        path = workdir / f"{space}.jsonl"
        await client.export_tasks(space, path, format="jsonl", page_size=100)
    peak = _peak_mb()  # before the read-back below, which holds every id
    with path.open("rb") as f:
        ids = [key.decode(line).task_id for line in f if line.strip()]
    size = path.stat().st_size
    path.unlink()
    return {"tasks": len(ids), "digest": ids_digest(ids), "peak_mb": peak, "file_bytes": size}


def main(argv: list[str]) -> None:
    mode = argv[0]
    start_mb = _peak_mb()
    import unpod_async  # noqa: F401

    result: dict[str, object] = {"mode": mode, "python_mb": start_mb, "import_mb": _peak_mb()}
    if mode != "import":
        base_url, space, workdir = argv[1], argv[2], Path(argv[3])
        started = time.perf_counter()
        result.update(asyncio.run(_pull(mode, base_url, space, workdir)))
        result["seconds"] = time.perf_counter() - started
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
