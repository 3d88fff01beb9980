"""An export replaces its destination whole or not at all.

Whatever stops it (a failing page, a cancellation at any moment, a full disk, a failing fsync
or rename, a kernel file-size limit), the destination keeps its previous content, or stays
absent if there was none, and no temporary file is left; only a resumable export keeps its
partial file and checkpoint, for the next run. (A bad body, a size cap or a deadline that
stops an export is checked the same way in ``test_response_bodies.py`` and
``test_deadlines.py``; resuming is in ``test_export.py``.)

Cancellation also runs the client in a child process with ``-X dev``,
``PYTHONASYNCIODEBUG=1`` and ``-W error::ResourceWarning`` (the simulator runs here, in the
parent), so that an unclosed socket, a never-retrieved exception or a task left pending shows
on the child's stderr.

A full disk is a file whose writes raise ENOSPC once its room is used (a short write first,
then the error, as the kernel does), and in a child process a real kernel limit
(``RLIMIT_FSIZE``: writes past it fail with EFBIG).
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from unpod_async import BusinessLogicError, ExportError, UnpodClient, _atomic
from unpod_async.testing import Fault, Simulator

from .helpers import ORG, SPACE, TOKEN, leftovers, make_client, run_python

PREVIOUS = b"the previous good export\n"


async def run_child(script: str, *args: str) -> tuple[int, str, str]:
    """``script`` in a child process that shows every leak on its stderr."""
    dev = ("-X", "dev", "-W", "error::ResourceWarning")
    code, out, err = await run_python(*dev, "-c", script, *args, env={"PYTHONASYNCIODEBUG": "1"})
    return code, out.decode(), err.decode()


# --------------------------------------------------------------------------- a failing page


async def test_failure_mid_export_never_clobbers_the_destination(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(PREVIOUS)
    sim.faults.append(Fault(kind="206", page=5, message="Invalid Space Token"))
    with pytest.raises(BusinessLogicError):
        await client.export_tasks(SPACE, out, page_size=50)
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []  # the temporary file is gone too


# --------------------------------------------------------------------------- cancellation


async def test_cancelled_export_leaves_no_file(sim: Simulator, tmp_path: Path) -> None:
    sim.latency = 0.05
    out = tmp_path / "tasks.jsonl"
    async with make_client(sim, concurrency=2) as client:
        export = asyncio.create_task(client.export_tasks(SPACE, out, page_size=20))
        while len(sim.requests) < 4:
            await asyncio.sleep(0.01)
        export.cancel()
        with pytest.raises(asyncio.CancelledError):
            await export
    assert list(tmp_path.iterdir()) == []


_CANCEL_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, os, sys
    from contextlib import aclosing
    from pathlib import Path
    from unpod_async import UnpodClient

    BASE, FOLDER, TOKEN, ORG, SPACE = sys.argv[1:6]
    FOLDER = Path(FOLDER)
    PREVIOUS = b"the previous good export\\n"

    def tcp_sockets():
        # TCP sockets this process holds open: socket fds whose inode is in net/tcp*.
        inodes = set()
        for name in os.listdir("/proc/self/fd"):
            try:
                link = os.readlink(os.path.join("/proc/self/fd", name))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        tcp = set()
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            try:
                with open(table) as f:
                    tcp.update(line.split()[9] for line in f.read().splitlines()[1:])
            except OSError:
                pass
        return len(inodes & tcp)

    async def scenario(name, delay, kind):
        out = FOLDER / (name + ".jsonl")
        out.write_bytes(PREVIOUS)
        client = UnpodClient(TOKEN, ORG, base_url=BASE, concurrency=4,
                             retry_delay=0.001, max_retry_delay=0.01)
        async with client:
            if kind == "iter":
                async def consume():
                    async with aclosing(client.iter_tasks(SPACE, page_size=50)) as tasks:
                        async for _ in tasks:
                            pass
                work = asyncio.create_task(consume())
            else:
                work = asyncio.create_task(
                    client.export_tasks(SPACE, out, page_size=50, resume=(kind == "resume"))
                )
            await asyncio.wait({work}, timeout=delay)
            during = tcp_sockets()
            work.cancel()
            try:
                await work
                outcome = "completed"
            except asyncio.CancelledError:
                outcome = "cancelled"
        await asyncio.sleep(0)
        pending = [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        gc.collect()
        files = sorted(p.name for p in FOLDER.iterdir() if p.name.lstrip(".").startswith(name))
        print(json.dumps({"name": name, "kind": kind, "outcome": outcome, "pending": pending,
                          "during": during, "sockets": tcp_sockets(), "files": files}), flush=True)

    async def main():
        # What is checked here is leaks, not latency: a blocking fsync or a gc.collect() on a
        # slow CI disk must not pass for a warning.
        asyncio.get_running_loop().slow_callback_duration = 2.0
        for i, delay in enumerate([0.0, 0.001, 0.01, 0.03, 0.06, 0.1, 0.2, 5.0]):
            await scenario("export%d" % i, delay, "export")
        for i, delay in enumerate([0.01, 0.05, 0.1]):
            await scenario("resume%d" % i, delay, "resume")
            await scenario("iter%d" % i, delay, "iter")

    asyncio.run(main())
    gc.collect()
    """
)


