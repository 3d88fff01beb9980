"""The ``unpod-async`` command, run as a real subprocess against an in-process simulator.

The simulator lives in the test's event loop, so the command runs with
``asyncio.create_subprocess_exec`` (a blocking ``subprocess.run`` would freeze the simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
import pytest

import unpod_async
from unpod_async import _commands, cli
from unpod_async._progress import PlainDisplay, ProgressDisplay, RichDisplay, open_display
from unpod_async._redact import Redactor
from unpod_async.testing import Fault, Simulator, serve

from .helpers import sim_options

TASKS = 1500
SECRET = "s3cret-Token-never-shown"


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    async with serve(tasks=TASKS, **sim_options(request)) as simulator:
        yield simulator


def _env(**extra: str) -> dict[str, str]:
    """The environment of a child: no UNPOD_* from the developer's shell, no rich colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNPOD_")}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
    env.update(extra)
    return env


def _sim_env(sim: Simulator, **extra: str) -> dict[str, str]:
    settings = {
        "UNPOD_API_TOKEN": sim.token,
        "UNPOD_ORG_HANDLE": sim.org_handle,
        "UNPOD_BASE_URL": sim.base_url,
    }
    return _env(**{**settings, **extra})


async def _start(
    args: Sequence[str], env: dict[str, str], cwd: Path | None = None, stdout: Any = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "unpod_async",
        *args,
        stdout=asyncio.subprocess.PIPE if stdout is None else stdout,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )


async def run(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    stdout: Any = None,
    timeout: float = 20,
) -> tuple[int, str, str]:
    proc = await _start(args, env, cwd, stdout)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, (out or b"").decode(), err.decode()


