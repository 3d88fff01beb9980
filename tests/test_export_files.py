"""The files an export leaves on disk hold personal data: who may read them, and what is left.

The partial and checkpoint files are the owner's alone (``0600``) while an export runs; the
finished file keeps the mode of the file it replaces; temporary files of an export that was
killed are removed by the next export to the same path.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from unpod_async import ExportProgress, UnpodClient
from unpod_async.testing import Simulator

from .helpers import SPACE, leftovers


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("resume", [False, True])
async def test_working_files_are_private_while_the_export_runs(
    client: UnpodClient, tmp_path: Path, resume: bool
) -> None:
    out = tmp_path / "tasks.jsonl"
    seen: dict[str, int] = {}

    def look(progress: ExportProgress) -> None:
        for entry in tmp_path.iterdir():
            if entry.name.startswith("."):
                seen[entry.name] = mode(entry)

    await client.export_tasks(SPACE, out, page_size=100, resume=resume, progress=look)
    kinds = {name.rsplit(".", 1)[-1] for name in seen}
    assert kinds == ({"unpod-partial", "unpod-resume"} if resume else {"unpod-tmp"})
    assert set(seen.values()) == {0o600}


async def test_replacing_an_export_keeps_its_mode(client: UnpodClient, tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(b"old\n")
    out.chmod(0o640)
    await client.export_tasks(SPACE, out, page_size=100)
    assert mode(out) == 0o640
    assert out.read_bytes() != b"old\n"


async def test_a_new_export_gets_the_usual_mode(client: UnpodClient, tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    umask = os.umask(0o027)
    try:
        await client.export_tasks(SPACE, out, page_size=100)
    finally:
        os.umask(umask)
    assert mode(out) == 0o640


def dead_pid() -> int:
    pid = os.getpid() + 100_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


async def test_temporary_files_of_a_killed_export_are_removed(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "tasks.jsonl"
    stale = tmp_path / f".{out.name}.{dead_pid()}-0123456789ab.unpod-tmp"
    alive = tmp_path / f".{out.name}.1-0123456789ab.unpod-tmp"  # pid 1 is running
    other = tmp_path / ".other.jsonl.999999-0123456789ab.unpod-tmp"
    for path in (stale, alive, other):
        path.write_bytes(b"half an export")
    await client.export_tasks(SPACE, out, page_size=100)
    assert not stale.exists()
    assert alive.exists()  # another export may be writing it
    assert other.exists()  # another destination's
    assert sorted(leftovers(tmp_path)) == sorted([alive.name, other.name])
