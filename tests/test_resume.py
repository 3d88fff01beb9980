"""Resuming an export: only into the same export from the same server, and never stuck.

A checkpoint names the export (space, format, page size, filters), the server, the
organization and a salted fingerprint of the token; a rerun that differs in any of them is
refused with a clear error. A partial file that does not match its checkpoint (a crash, a
power cut, a cut file) is recovered or started afresh with a WARNING, never a failure.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from unpod_async import BusinessLogicError, ExportError, UnpodClient, _checkpoint
from unpod_async.testing import Fault, Simulator, serve

from .helpers import ORG, SPACE, TOKEN, client_for, leftovers, make_client, tasks_server


@pytest.fixture
async def two() -> AsyncIterator[tuple[Simulator, Simulator]]:
    async with (
        serve(tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE) as a,
        serve(tasks=1000, seed=7, token=TOKEN, org_handle=ORG, space_token=SPACE) as b,
    ):
        yield a, b


async def interrupted(sim: Simulator, out: Path, **kwargs: object) -> None:
    """An export of ``sim`` that fails at page 6, leaving its checkpoint."""
    sim.faults.append(Fault(kind="206", page=6, message="Invalid Space Token"))
    async with make_client(sim, concurrency=1, **kwargs) as client:
        with pytest.raises(BusinessLogicError):
            await client.export_tasks(SPACE, out, page_size=50, resume=True)
    assert any(name.endswith(".unpod-resume") for name in leftovers(out.parent))


async def test_resume_refuses_another_server(
    two: tuple[Simulator, Simulator], tmp_path: Path
) -> None:
    a, b = two
    out = tmp_path / "t.jsonl"
    await interrupted(a, out)
    async with make_client(b) as client:
        with pytest.raises(ExportError, match="another server") as info:
            await client.export_tasks(SPACE, out, page_size=50, resume=True)
    assert a.base_url in str(info.value)
    assert b.requests == []  # refused before a single request
    assert not out.exists()


async def test_resume_refuses_another_organization_or_token(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    await interrupted(sim, out)
    sim.requests.clear()
    other_org = UnpodClient(TOKEN, "other-org", base_url=sim.base_url)
    async with other_org:
        with pytest.raises(ExportError, match="another organization"):
            await other_org.export_tasks(SPACE, out, page_size=50, resume=True)
    other_token = UnpodClient("another-token", ORG, base_url=sim.base_url)
    async with other_token:
        with pytest.raises(ExportError, match="another API token"):
            await other_token.export_tasks(SPACE, out, page_size=50, resume=True)
    assert sim.requests == []


async def test_the_checkpoint_never_holds_the_token(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    await interrupted(sim, out)
    [checkpoint] = [p for p in tmp_path.iterdir() if p.name.endswith(".unpod-resume")]
    text = checkpoint.read_text()
    assert TOKEN not in text
    state = json.loads(text)
    assert state["base_url"] == sim.base_url
    assert state["org_handle"] == ORG
    assert len(state["token_fingerprint"]) == 16


async def clean_export(sim: Simulator, path: Path) -> bytes:
    async with make_client(sim) as client:
        await client.export_tasks(SPACE, path, page_size=50)
    return path.read_bytes()


def partial_and_checkpoint(directory: Path) -> tuple[Path, Path]:
    [partial] = [p for p in directory.iterdir() if p.name.endswith(".unpod-partial")]
    [checkpoint] = [p for p in directory.iterdir() if p.name.endswith(".unpod-resume")]
    return partial, checkpoint


@pytest.mark.parametrize("cut", ["mid-line", "whole-lines", "empty"])
async def test_a_partial_shorter_than_its_checkpoint_recovers(
    sim: Simulator, tmp_path: Path, cut: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = await clean_export(sim, tmp_path / "clean.jsonl")
    out = tmp_path / "t.jsonl"
    await interrupted(sim, out)
    partial, checkpoint = partial_and_checkpoint(tmp_path)
    claimed = json.loads(checkpoint.read_text())["offset"]
    data = partial.read_bytes()[:claimed]
    # What a power cut can leave when the data was not durable: less than the checkpoint.
    if cut == "mid-line":
        kept = data[: len(data) * 2 // 3]
    elif cut == "whole-lines":
        kept = b"".join(data.splitlines(keepends=True)[:120])  # 2.4 pages of 50
    else:
        kept = b""
    partial.write_bytes(kept)
    caplog.set_level(logging.WARNING, logger="unpod_async")
    sim.requests.clear()
    async with make_client(sim) as client:
        stats = await client.export_tasks(SPACE, out, page_size=50, resume=True)
    assert out.read_bytes() == expected
    assert stats.tasks == len(sim)
    assert any("shorter than its checkpoint" in r.getMessage() for r in caplog.records)
    if cut == "whole-lines":
        assert stats.resumed_pages == 2  # the two whole pages it still held
        assert min(r.page for r in sim.requests if r.page) == 3
    assert leftovers(tmp_path) == []


async def test_a_partial_longer_than_its_checkpoint_is_cut_back(
    sim: Simulator, tmp_path: Path
) -> None:
    expected = await clean_export(sim, tmp_path / "clean.jsonl")
    out = tmp_path / "t.jsonl"
    await interrupted(sim, out)
    partial, _ = partial_and_checkpoint(tmp_path)
    with partial.open("ab") as f:
        f.write(b'{"task_id": "half a line written after the checkpoint')
    async with make_client(sim) as client:
        await client.export_tasks(SPACE, out, page_size=50, resume=True)
    assert out.read_bytes() == expected


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"version": 2}'])
async def test_an_unreadable_checkpoint_starts_afresh(
    sim: Simulator, tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    expected = await clean_export(sim, tmp_path / "clean.jsonl")
    out = tmp_path / "t.jsonl"
    await interrupted(sim, out)
    _, checkpoint = partial_and_checkpoint(tmp_path)
    checkpoint.write_bytes(garbage)
    caplog.set_level(logging.WARNING, logger="unpod_async")
    async with make_client(sim) as client:
        stats = await client.export_tasks(SPACE, out, page_size=50, resume=True)
    assert out.read_bytes() == expected
    assert stats.resumed_pages == 0
    assert any("starting afresh" in r.getMessage() for r in caplog.records)


async def test_data_is_durable_before_the_checkpoint_that_counts_it(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every checkpoint saved claims no more bytes than were fsynced before it."""
    out = tmp_path / "t.jsonl"
    partial_name = f".{out.name}.unpod-partial"
    durable = 0
    claims: list[tuple[int, int]] = []
    real_fsync, real_save = os.fsync, _checkpoint.save

    def fsync(fd: int) -> None:
        nonlocal durable
        real_fsync(fd)
        if os.readlink(f"/proc/self/fd/{fd}").endswith(partial_name):
            durable = os.fstat(fd).st_size

    def save(path: Path, state: _checkpoint.Checkpoint) -> None:
        claims.append((state.offset, durable))
        real_save(path, state)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(_checkpoint, "save", save)
    sim.faults.append(Fault(kind="206", page=15, message="Invalid Space Token"))
    async with make_client(sim, concurrency=1) as client:
        with pytest.raises(BusinessLogicError):
            await client.export_tasks(SPACE, out, page_size=50, resume=True)
    assert claims
    assert all(offset <= synced for offset, synced in claims), claims


