"""``tasks export``'s sources as the command line combines them: ``--from-db`` reads one space
of a store and nothing else, with the progress display every export has; and the dates that
``--since``/``--until`` read, the same on every Python version."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from unpod_async import _commands, cli
from unpod_async._dates import parse_datetime
from unpod_async._progress import ProgressDisplay
from unpod_async.testing import Simulator, serve

from .helpers import SPACE, make_client, run_python

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


async def _synced(sim: Simulator, db: Path) -> None:
    async with make_client(sim) as client:
        await client.sync_tasks(sim.space_token, db)


def _sim_env(sim: Simulator) -> dict[str, str]:
    return {
        "UNPOD_API_TOKEN": sim.token,
        "UNPOD_ORG_HANDLE": sim.org_handle,
        "UNPOD_BASE_URL": sim.base_url,
    }


# --- --from-db takes one SPACE_TOKEN ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ([SPACE, "--run", "R1", "-o", "{tmp}/b.jsonl"], "--run"),
        (["--all-spaces", "--output-dir", "{tmp}/d"], "--all-spaces"),
        (["--agent", "agent-1", "-o", "{tmp}/a.jsonl"], "--agent"),
    ],
)
async def test_from_db_with_another_source_is_a_usage_error(
    tmp_path: Path, source: list[str], named: str
) -> None:
    db = tmp_path / "store" / "unpod.sqlite"
    db.parent.mkdir()
    async with serve(tasks=120) as sim:
        await _synced(sim, db)
        sent = len(sim.requests)
        argv = [arg.format(tmp=tmp_path) for arg in source]
        code, out, err = await run_python(
            "-m", "unpod_async", "tasks", "export", *argv, "--from-db", str(db),
            env=_sim_env(sim),
        )  # fmt: skip
        assert len(sim.requests) == sent  # nothing asked of the server
    text = err.decode()
    assert code == 2, text
    assert "--from-db reads one SPACE_TOKEN" in text
    assert named in text.splitlines()[-1]
    assert out == b""
    assert [p.name for p in tmp_path.iterdir()] == ["store"]  # nothing written


async def test_from_db_refuses_server_options_before_opening_the_store(tmp_path: Path) -> None:
    code, _, err = await run_python(
        "-m", "unpod_async", "tasks", "export", SPACE, "--from-db", str(tmp_path / "none.db"),
        "-o", str(tmp_path / "t.jsonl"), "--strict", "--deadline", "5",
    )  # fmt: skip
    assert code == 2
    assert "--from-db takes no --strict, --deadline: they are the server's" in err.decode()


# --- --from-db has the display of every export ------------------------------------------------


async def _main(*argv: str) -> int:
    """``main(argv)`` in a thread: it runs a loop of its own."""
    return await asyncio.to_thread(cli.main, list(argv))


@contextlib.contextmanager
def _opened_displays(*, stdout_is_a_terminal: bool) -> Iterator[list[dict[str, Any]]]:
    """The keywords of every display the command opens (each a silent one)."""
    opened: list[dict[str, Any]] = []

    def spy(target: str = "", **options: Any) -> ProgressDisplay:
        opened.append({"target": target, **options})
        return ProgressDisplay(target)

    with (
        mock.patch.object(_commands, "open_display", spy),
        mock.patch.object(_commands, "isatty", return_value=stdout_is_a_terminal),
    ):
        yield opened


async def test_from_db_follows_progress_interval(tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    async with serve(tasks=120) as sim:
        await _synced(sim, db)
    out = tmp_path / "t.jsonl"
    with _opened_displays(stdout_is_a_terminal=False) as opened:
        argv = ["tasks", "export", SPACE, "--from-db", str(db), "-o", str(out)]
        assert await _main(*argv, "--progress-interval", "0.25") == 0
    assert [(o.get("interactive"), o.get("interval")) for o in opened] == [(None, 0.25)]
    assert len(out.read_bytes().splitlines()) == 120


async def test_from_db_to_stdout_on_a_terminal_prints_no_progress_lines(tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    async with serve(tasks=120) as sim:
        await _synced(sim, db)
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    with (
        _opened_displays(stdout_is_a_terminal=True) as opened,
        mock.patch.object(sys, "stdout", stdout),
    ):
        assert await _main("tasks", "export", SPACE, "--from-db", str(db), "-o", "-") == 0
    # Neither a live display nor progress lines: either would tear the JSONL on the terminal.
    assert [(o.get("interactive"), o.get("interval")) for o in opened] == [(False, 0.0)]
    stdout.flush()
    assert len(raw.getvalue().splitlines()) == 120


# --- what an interrupted export says ------------------------------------------------------------


def _hint(*argv: str) -> str:
    args = cli.build_parser().parse_args(["tasks", "export", *argv])
    return _commands.interrupt_hint(args)


def test_an_interrupted_export_from_the_store_suggests_no_resume() -> None:
    hint = _hint(SPACE, "--from-db", "u.sqlite", "-o", "t.jsonl")
    assert hint == "interrupted; the destination was left untouched"
    assert "--resume" in _hint(SPACE, "-o", "t.jsonl")  # the server's export: it can resume
    assert "--resume" in _hint(SPACE, "-o", "t.jsonl", "--resume")
    assert "--resume" in _hint("--all-spaces", "--output-dir", "d", "--resume")
    assert "--resume" not in _hint("--all-spaces", "--output-dir", "d")


# --- filters ----------------------------------------------------------------------------------


def test_status_options_are_split_once_into_one_tuple() -> None:
    args = cli.build_parser().parse_args(
        ["tasks", "get", SPACE, "--status", "completed, failed", "--status", "hold"]
    )
    assert _commands._filters(args)["status"] == ("completed", "failed", "hold")


# --- dates: the server's own reader, not the Python version's fromisoformat --------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-01-01T00:00:00.5Z", EPOCH + 0.5),  # one digit of fraction: not on 3.10's
        ("2026-01-01T00:00:00,5", EPOCH + 0.5),
        ("2026-01-01T00:00:00.1234567Z", EPOCH + 0.123456),
        ("2026-01-01 01:00:00 +01:00", EPOCH),
        ("2026-01-01t00:00:00z", EPOCH),
        ("2026-01-01T01:00+0100", EPOCH),
        (" 2026-01-01 ", EPOCH),
        ("-86400", -86_400.0),
    ],
)
def test_dates_every_python_reads(text: str, seconds: float) -> None:
    assert cli.parse_date(text) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    # ISO week and basic forms: Python 3.11's fromisoformat reads them, 3.10's does not.
    ["2026-W01-4", "20260101T000000", "2026-01-01T00", "2026-13-01", "2026-01-01T00:00+24:00",
     "yesterday", ""],
)  # fmt: skip
def test_dates_no_python_reads(text: str) -> None:
    assert parse_datetime(text) is None
    with pytest.raises(argparse.ArgumentTypeError, match="expected an ISO date"):
        cli.parse_date(text)


def test_a_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["tasks", "export", SPACE, "-o", "t.jsonl", "--since", "2026-W01-4"])
    assert code == 2
    assert "--since: expected an ISO date" in capsys.readouterr().err