async def run_here(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``main(args)`` in this process (in a thread: the simulator keeps this loop): quicker
    than a subprocess where exit codes and output are all a test looks at."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = await asyncio.to_thread(cli.main, list(args))
    return code, out.getvalue(), err.getvalue()


def _fast(*args: str) -> tuple[str, ...]:
    """Options that keep retries quick (the simulator is on loopback)."""
    return (*args, "--max-retries", "3")


# --- parsing, usage errors and secrets (in-process: nothing is sent) -------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert unpod_async.__version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["tasks"],
        ["tasks", "export", "space-demo"],  # no --output
        ["tasks", "export", "space-demo", "-o", "x.jsonl", "--page-size", "0"],
        ["tasks", "export", "space-demo", "-o", "x.jsonl", "--format", "xml"],
        ["tasks", "export", "space-demo", "-o", "x.jsonl", "--since", "last tuesday"],
        ["tasks", "get", "space-demo", "--page", "-1"],
        ["spaces", "list", "--bogus"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert "Traceback" not in err


def test_help_never_shows_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UNPOD_API_TOKEN", SECRET)
    assert cli.main(["--help"]) == 0
    assert cli.main(["tasks", "export", "--help"]) == 0
    out, err = capsys.readouterr()
    assert "UNPOD_API_TOKEN" in out
    assert SECRET not in out + err


def test_redactor_replaces_whole_tokens_only() -> None:
    redact = Redactor()
    redact.add("x")
    redact.add(SECRET)
    assert redact(f"directory x does not exist; Token {SECRET}.") == (
        "directory <redacted> does not exist; Token <redacted>."
    )


def test_usage_error_messages_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("UNPOD_API_TOKEN", raising=False)
    # A token pasted where a number belongs would be echoed by argparse.
    assert cli.main(["--token", SECRET, "tasks", "get", "s", "--page", SECRET]) == 2
    err = capsys.readouterr().err
    assert "--page" in err
    assert SECRET not in err


def test_global_options_go_before_or_after_the_command() -> None:
    parser = cli.build_parser()
    before = parser.parse_args(["--concurrency", "3", "orgs", "list"])
    after = parser.parse_args(["orgs", "list", "--concurrency", "3"])
    assert before.concurrency == after.concurrency == 3
    both = parser.parse_args(["--timeout", "1", "orgs", "list", "--timeout", "2"])
    assert both.timeout == 2


def test_parse_date() -> None:
    epoch = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert cli.parse_date("2026-01-01") == epoch
    assert cli.parse_date("2026-01-01T00:00:00") == epoch  # naive means UTC
    assert cli.parse_date("2026-01-01T00:00:00Z") == epoch
    assert cli.parse_date("2026-01-01T01:00:00+01:00") == epoch
    assert cli.parse_date("1767225600") == epoch
    assert cli.parse_date("1767225600.5") == epoch + 0.5


@pytest.mark.parametrize(
    ("output", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.NDJSON", "jsonl"),
        ("a.csv", "csv"),
        ("dir/a.parquet", "parquet"),
        ("a.txt", "jsonl"),
        ("-", "jsonl"),
    ],
)
def test_format_from_extension(output: str, fmt: str) -> None:
    assert _commands.format_for(output) == fmt


def test_summary_line() -> None:
    stats = unpod_async.ExportStats(
        tasks=20000,
        pages=200,
        expected=20000,
        duplicates=0,
        passes=1,
        recovered=0,
        retries=1,
        seconds=3.2,
        bytes=1,
        path="out.jsonl",
        format="jsonl",
    )
    assert _commands.summary_line(stats) == (
        "exported 20000 tasks (20000 expected) from 200 pages to out.jsonl in 3.2s "
        "(6,250 tasks/s), 1 retry, 0 duplicates dropped"
    )


# --- the progress display ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Snap:
    pages_done: int
    pages_planned: int
    tasks_written: int
    expected: int
    retries: int
    elapsed: float


def _snap(done: int, tasks: int) -> _Snap:
    return _Snap(
        pages_done=done,
        pages_planned=200,
        tasks_written=tasks,
        expected=20000,
        retries=2,
        elapsed=2.0,
    )


def test_display_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with open_display(stream=stream) as display:
        display.update(_snap(1, 100))
    assert type(display) is ProgressDisplay
    assert stream.getvalue() == ""


def test_plain_display_redraws_one_line() -> None:
    stream = io.StringIO()
    with open_display(stream=stream, interactive=True, use_rich=False) as display:
        assert isinstance(display, PlainDisplay)
        display.update(_snap(1, 100))
        display.update(_snap(100, 10000))
    text = stream.getvalue()
    assert text.startswith("\r")
    assert text.endswith("\n")
    assert text.count("\n") == 1
    last = text.rstrip("\n").split("\r")[-1]
    assert "100/200 pages" in last
    assert "10,000/20,000 tasks" in last
    assert "5,000 tasks/s" in last
    assert "ETA 0:02" in last
    assert "2 retries" in last


def test_rich_display() -> None:
    pytest.importorskip("rich")
    stream = io.StringIO()
    with open_display(stream=stream, interactive=True, use_rich=True) as display:
        assert isinstance(display, RichDisplay)
        display.update(_snap(100, 10000))
    assert "10,000/20,000 tasks" in stream.getvalue()


# --- commands against the simulator -----------------------------------------------------------


async def test_missing_token_is_a_usage_error_and_sends_nothing(sim: Simulator) -> None:
    code, out, err = await run_here(
        "tasks", "get", sim.space_token, "--base-url", sim.base_url, env=_env()
    )
    assert code == 2
    assert out == ""
    assert err == "error: no API token: pass --token or set UNPOD_API_TOKEN\n"
    assert sim.requests == []


async def test_bad_space_token_is_a_usage_error(sim: Simulator) -> None:
    code, _, err = await run_here("tasks", "get", "../../admin", env=_sim_env(sim))
    assert code == 2
    assert err.startswith("error: invalid space_token")
    assert sim.requests == []


@pytest.mark.parametrize("how", ["env", "option"])
async def test_wrong_token_is_an_api_error_and_never_shown(sim: Simulator, how: str) -> None:
    env = _sim_env(sim)
    args = ["tasks", "get", sim.space_token]
    if how == "env":
        env["UNPOD_API_TOKEN"] = SECRET
    else:
        args = ["--token", SECRET, *args]
    code, out, err = await run(*args, "-v", env=env)
    assert code == 1
    assert out == ""
    assert err.startswith("error: HTTP 401: Invalid token.")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert SECRET not in out + err


async def test_unknown_space_is_an_api_error(sim: Simulator) -> None:
    code, _, err = await run_here("tasks", "get", "no-such-space", env=_sim_env(sim))
    assert code == 1
    assert err.startswith("error: HTTP 206: Invalid Space Token")


async def test_tasks_get(sim: Simulator) -> None:
    code, out, err = await run_here(
        "tasks", "get", sim.space_token, "--page", "3", "--page-size", "7", env=_sim_env(sim)
    )
    assert (code, err) == (0, "")
    page = msgspec.json.decode(out)
    assert page["count"] == TASKS
    assert [t["task_id"] for t in page["data"]] == sim.task_ids()[14:21]
    assert out.startswith("{\n  ")  # pretty


async def test_orgs_and_spaces(sim: Simulator) -> None:
    env = _sim_env(sim)
    code, out, _ = await run_here("orgs", "list", env=env)
    assert code == 0
    assert out.split() == ["HANDLE", "NAME", sim.org_handle, "Demo", "Org"]

    code, out, _ = await run_here("orgs", "list", "--json", env=env)
    assert code == 0
    assert [o["domain_handle"] for o in msgspec.json.decode(out)] == [sim.org_handle]

    code, out, _ = await run_here("spaces", "list", env=env)
    assert code == 0
    assert out.splitlines()[1].split() == [sim.space_token, "Demo", "space"]

    code, out, _ = await run_here("spaces", "list", "--json", env=env)
    assert code == 0
    assert [s["token"] for s in msgspec.json.decode(out)] == [sim.space_token]

    no_org = {k: v for k, v in env.items() if k != "UNPOD_ORG_HANDLE"}
    code, out, err = await run_here("spaces", "list", env=no_org)
    assert code == 2
    assert "--org-handle" in err
    code, out, err = await run_here("spaces", "list", "--org-handle", "other-org", env=no_org)
    assert code == 1
    assert err.startswith("error: HTTP 404: Organization not found")


# --- export ---------------------------------------------------------------------------------

SUMMARY = re.compile(
    r"exported (\d+) tasks \((\d+) expected\) from (\d+) pages to (.+) in [\d.]+s "
    r"\([\d,]+ tasks/s\), \d+ retr(?:y|ies), (\d+) duplicates? dropped(, .*)?\n"
)


async def test_export_jsonl(sim: Simulator, tmp_path: Path) -> None:
    out_file = tmp_path / "tasks.jsonl"
    sim.faults.append(Fault("status", page=3, status=503))
    code, out, err = await run(
        *_fast("tasks", "export", sim.space_token, "--output", str(out_file)),
        env=_sim_env(sim),
    )
    assert code == 0, err
    assert out == ""
    # Not a terminal: no progress redraws, just one summary line.
    match = SUMMARY.fullmatch(err)
    assert match, err
    assert match.group(1, 2, 4, 5) == (str(TASKS), str(TASKS), str(out_file), "0")
    assert "1 retry," in err
    lines = out_file.read_bytes().splitlines()
    assert [msgspec.json.decode(line)["task_id"] for line in lines] == sim.task_ids()


async def test_export_csv_from_extension(sim: Simulator, tmp_path: Path) -> None:
    out_file = tmp_path / "tasks.csv"
    code, _, err = await run(
        "tasks", "export", sim.space_token, "-o", str(out_file), "--page-size", "64",
        env=_sim_env(sim),
    )  # fmt: skip
    assert code == 0, err
    with out_file.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == TASKS
    assert [row["task_id"] for row in rows] == sim.task_ids()


async def test_export_parquet(sim: Simulator, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out_file = tmp_path / "tasks.data"
    code, _, err = await run(
        "tasks", "export", sim.space_token, "-o", str(out_file), "--format", "parquet",
        env=_sim_env(sim),
    )  # fmt: skip
    assert code == 0, err
    assert pq.read_table(out_file).num_rows == TASKS


async def test_export_to_stdout(sim: Simulator) -> None:
    code, out, err = await run(
        "tasks", "export", sim.space_token, "--output", "-", env=_sim_env(sim)
    )
    assert code == 0, err
    ids = [msgspec.json.decode(line)["task_id"] for line in out.splitlines()]
    assert ids == sim.task_ids()
    match = SUMMARY.fullmatch(err)
    assert match, err
    assert match.group(4) == "stdout"


# The server's status parameter is --outcome now; the legacy simulator reads it as the task status.
@pytest.mark.simulator(legacy_shapes=True, legacy_filters=True)
async def test_export_filters(sim: Simulator, tmp_path: Path) -> None:
    out_file = tmp_path / "some.jsonl"
    # Task n is created n minutes after 2026-01-01T00:00:00Z: take tasks 600..900.
    code, _, err = await run(
        "tasks", "export", sim.space_token, "-o", str(out_file),
        "--outcome", "completed,failed", "--outcome", "hold",
        "--since", "2026-01-01T10:00:00", "--until", str(1_767_225_600 + 900 * 60),
        env=_sim_env(sim),
    )  # fmt: skip
    assert code == 0, err
    tasks = [msgspec.json.decode(line) for line in out_file.read_bytes().splitlines()]
    assert tasks
    assert {t["status"] for t in tasks} <= {"completed", "failed", "hold"}
    created = sorted(t["created"] for t in tasks)
    assert created[0] >= "2026-01-01T10:00:00Z"
    assert created[-1] <= "2026-01-01T15:00:00Z"
    assert SUMMARY.fullmatch(err)
    assert sim.requests[-1].query["status"] == "completed,failed,hold"


async def test_export_to_a_missing_directory_is_refused_up_front(
    sim: Simulator, tmp_path: Path
) -> None:
    code, _, err = await run(
        "tasks", "export", sim.space_token, "-o", str(tmp_path / "nope" / "x.jsonl"),
        env=_sim_env(sim),
    )  # fmt: skip
    assert code == 2
    assert err == f"error: directory {tmp_path / 'nope'} does not exist\n"
    assert sim.requests == []


async def test_export_write_failure_is_an_error(sim: Simulator, tmp_path: Path) -> None:
    # /dev/full accepts the open and fails every write with ENOSPC.
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    with open("/dev/full", "wb") as full:
        code, _, err = await run(
            "tasks", "export", sim.space_token, "-o", "-", env=_sim_env(sim), stdout=full
        )
    assert code == 1
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


async def test_verbose_logs_without_the_token(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.append(Fault("429", page=2))
    code, _, err = await run(
        "-v", "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.jsonl"),
        env=_sim_env(sim),
    )  # fmt: skip
    assert code == 0, err
    assert "INFO unpod_async: retrying page 2" in err
    assert sim.token not in err


async def test_progress_on_a_terminal(sim: Simulator, tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "unpod_async",
            "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.jsonl"),
            stdout=asyncio.subprocess.DEVNULL, stderr=slave, env=_sim_env(sim),
        )  # fmt: skip
        os.close(slave)
        slave = -1
        chunks = []
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await loop.run_in_executor(None, os.read, master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert await proc.wait() == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = b"".join(chunks).decode(errors="replace")
    assert f"{TASKS:,}/{TASKS:,} tasks" in text  # the live display's last state
    assert f"exported {TASKS} tasks" in text  # then the summary


async def _interrupt(proc: asyncio.subprocess.Process, sim: Simulator) -> tuple[int, str]:
    """SIGINT the child once its export is under way (it has sent a few requests)."""
    for _ in range(500):
        if len(sim.requests) >= 3:
            break
        await asyncio.sleep(0.01)
    assert sim.requests, "the export never started"
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_leaves_the_destination_untouched(tmp_path: Path) -> None:
    out_file = tmp_path / "t.jsonl"
    out_file.write_bytes(b"yesterday's export\n")
    async with serve(tasks=5000, latency=0.1) as slow:
        proc = await _start(
            ["tasks", "export", slow.space_token, "-o", str(out_file), "--page-size", "10",
             "--concurrency", "2"],
            _sim_env(slow),
        )  # fmt: skip
        code, err = await _interrupt(proc, slow)
    assert code == 130
    assert err == (
        "interrupted; the destination was left untouched "
        "(use --resume to make long exports resumable)\n"
    )
    assert out_file.read_bytes() == b"yesterday's export\n"
    assert list(tmp_path.iterdir()) == [out_file]  # no temporary file left behind


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_with_resume_then_resume(tmp_path: Path) -> None:
    out_file = tmp_path / "t.jsonl"
    args = ["tasks", "export", "space-demo", "-o", str(out_file), "--page-size", "10",
            "--concurrency", "2", "--resume"]  # fmt: skip
    async with serve(tasks=1000, latency=0.1) as slow:
        proc = await _start(args, _sim_env(slow))
        code, err = await _interrupt(proc, slow)
        assert code == 130
        assert err == "interrupted; rerun the same command with --resume to continue\n"

        slow.latency = 0
        code, _, err = await run(*args, env=_sim_env(slow))
        assert code == 0, err
        assert "resumed from a checkpoint" in err
        ids = [msgspec.json.decode(line)["task_id"] for line in out_file.read_bytes().splitlines()]
        assert ids == slow.task_ids()


# --- demo and simulate ----------------------------------------------------------------------


async def test_demo_end_to_end(tmp_path: Path) -> None:
    # Default destination: the current directory; no token or other settings needed.
    code, out, err = await run("demo", "--tasks", "2000", env=_env(), cwd=tmp_path)
    assert code == 0, err
    out_file = tmp_path / "unpod-demo-export.jsonl"
    assert len(out_file.read_bytes().splitlines()) == 2000
    assert f"file:       {out_file}" in out
    assert "tasks:      2,000 of 2,000 expected" in out
    assert re.search(r"throughput: [\d,]+ tasks/s", out)


async def test_demo_into_a_directory_as_csv(tmp_path: Path) -> None:
    code, _, err = await run(
        "demo", "--tasks", "300", "--output", str(tmp_path), "--format", "csv", env=_env()
    )
    assert code == 0, err
    with (tmp_path / "unpod-demo-export.csv").open(newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 300


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_simulate_serves_until_stopped(stop: signal.Signals) -> None:
    proc = await _start(["simulate", "--port", "0", "--tasks", "50"], _env())
    try:
        assert proc.stdout is not None
        banner = ""
        while "space token:" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line, "simulator exited early"
            banner += line.decode()
        base_url = re.search(r"base URL:\s+(\S+)", banner)
        assert base_url
        code, out, err = await run(
            "orgs", "list", "--json", "--base-url", base_url.group(1), "--token", "test-token",
            env=_env(),
        )  # fmt: skip
        assert code == 0, err
        assert msgspec.json.decode(out)[0]["domain_handle"] == "demo-org"
    finally:
        proc.send_signal(stop)
        _, stopped = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0
    assert stopped == b"simulator stopped\n"


async def test_an_export_that_knows_it_is_short_exits_3_and_says_why(tmp_path: Path) -> None:
    # The simulator overstates its count by 70: the export finishes, short, and says so.
    async with serve(tasks=430, count_offset=70) as sim:
        out = tmp_path / "t.jsonl"
        code, _, err = await run(
            "tasks", "export", sim.space_token, "-o", str(out), env=_sim_env(sim)
        )
        assert code == 3, err
        assert "incomplete: 70 fewer tasks than the server's count of 500" in err
        assert out.read_bytes().count(b"\n") == 430
        strict = tmp_path / "strict.jsonl"
        code, _, err = await run(
            "tasks", "export", sim.space_token, "-o", str(strict), "--strict", env=_sim_env(sim)
        )
        assert code == 1, err
        assert "incomplete" in err
        assert not strict.exists()