class Keyless:
    """A space of tasks with no id at all (keyed by their own JSON), pretty-printed or not;
    page 6 fails once with a permanent error, and a task arrives once it has."""

    def __init__(self, n: int, *, pretty: bool) -> None:
        self.tasks = [{"name": f"contact {i}", "status": "completed"} for i in range(n)]
        self.pretty = pretty
        self.failed = False

    async def handler(self, request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["page_size"])
        if page == 6 and not self.failed:
            self.failed = True
            body: dict[str, object] = {"status_code": 206, "message": "Invalid Space Token"}
            return web.Response(status=206, text=json.dumps(body), content_type="application/json")
        if self.failed and len(self.tasks) == 1000 and page == 7:
            self.tasks.insert(0, {"name": "newcomer", "status": "pending"})
        start = (page - 1) * size
        body = {
            "count": len(self.tasks),
            "status_code": 200,
            "data": self.tasks[start : start + size],
        }
        text = json.dumps(body, indent=2 if self.pretty else None)
        return web.Response(text=text, content_type="application/json")


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty-printed"])
async def test_a_resumed_export_of_tasks_without_ids_writes_each_once(
    pretty: bool, tmp_path: Path
) -> None:
    # The resumed pull sees the space change and reads it again whole: the tasks already in
    # the file must be known as written, by the same key the pull gives them (their JSON).
    space = Keyless(1000, pretty=pretty)
    out = tmp_path / "keyless.jsonl"
    async with tasks_server(space.handler) as url:
        async with client_for(url, concurrency=1) as client:
            with pytest.raises(BusinessLogicError):
                await client.export_tasks(SPACE, out, page_size=50, resume=True)
        async with client_for(url, concurrency=1) as client:
            stats = await client.export_tasks(SPACE, out, page_size=50, resume=True)
    names = [json.loads(line)["name"] for line in out.read_bytes().splitlines()]
    assert stats.passes >= 2  # the resumed pull did read the space again
    assert sorted(names) == sorted(t["name"] for t in space.tasks)  # each once, none lost
    assert stats.complete
