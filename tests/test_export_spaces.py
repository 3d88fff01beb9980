"""Every space of an organization at once (``export_spaces``, ``tasks export --all-spaces``):
one file per space (a partitioned dataset for Parquet), the one bound held across spaces and
measured at the server, fair turns, a failing space among several, resume, progress."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
from pathlib import Path
from unittest import mock

import pytest

from unpod_async import (
    BusinessLogicError,
    DeadlineExceededError,
    ServerError,
    Space,
    SpacesExportStats,
    SpacesProgress,
    UnpodClient,
    cli,
)
from unpod_async.testing import Fault, Simulator

from .helpers import SPACE, leftovers, make_client, serve_recorded, threaded_serve

ORG_SPACES = {"alpha": 640, "beta": 0, "gamma": 1210, "delta": 75}
SIZES = {SPACE: 1000, **ORG_SPACES}


def _lines(path: Path) -> list[str]:
    return [json.loads(line)["task_id"] for line in path.read_bytes().splitlines()]


def _assert_every_space_whole(sim: Simulator, out: Path, summary: SpacesExportStats) -> None:
    assert [r.space_token for r in summary.results] == sim.space_tokens
    for result in summary.results:
        assert result.complete, result
        assert result.path == str(out / f"{result.space_token}.jsonl")
        assert _lines(Path(result.path)) == sim.space(result.space_token).task_ids()
    assert summary.complete
    assert summary.tasks == sum(SIZES.values())
    assert leftovers(out) == []


@pytest.mark.simulator(spaces=ORG_SPACES)
async def test_every_space_to_its_own_jsonl_file(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "org"  # created
    summary = await client.export_spaces(out)
    _assert_every_space_whole(sim, out, summary)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.jsonl" for t in SIZES)
    # the tasks of each space are its own: no task id in two files
    assert sum(len(set(_lines(out / f"{t}.jsonl"))) for t in SIZES) == summary.tasks


@pytest.mark.simulator(spaces=ORG_SPACES)
async def test_csv_per_space_and_spaces_given(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    chosen = ["gamma", Space(token="delta", name="Delta"), "gamma"]  # once each, in this order
    summary = await client.export_spaces(tmp_path, format="csv", spaces=chosen)
    assert [(r.space_token, r.name) for r in summary.results] == [
        ("gamma", None),
        ("delta", "Delta"),
    ]
    for token in ("gamma", "delta"):
        with (tmp_path / f"{token}.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert [row["task_id"] for row in rows] == sim.space(token).task_ids()
    assert not any(r.path.endswith("/spaces/") for r in sim.requests)  # not listed: given


@pytest.mark.simulator(spaces=ORG_SPACES)
async def test_parquet_is_one_dataset_partitioned_by_space(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    ds = pytest.importorskip("pyarrow.dataset")
    duckdb = pytest.importorskip("duckdb")
    summary = await client.export_spaces(tmp_path, format="parquet", resume=True)
    assert summary.complete
    for token in SIZES:
        part = tmp_path / f"space_token={token}" / "part-0.parquet"
        assert summary.results[sim.space_tokens.index(token)].path == str(part)
        assert part.is_file()
        assert leftovers(part.parent) == []
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == sum(SIZES.values())
    by_space: dict[str, list[str]] = {}
    for token, task_id in zip(
        table.column("space_token").to_pylist(), table.column("task_id").to_pylist(), strict=True
    ):
        by_space.setdefault(token, []).append(task_id)
    assert {t: sorted(v) for t, v in by_space.items()} == {
        t: sorted(sim.space(t).task_ids()) for t in SIZES if SIZES[t]
    }
    glob = str(tmp_path / "**" / "*.parquet")
    rows = duckdb.sql(
        f"select space_token, count(*), count(distinct task_id) from "
        f"read_parquet('{glob}', hive_partitioning=true) group by space_token"
    ).fetchall()
    assert {token: (n, distinct) for token, n, distinct in rows} == {
        t: (n, n) for t, n in SIZES.items() if n
    }
    # the columns are the same in every part, the partition's token one of them
    spaces_ids = duckdb.sql(
        f"select distinct space_token, space_id from read_parquet('{glob}', hive_partitioning=true)"
    ).fetchall()
    assert len({space_id for _, space_id in spaces_ids}) == len(spaces_ids) == 4


async def test_the_bound_holds_across_spaces_measured_at_the_server(tmp_path: Path) -> None:
    spaces = {f"s{i}": 300 + 137 * i for i in range(7)}
    async with (
        serve_recorded(900, latency=0.01, spaces=spaces) as (sim, server),
        make_client(sim, concurrency=5) as client,
    ):
        summary = await client.export_spaces(tmp_path, spaces_at_once=8, page_size=50)
        assert client._gate.peak_in_flight == 5
    assert summary.complete
    assert server.peak == sim.peak_in_flight == 5  # the bound is used, and never exceeded
    # every space was in flight at once at some point: they really did run together
    pulls = [r.path.split("/")[5] for r in sim.requests if r.path.endswith("/tasks/")]
    first = {space: i for i, space in reversed(list(enumerate(pulls)))}
    last = {space: i for i, space in enumerate(pulls)}
    assert len(first) == 8
    assert max(first.values()) < min(last.values())


async def test_a_big_space_never_starves_the_others(tmp_path: Path) -> None:
    small = {f"small{i}": 400 for i in range(3)}
    async with (
        serve_recorded(6000, latency=0.004, spaces=small) as (sim, server),
        make_client(sim, concurrency=4) as client,
    ):
        summary = await client.export_spaces(tmp_path, spaces_at_once=4, page_size=100)
    assert summary.complete
    order = [r.path.split("/")[5] for r in sim.requests if r.path.endswith("/tasks/")]
    big = [i for i, space in enumerate(order) if space == SPACE]
    for token in small:
        done = max(i for i, space in enumerate(order) if space == token)
        # each small space's 5 pages are done while the big one has most of its 61 left
        assert done < big[len(big) // 3], (token, done)
    assert server.peak == 4


@pytest.mark.simulator(spaces=ORG_SPACES)
async def test_a_failing_space_does_not_stop_the_others(
    sim: Simulator, client: UnpodClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim.space("gamma").faults.append(Fault("status", status=500, times=10_000))
    sim.space("delta").faults.append(
        Fault("206", message="You Don't have Access to this Space", times=10_000)
    )
    with caplog.at_level(logging.WARNING, logger="unpod_async"):
        summary = await client.export_spaces(tmp_path)
    failed = {r.space_token: r.error for r in summary.failed}
    assert set(failed) == {"gamma", "delta"}
    assert isinstance(failed["gamma"], ServerError)
    assert isinstance(failed["delta"], BusinessLogicError)
    assert not failed["delta"].transient
    assert not summary.complete
    for result in summary.results:
        path = Path(result.path)
        assert path.exists() == result.ok
        if result.ok:
            assert result.complete
            assert _lines(path) == sim.space(result.space_token).task_ids()
    assert summary.tasks == SIZES[SPACE] + SIZES["alpha"]
    assert "space gamma failed" in caplog.text
    assert leftovers(tmp_path) == []


async def test_resume_continues_a_failed_space_where_it_stopped(tmp_path: Path) -> None:
    async with serve_recorded(400, spaces={"b": 2000}) as (sim, _), make_client(sim) as client:
        sim.space("b").faults.append(Fault("status", status=500, page=12, times=10_000))
        first = await client.export_spaces(tmp_path, resume=True, page_size=50)
        assert [r.space_token for r in first.failed] == ["b"]
        assert ".b.jsonl.unpod-partial" in leftovers(tmp_path)
        sim.space("b").faults.clear()
        second = await client.export_spaces(tmp_path, resume=True, page_size=50)
    assert second.complete
    b = second.results[1]
    assert b.stats is not None
    assert b.stats.resumed_pages >= 8  # the pages written before the failure are not fetched
    assert _lines(tmp_path / "b.jsonl") == sim.space("b").task_ids()
    assert leftovers(tmp_path) == []


@pytest.mark.simulator(spaces=ORG_SPACES)
async def test_progress_counts_spaces_and_tasks(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    seen: list[SpacesProgress] = []

    async def progress(snap: SpacesProgress) -> None:
        await asyncio.sleep(0)
        seen.append(snap)

    summary = await client.export_spaces(tmp_path, progress=progress, spaces_at_once=2)
    final = seen[-1]
    assert (final.spaces_done, final.spaces_total, final.spaces_failed) == (5, 5, 0)
    assert final.tasks_written == final.expected == summary.tasks
    done = [s.spaces_done for s in seen]
    assert done == sorted(done)
    assert {s.space_token for s in seen} == set(SIZES)


@pytest.mark.simulator(spaces={"ok": 10, "bad token": 10})
async def test_a_token_that_cannot_be_a_path_fails_that_space_only(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    summary = await client.export_spaces(tmp_path)
    assert [r.space_token for r in summary.failed] == ["bad token"]
    assert isinstance(summary.failed[0].error, ValueError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.jsonl", f"{SPACE}.jsonl"]


async def test_the_deadline_covers_the_whole_run(tmp_path: Path) -> None:
    spaces = {f"s{i}": 500 for i in range(4)}
    async with (
        serve_recorded(500, latency=0.05, spaces=spaces) as (sim, _),
        make_client(sim, concurrency=2) as client,
    ):
        summary = await client.export_spaces(tmp_path, deadline=0.4, spaces_at_once=2)
    assert summary.failed
    assert all(isinstance(r.error, DeadlineExceededError) for r in summary.failed)
    assert summary.seconds < 1.5


async def test_arguments_are_checked_before_any_request(tmp_path: Path) -> None:
    async with serve_recorded(10) as (sim, _), make_client(sim) as client:
        (tmp_path / "file").write_text("x")
        with pytest.raises(ValueError, match="not a directory"):
            await client.export_spaces(tmp_path / "file")
        with pytest.raises(ValueError, match="format"):
            await client.export_spaces(tmp_path, format="xml")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="spaces_at_once"):
            await client.export_spaces(tmp_path, spaces_at_once=0)
        with pytest.raises(ValueError, match="search"):
            await client.export_spaces(tmp_path, search="a", search_pattern="b")
    assert sim.requests == []


# --- the command line ---------------------------------------------------------------------------


async def _cli(sim: Simulator, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {
        "UNPOD_API_TOKEN": sim.token,
        "UNPOD_ORG_HANDLE": sim.org_handle,
        "UNPOD_BASE_URL": sim.base_url,
        "PATH": os.environ.get("PATH", ""),
    }
    with (
        mock.patch.dict(os.environ, env, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = await asyncio.to_thread(cli.main, [*args, "--max-retries", "2"])
    return code, out.getvalue(), err.getvalue()


def test_cli_all_spaces(tmp_path: Path) -> None:
    with threaded_serve(300, spaces={"x": 120}) as (sim, _):
        code, _, err = asyncio.run(
            _cli(sim, "tasks", "export", "--all-spaces", "--output-dir", str(tmp_path))
        )
    assert code == 0, err
    assert "exported 420 tasks of 2/2 spaces" in err
    assert _lines(tmp_path / "x.jsonl") == sim.space("x").task_ids()


def test_cli_a_failed_space_is_partial_exit_4_and_all_failed_exit_1(tmp_path: Path) -> None:
    with threaded_serve(300, spaces={"x": 120, "y": 50}) as (sim, _):
        sim.space("x").faults.append(Fault("status", status=502, times=10_000))
        code, _, err = asyncio.run(
            _cli(sim, "tasks", "export", "--all-spaces", "--output-dir", str(tmp_path), "--resume")
        )
        assert code == 4, err
        assert "failed: space x:" in err
        assert "partial: 1 of 3 spaces failed (rerun with --resume to continue them)" in err
        for token in sim.space_tokens:
            sim.space(token).faults.append(Fault("status", status=502, times=10_000))
        code, _, err = asyncio.run(
            _cli(sim, "tasks", "export", "--all-spaces", "--output-dir", str(tmp_path / "z"))
        )
    assert code == 1, err


def test_cli_runs_list_and_export_of_a_run_and_an_agent(tmp_path: Path) -> None:
    with threaded_serve(600) as (sim, _):
        code, out, _ = asyncio.run(_cli(sim, "runs", "list", SPACE))
        assert code == 0
        assert out.splitlines()[0].split() == ["RUN_ID", "STATUS", "TASKS", "MODE", "CREATED"]
        run_id = out.splitlines()[1].split()[0]
        code, out, _ = asyncio.run(_cli(sim, "runs", "list", SPACE, "--json"))
        assert [r["batch_count"] for r in json.loads(out)] == [100, 250, 250]
        code, _, err = asyncio.run(
            _cli(sim, "tasks", "export", SPACE, "--run", run_id, "-o", str(tmp_path / "r.jsonl"))
        )
        assert code == 0, err
        assert len(_lines(tmp_path / "r.jsonl")) == 100
        code, _, err = asyncio.run(
            _cli(sim, "tasks", "export", "--agent", "agent-2", "-o", str(tmp_path / "a.csv"))
        )
        assert code == 0, err
        with (tmp_path / "a.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 250  # one run
        assert {row["assignee"] for row in rows} == {"agent-2"}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["tasks", "export", "--all-spaces"], "--output-dir"),
        (["tasks", "export", "--all-spaces", "--output-dir", "d", "-o", "f"], "--output-dir"),
        (["tasks", "export", "s1", "--agent", "a", "-o", "f"], "not SPACE_TOKEN and --agent"),
        (["tasks", "export", "-o", "f"], "give one of SPACE_TOKEN"),
        (["tasks", "export", "--agent", "a", "--run", "R1", "-o", "f"], "--run RUN_ID needs"),
        (["tasks", "export", "s1", "--output-dir", "d"], "-o/--output"),
        (["tasks", "export", "--all-spaces", "--output-dir", "d", "--spaces-at-once", "0"], "1"),
    ],
)
def test_cli_sources_are_checked_by_the_parser(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert said in err
