"""Export to JSONL, CSV and Parquet against the simulator over real sockets.

What is written (byte-exact JSONL, CSV that round-trips, Parquet with nested structs, a
binary stream), progress reports, filters, argument checks, and resuming a failed or killed
export. That a failed export never leaves a half-written destination is in
``test_export_atomicity.py``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from unpod_async import (
    BusinessLogicError,
    ExportError,
    ExportProgress,
    Task,
    UnpodClient,
)
from unpod_async.testing import Fault, Simulator, serve

from .helpers import ORG, SPACE, TOKEN, leftovers, make_client, tasks_server


def jsonl_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


async def test_jsonl_is_byte_exact_with_unknown_fields(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "tasks.jsonl"
    stats = await client.export_tasks(SPACE, out, page_size=100)
    lines = jsonl_lines(out)
    assert lines == sim.tasks_json()
    assert b'"space_id"' in lines[0]  # a field the models do not declare survives
    assert stats.tasks == stats.expected == len(sim) == 1000
    assert stats.pages == 11  # ten full pages and one empty page that confirms the end
    assert stats.bytes == out.stat().st_size
    assert stats.duplicates == 0
    assert stats.passes == 1
    assert leftovers(tmp_path) == []


async def test_jsonl_stays_one_line_per_task_when_server_pretty_prints(tmp_path: Path) -> None:
    tasks = [{"_id": f"{i:024x}", "task_id": f"T{i}", "note": "a\nb"} for i in range(5, 0, -1)]

    async def handler(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        data = tasks if page == 1 else []
        body = json.dumps({"count": 5, "status_code": 200, "data": data}, indent=2)
        return web.Response(text=body, content_type="application/json")

    async with (
        tasks_server(handler) as base_url,
        UnpodClient(TOKEN, base_url=base_url) as client,
    ):
        out = tmp_path / "pretty.jsonl"
        await client.export_tasks("space", out, page_size=10)
    lines = jsonl_lines(out)
    assert [json.loads(line) for line in lines] == tasks


@pytest.mark.simulator(legacy_shapes=True)  # reads transcripts as turns
async def test_csv_round_trips_through_the_csv_module(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "tasks.csv"
    stats = await client.export_tasks(SPACE, out, format="csv", page_size=100)
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # spreadsheets detect UTF-8 by the BOM
    with out.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert stats.tasks == len(rows) == len(sim)
    tasks = [msgspec.json.decode(raw, type=Task) for raw in sim.tasks_json()]
    for row, task in zip(rows, tasks, strict=True):
        assert row["task_id"] == task.task_id
        assert row["_id"] == (task.id or "")
        assert json.loads(row["input"]) == task.input
        if task.output is not None and task.output.transcript:
            first = task.output.transcript[0]
            assert row["output.transcript"].splitlines()[0].startswith(f"{first.role}: ")
            assert row["output.call_id"] == task.output.call_id
    # Cells with commas, quotes and line breaks survived the round trip.
    assert any("\n" in v or "," in v or '"' in v for row in rows for v in row.values())


async def test_csv_header_does_not_change_between_runs(client: UnpodClient, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    await client.export_tasks(SPACE, a, format="csv", status="pending")
    await client.export_tasks(SPACE, b, format="csv", status="completed")
    assert a.read_bytes().splitlines()[0] == b.read_bytes().splitlines()[0]


async def test_parquet_keeps_nested_structs(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "tasks.parquet"
    stats = await client.export_tasks(SPACE, out, format="parquet", page_size=100)
    table = pq.read_table(out)
    assert table.num_rows == stats.tasks == len(sim)
    assert table.column("task_id").to_pylist() == sim.task_ids()
    output_type = table.schema.field("output").type
    assert output_type.get_field_index("transcript") >= 0
    first = table.slice(0, 1).to_pylist()[0]
    expected = json.loads(sim.tasks_json()[0])
    assert first["output"]["call_id"] == expected["output"].get("call_id")
    assert json.loads(first["input"]) == expected["input"]


async def test_parquet_without_pyarrow_names_the_extra(
    sim: Simulator, client: UnpodClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ExportError, match=r"unpod-async\[parquet\]"):
        await client.export_tasks(SPACE, tmp_path / "x.parquet", format="parquet")
    assert sim.requests == []  # failed before any request
    assert list(tmp_path.iterdir()) == []


async def test_streams_to_a_binary_stream(sim: Simulator, client: UnpodClient) -> None:
    buffer = io.BytesIO()
    stats = await client.export_tasks(SPACE, buffer, page_size=100)
    assert buffer.getvalue().splitlines() == sim.tasks_json()
    assert stats.path is None
    assert stats.bytes == len(buffer.getvalue())


async def test_progress_reports_every_page(client: UnpodClient, tmp_path: Path) -> None:
    seen: list[ExportProgress] = []
    stats = await client.export_tasks(
        SPACE, tmp_path / "t.jsonl", page_size=100, progress=seen.append
    )
    assert [p.pages_done for p in seen] == list(range(1, stats.pages + 1))
    assert seen[-1].tasks_written == stats.tasks == 1000
    assert all(p.pages_planned >= 10 and p.expected == 1000 for p in seen)
    assert [p.tasks_written for p in seen] == sorted(p.tasks_written for p in seen)


# The server's status parameter is outcome= now; the legacy simulator reads it as the task status.
@pytest.mark.simulator(legacy_filters=True)
async def test_filters_reach_the_server(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    stats = await client.export_tasks(
        SPACE, tmp_path / "f.jsonl", outcome=["completed", "failed"], created_after=0, search="x"
    )
    query = sim.requests[0].query
    assert query["status"] == "completed,failed"
    assert query["from_ts"] == "0"
    assert query["search"] == "x"
    assert "space_id" not in query
    lines = jsonl_lines(tmp_path / "f.jsonl")
    assert len(lines) == stats.tasks
    assert {json.loads(line)["status"] for line in lines} <= {"completed", "failed"}


async def test_bad_arguments_fail_before_any_request(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="format"):
        await client.export_tasks(SPACE, tmp_path / "x", format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size"):
        await client.export_tasks(SPACE, tmp_path / "x", page_size=0)
    with pytest.raises(ValueError, match="does not exist"):
        await client.export_tasks(SPACE, tmp_path / "missing" / "x.jsonl")
    with pytest.raises(ValueError, match="stream"):
        await client.export_tasks(SPACE, io.BytesIO(), resume=True)
    assert sim.requests == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
async def test_resume_after_a_failure_fetches_only_missing_pages(
    sim: Simulator, tmp_path: Path, fmt: str
) -> None:
    if fmt == "parquet":
        pq = pytest.importorskip("pyarrow.parquet")
    clean = tmp_path / f"clean.{fmt}"
    out = tmp_path / f"resumed.{fmt}"
    async with make_client(sim, concurrency=1) as client:
        await client.export_tasks(SPACE, clean, format=fmt, page_size=50)  # type: ignore[arg-type]
        sim.requests.clear()
        sim.faults.append(Fault(kind="206", page=8, message="Invalid Space Token"))
        with pytest.raises(BusinessLogicError):
            await client.export_tasks(SPACE, out, format=fmt, page_size=50, resume=True)  # type: ignore[arg-type]
        assert not out.exists()
        assert any(name.endswith(".unpod-resume") for name in leftovers(tmp_path))
        sim.requests.clear()
        stats = await client.export_tasks(SPACE, out, format=fmt, page_size=50, resume=True)  # type: ignore[arg-type]
    fetched = sorted({r.page for r in sim.requests if r.page is not None})
    assert fetched[0] == 8
    assert 1 not in fetched
    assert stats.resumed_pages == 7
    assert stats.tasks == len(sim)
    if fmt == "parquet":
        assert pq.read_table(out).equals(pq.read_table(clean))
    else:
        assert out.read_bytes() == clean.read_bytes()
    assert leftovers(tmp_path) == []


async def test_resume_refuses_a_checkpoint_of_another_export(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    async with make_client(sim) as client:
        sim.faults.append(Fault(kind="206", page=3, message="Invalid Space Token"))
        with pytest.raises(BusinessLogicError):
            await client.export_tasks(SPACE, out, page_size=50, resume=True)
        with pytest.raises(ExportError, match="different export"):
            await client.export_tasks(SPACE, out, page_size=20, resume=True)


_KILL_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from unpod_async import UnpodClient

    async def main() -> None:
        async with UnpodClient(
            {token!r}, {org!r}, base_url=sys.argv[1], concurrency=2
        ) as client:
            await client.export_tasks({space!r}, sys.argv[2], page_size=50, resume=True)

    asyncio.run(main())
    """
)