async def test_cancelling_mid_export_leaves_nothing_behind(sim: Simulator, tmp_path: Path) -> None:
    sim.latency = 0.01
    clean = b"".join(raw + b"\n" for raw in sim.tasks_json())
    code, out, err = await run_child(_CANCEL_SCRIPT, sim.base_url, str(tmp_path), TOKEN, ORG, SPACE)
    assert code == 0, err
    assert err == "", err  # no ResourceWarning, no "Task was destroyed", no never-retrieved
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 14
    outcomes = {r["outcome"] for r in results if r["kind"] == "export"}
    assert outcomes == {"cancelled", "completed"}  # cancelled early, and once let finish
    assert max(r["during"] for r in results) > 0  # the socket count does see connections
    for result in results:
        assert result["pending"] == [], result
        assert result["sockets"] == 0, result
        name = result["name"]
        content = (tmp_path / f"{name}.jsonl").read_bytes()
        if result["kind"] == "iter":
            assert content == PREVIOUS
            continue
        assert content in (PREVIOUS, clean), name  # untouched or complete, nothing between
        if result["kind"] == "export":
            assert result["files"] == [f"{name}.jsonl"], result  # no temporary file left
        else:
            # A resumable export may keep its partial file and checkpoint, beside the
            # destination, for the next run: nothing else.
            allowed = {
                f"{name}.jsonl",
                f".{name}.jsonl.unpod-partial",
                f".{name}.jsonl.unpod-resume",
            }
            assert set(result["files"]) <= allowed, result


async def test_cancelling_at_random_moments_is_untouched_or_complete(
    sim: Simulator, tmp_path: Path
) -> None:
    clean = b"".join(raw + b"\n" for raw in sim.tasks_json())
    sim.latency = 0.002
    async with make_client(sim, concurrency=4) as client:
        for i, delay in enumerate([0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2]):
            out = tmp_path / f"t{i}.jsonl"
            out.write_bytes(PREVIOUS)
            work = asyncio.create_task(client.export_tasks(SPACE, out, page_size=50))
            await asyncio.wait({work}, timeout=delay)
            work.cancel()
            try:
                await work
            except asyncio.CancelledError:
                assert out.read_bytes() in (PREVIOUS, clean)  # untouched, or complete
            else:
                # It finished first (or, on Python < 3.12, the cancellation was lost to the
                # asyncio.wait_for race that tests/test_cancellation.py pins down).
                assert out.read_bytes() == clean
        # The client is still healthy after all those cancellations.
        assert client._gate.in_flight == 0
        assert len(await client.get_all_tasks(SPACE, page_size=100)) == len(sim)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- full disk


class FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes free: a short write, then ENOSPC forever."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path, "wb")
        self.room = room

    def write(self, data: Any) -> int:
        data = bytes(data)
        if len(data) <= self.room:
            self.room -= len(data)
            return super().write(data)
        if self.room > 0:
            written = super().write(data[: self.room])
            self.room = 0
            return written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def disk_room(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Temporary export files get ``room[0]`` bytes of disk; everything else is unaffected."""
    room = [0]
    original = _atomic.create_private

    def create(path: Path, **kwargs: Any) -> Any:
        if path.name.endswith(".unpod-tmp"):
            return io.BufferedWriter(FullDisk(path, room[0]))
        return original(path, **kwargs)

    monkeypatch.setattr(_atomic, "create_private", create)
    return room


def _disk_cases() -> list[Any]:
    cases = []
    for fmt in ("jsonl", "csv", "parquet"):
        for room in (0, 20_000, 300_000):
            # A 1,000-task Parquet file is smaller than 300 kB: it would not fill that disk.
            if not (fmt == "parquet" and room == 300_000):
                cases.append(pytest.param(fmt, room, id=f"{fmt}-{room}-bytes-free"))
    return cases


@pytest.mark.parametrize(("fmt", "room"), _disk_cases())
async def test_disk_full_is_export_error_and_leaves_nothing(
    client: Any, tmp_path: Path, disk_room: list[int], room: int, fmt: str
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    disk_room[0] = room
    out = tmp_path / f"tasks.{fmt}"
    # No file there before: none after.
    with pytest.raises(ExportError, match="No space left"):
        await client.export_tasks(SPACE, out, format=fmt, page_size=100)
    assert list(tmp_path.iterdir()) == []
    # A previous export there: left as it was.
    out.write_bytes(PREVIOUS)
    with pytest.raises(ExportError, match="No space left"):
        await client.export_tasks(SPACE, out, format=fmt, page_size=100)
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


async def test_disk_full_at_fsync_is_export_error_and_leaves_nothing(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(PREVIOUS)
    with pytest.raises(ExportError, match="No space left"):
        await client.export_tasks(SPACE, out, page_size=100)
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


async def test_failed_rename_is_export_error_and_leaves_nothing(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(PREVIOUS)
    with pytest.raises(ExportError):
        await client.export_tasks(SPACE, out, page_size=100)
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []


_FSIZE_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, resource, signal, sys
    from unpod_async import ExportError, UnpodClient

    async def main():
        async with UnpodClient({token!r}, {org!r}, base_url=sys.argv[1],
                               retry_delay=0.001) as client:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
            try:
                await client.export_tasks({space!r}, sys.argv[2], format=sys.argv[3],
                                          page_size=100)
            except ExportError as exc:
                print(json.dumps({{"error": "ExportError", "message": str(exc)}}))
            except BaseException as exc:
                print(json.dumps({{"error": type(exc).__name__, "message": str(exc)}}))

    asyncio.run(main())
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics checked on Linux")
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_real_kernel_write_failure_is_export_error(
    sim: Simulator, tmp_path: Path, fmt: str
) -> None:
    """A kernel-enforced file size limit (EFBIG past 100 kB) instead of a patched write."""
    out = tmp_path / f"tasks.{fmt}"
    out.write_bytes(PREVIOUS)
    script = _FSIZE_SCRIPT.format(token=TOKEN, org=ORG, space=SPACE)
    code, stdout, stderr = await run_child(script, sim.base_url, str(out), fmt)
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["error"] == "ExportError", result
    assert "too large" in result["message"].lower(), result
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path) == []
    assert stderr == ""
