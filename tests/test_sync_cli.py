"""``unpod-async tasks sync`` and ``tasks export --from-db``: what they print and exit with."""

from __future__ import annotations

import argparse
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from unpod_async import cli
from unpod_async.testing import serve

from .helpers import SPACE, child_env, run_here


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86_400), ("90m", 5400), ("2d", 172_800), ("1h30m", 5400), ("3600", 3600), ("0", 0),
     ("1.5h", 5400), ("1w", 604_800), ("45s", 45)],
)  # fmt: skip
def test_lookback_durations(text: str, seconds: int) -> None:
    assert cli.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "24x", "-1h", "1h-", "ten"])
def test_a_bad_lookback_is_a_usage_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_duration(text)
    assert cli.main(["tasks", "sync", SPACE, "--db", "x.sqlite", "--lookback", text]) == 2


async def test_sync_then_sync_again(tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    async with serve(tasks=1500) as sim:
        sim.settle(keep=50)  # open tasks in page 1 only, even after 5 arrive
        code, _, err = await run_here(
            "tasks", "sync", sim.space_token, "--db", str(db), env=child_env(sim)
        )
        assert code == 0, err
        assert f"synced {db} (full): 1,500 new, 0 updated, 0 unchanged, 0 deleted; " in err
        assert "16 requests" in err
        assert err.rstrip().endswith("1,500 tasks stored")
        sim.insert(5)
        code, _, err = await run_here(
            "tasks", "sync", sim.space_token, "--db", str(db), "--lookback", "0", env=child_env(sim)
        )
        assert code == 0, err
        assert f"synced {db} (head, down to page 1): 5 new, 0 updated, 95 unchanged" in err
        assert "1 request in" in err


async def test_a_sync_that_knows_it_is_short_exits_3(tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    async with serve(tasks=430, count_offset=70) as sim:
        code, _, err = await run_here(
            "tasks", "sync", sim.space_token, "--db", str(db), env=child_env(sim)
        )
        assert code == 3, err
        assert "incomplete: 70 fewer tasks than the server's count of 500" in err
        code, _, err = await run_here(
            "tasks", "sync", sim.space_token, "--db", str(db), "--strict", env=child_env(sim)
        )
        assert code == 1, err


async def test_export_from_the_store_needs_no_token_and_no_request(tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    async with serve(tasks=300) as sim:
        code, _, err = await run_here(
            "tasks", "sync", sim.space_token, "--db", str(db), env=child_env(sim)
        )
        assert code == 0, err
        sent = len(sim.requests)
        out = tmp_path / "tasks.csv"
        code, _, err = await run_here(
            "tasks",
            "export",
            sim.space_token,
            "--from-db",
            str(db),
            "-o",
            str(out),
            env=child_env(),
        )
        assert code == 0, err
        assert len(sim.requests) == sent
        assert re.search(rf"exported 300 tasks of {SPACE} from .* without a request", err)
        assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # the CSV export's own writer
        parquet = tmp_path / "failed.parquet"
        code, _, err = await run_here(
            "tasks", "export", sim.space_token, "--from-db", str(db), "-o", str(parquet),
            "--status", "failed", env=child_env(),
        )  # fmt: skip
        assert code == 0, err
        import pyarrow.parquet as pq

        failed = [
            doc["task_id"]
            for doc in map(msgspec.json.decode, sim.tasks_json())
            if doc["status"] == "failed"
        ]
        assert pq.read_table(parquet).column("task_id").to_pylist() == failed


@pytest.mark.parametrize("option", [["--outcome", "Interested"], ["--resume"], ["--search", "x"]])
async def test_export_from_the_store_refuses_what_only_the_server_does(
    tmp_path: Path, option: list[str]
) -> None:
    out = tmp_path / "t.jsonl"
    code, _, err = await run_here(
        "tasks", "export", SPACE, "--from-db", str(tmp_path / "u.sqlite"), "-o", str(out), *option,
        env=child_env(),
    )  # fmt: skip
    assert code == 2
    assert "--from-db takes no" in err
    assert not out.exists()


async def test_export_from_a_missing_store_is_an_error(tmp_path: Path) -> None:
    code, _, err = await run_here(
        "tasks", "export", SPACE, "--from-db", str(tmp_path / "none.sqlite"), "-o",
        str(tmp_path / "t.jsonl"), env=child_env(),
    )  # fmt: skip
    assert code == 1
    assert "no store at" in err
    foreign = tmp_path / "other.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.close()
    code, _, err = await run_here(
        "tasks", "sync", SPACE, "--db", str(foreign), "--token", "t", "--base-url",
        "http://127.0.0.1:9", env=child_env(),
    )  # fmt: skip
    assert code == 1
    assert "not an unpod-async store" in err