async def test_resume_after_sigkill_equals_a_clean_export(tmp_path: Path) -> None:
    async with serve(tasks=3000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        async with make_client(sim) as client:
            clean = tmp_path / "clean.jsonl"
            await client.export_tasks(SPACE, clean, page_size=50)
        sim.latency = 0.02
        out = tmp_path / "out.jsonl"
        script = _KILL_SCRIPT.format(token=TOKEN, org=ORG, space=SPACE)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, sim.base_url, str(out)
        )
        checkpoint = tmp_path / ".out.jsonl.unpod-resume"
        for _ in range(1000):
            if checkpoint.exists() and b'"next_page":1' not in checkpoint.read_bytes():
                state = json.loads(checkpoint.read_bytes())
                if state["next_page"] > 15:
                    break
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        assert not out.exists()
        state = json.loads(checkpoint.read_bytes())
        assert 15 < state["next_page"] < 60
        sim.latency = 0.0
        sim.requests.clear()
        async with make_client(sim) as client:
            stats = await client.export_tasks(SPACE, out, page_size=50, resume=True)
        assert 1 not in {r.page for r in sim.requests}
        assert stats.resumed_pages == state["next_page"] - 1
    assert out.read_bytes() == clean.read_bytes()
    assert leftovers(tmp_path) == []


async def test_an_async_progress_callback_is_awaited(client: UnpodClient, tmp_path: Path) -> None:
    seen: list[int] = []

    async def progress(p: ExportProgress) -> None:
        await asyncio.sleep(0)
        seen.append(p.pages_done)

    stats = await client.export_tasks(SPACE, tmp_path / "t.jsonl", page_size=100, progress=progress)
    assert seen == list(range(1, stats.pages + 1))  # awaited, in order (and never left unawaited)
