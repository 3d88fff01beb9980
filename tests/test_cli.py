"""The ``unpod-async`` command, run as a real subprocess against an in-process simulator.

The simulator lives in the test's event loop, so the command runs with
``asyncio.create_subprocess_exec`` (a blocking ``subprocess.run`` would freeze the simulator).
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

import unpod_async
from unpod_async import _commands, cli
from unpod_async._redact import Redactor
from unpod_async.testing import Fault, Simulator, serve

from .helpers import cli_env, run_here, sim_options

TASKS = 1500
SECRET = "s3cret-Token-never-shown"


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    async with serve(tasks=TASKS, **sim_options(request)) as simulator:
        yield simulator


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


def test_summary_lines() -> None:
    stats = unpod_async.ExportStats(
        tasks=200_000,
        pages=2001,
        expected=200_000,
        duplicates=0,
        passes=1,
        recovered=0,
        retries=1,
        seconds=31.25,
        bytes=482_100_000,
        path="out.jsonl",
        format="jsonl",
        empty_pages=1,
    )
    assert _commands.summary_lines(stats, "space-demo") == [
        "exported 200,000 tasks from space space-demo to out.jsonl (jsonl)",
        "  482.1 MB in 31.2 s (15.4 MB/s, 6,400 tasks/s); the server counted 200,000",
        "  2,001 pages, 1 retry, 0 duplicates dropped",
        "  (one page was empty: it confirms the full page before it was the last)",
    ]


# --- commands against the simulator -----------------------------------------------------------


async def test_missing_token_is_a_usage_error_and_sends_nothing(sim: Simulator) -> None:
    code, out, err = await run_here(
        "tasks", "get", sim.space_token, "--base-url", sim.base_url, env=cli_env()
    )
    assert code == 2
    assert out == ""
    assert err == "error: no API token: pass --token or set UNPOD_API_TOKEN\n"
    assert sim.requests == []


async def test_bad_space_token_is_a_usage_error(sim: Simulator) -> None:
    code, _, err = await run_here("tasks", "get", "../../admin", env=cli_env(sim))
    assert code == 2
    assert err.startswith("error: invalid space_token")
    assert sim.requests == []


@pytest.mark.parametrize("how", ["env", "option"])
async def test_wrong_token_is_an_api_error_and_never_shown(sim: Simulator, how: str) -> None:
    env = cli_env(sim)
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
    code, _, err = await run_here("tasks", "get", "no-such-space", env=cli_env(sim))
    assert code == 1
    assert err.startswith("error: HTTP 206: Invalid Space Token")


async def test_tasks_get(sim: Simulator) -> None:
    code, out, err = await run_here(
        "tasks", "get", sim.space_token, "--page", "3", "--page-size", "7", env=cli_env(sim)
    )
    assert (code, err) == (0, "")
    page = msgspec.json.decode(out)
    assert page["count"] == TASKS
    assert [t["task_id"] for t in page["data"]] == sim.task_ids()[14:21]
    assert out.startswith("{\n  ")  # pretty


async def test_orgs_and_spaces(sim: Simulator) -> None:
    env = cli_env(sim)
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
    r"exporting space (\S+) from 127\.0\.0\.1:\d+ to (.+) \((\w+)\)\n"
    r"exported ([\d,]+) tasks from space \1 to \2 \(\3\)\n"
    r"  [\d.,]+ [kMG]?B in [\d.:]+ s? ?\([\d.,]+ [kMG]?B/s, [\d,]+ tasks/s\); "
    r"the server counted ([\d,]+)\n"
    r"  ([\d,]+) pages?, ([\d,]+) retr(?:y|ies), ([\d,]+) duplicates? dropped(, .*)?\n"
    r"(  \(one page was empty: it confirms the full page before it was the last\)\n)?"
)


async def test_export_jsonl(sim: Simulator, tmp_path: Path) -> None:
    out_file = tmp_path / "tasks.jsonl"
    sim.faults.append(Fault("status", page=3, status=503))
    code, out, err = await run(
        *_fast("tasks", "export", sim.space_token, "--output", str(out_file)),
        env=cli_env(sim),
    )
    assert code == 0, err
    assert out == ""
    # Not a terminal: no progress redraws, just one summary line.
    match = SUMMARY.fullmatch(err)
    assert match, err
    assert match.group(2, 4, 5, 8) == (str(out_file), f"{TASKS:,}", f"{TASKS:,}", "0")
    assert match.group(7) == "1"  # retries
    lines = out_file.read_bytes().splitlines()
    assert [msgspec.json.decode(line)["task_id"] for line in lines] == sim.task_ids()


async def test_export_csv_from_extension(sim: Simulator, tmp_path: Path) -> None:
    out_file = tmp_path / "tasks.csv"
    code, _, err = await run(
        "tasks", "export", sim.space_token, "-o", str(out_file), "--page-size", "64",
        env=cli_env(sim),
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
        env=cli_env(sim),
    )  # fmt: skip
    assert code == 0, err
    assert pq.read_table(out_file).num_rows == TASKS


async def test_export_to_stdout(sim: Simulator) -> None:
    code, out, err = await run(
        "tasks", "export", sim.space_token, "--output", "-", env=cli_env(sim)
    )
    assert code == 0, err
    ids = [msgspec.json.decode(line)["task_id"] for line in out.splitlines()]
    assert ids == sim.task_ids()
    match = SUMMARY.fullmatch(err)
    assert match, err
    assert match.group(2) == "stdout"


# The server's status parameter is --outcome now; the legacy simulator reads it as the task status.
@pytest.mark.simulator(legacy_shapes=True, legacy_filters=True)
async def test_export_filters(sim: Simulator, tmp_path: Path) -> None:
    out_file = tmp_path / "some.jsonl"
    # Task n is created n minutes after 2026-01-01T00:00:00Z: take tasks 600..900.
    code, _, err = await run(
        "tasks", "export", sim.space_token, "-o", str(out_file),
        "--outcome", "completed,failed", "--outcome", "hold",
        "--since", "2026-01-01T10:00:00", "--until", str(1_767_225_600 + 900 * 60),
        env=cli_env(sim),
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
        env=cli_env(sim),
    )  # fmt: skip
    assert code == 2
    assert err.endswith(f"\nerror: directory {tmp_path / 'nope'} does not exist\n")
    assert sim.requests == []


async def test_export_write_failure_is_an_error(sim: Simulator, tmp_path: Path) -> None:
    # /dev/full accepts the open and fails every write with ENOSPC.
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    with open("/dev/full", "wb") as full:
        code, _, err = await run(
            "tasks", "export", sim.space_token, "-o", "-", env=cli_env(sim), stdout=full
        )
    assert code == 4  # a local problem, not the API's
    assert err.splitlines()[-1] == "error: cannot write the output stream: No space left on device"
    assert "Traceback" not in err


async def test_verbose_logs_without_the_token(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.append(Fault("429", page=2))
    code, _, err = await run(
        "-v", "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.jsonl"),
        env=cli_env(sim),
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
            stdout=asyncio.subprocess.DEVNULL, stderr=slave, env=cli_env(sim),
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
    assert f"exported {TASKS:,} tasks" in text  # then the summary


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
            cli_env(slow),
        )  # fmt: skip
        code, err = await _interrupt(proc, slow)
    assert code == 130
    assert err.endswith(
        "\ninterrupted; the destination was left untouched "
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
        proc = await _start(args, cli_env(slow))
        code, err = await _interrupt(proc, slow)
        assert code == 130
        assert err.endswith("\ninterrupted; rerun the same command with --resume to continue\n")

        slow.latency = 0
        code, _, err = await run(*args, env=cli_env(slow))
        assert code == 0, err
        assert "resumed from a checkpoint" in err
        ids = [msgspec.json.decode(line)["task_id"] for line in out_file.read_bytes().splitlines()]
        assert ids == slow.task_ids()


# --- demo and simulate ----------------------------------------------------------------------


async def test_demo_end_to_end(tmp_path: Path) -> None:
    # Default destination: a new temporary directory, named; no token or settings needed.
    code, out, err = await run(
        "demo", "--tasks", "2000", env=cli_env(TMPDIR=str(tmp_path)), cwd=tmp_path
    )
    assert code == 0, err
    assert out == ""
    assert list(tmp_path.glob("*.jsonl")) == []  # not in the current directory
    [folder] = tmp_path.glob("unpod-demo-*")
    out_file = folder / "unpod-demo-export.jsonl"
    assert len(out_file.read_bytes().splitlines()) == 2000
    lines = err.splitlines()
    assert lines[0] == "starting the Unpod simulator with 2,000 tasks (5 ms latency, 1% faults)"
    assert SUMMARY.fullmatch("\n".join(lines[1:-1]) + "\n"), err
    assert f"exported 2,000 tasks from space space-demo to {out_file} (jsonl)" in lines
    assert lines[-1] == (
        f"the file is in a new temporary directory, {folder} (pass --output to write it elsewhere)"
    )


async def test_demo_into_a_directory_as_csv(tmp_path: Path) -> None:
    code, _, err = await run(
        "demo", "--tasks", "300", "--output", str(tmp_path), "--format", "csv", env=cli_env()
    )
    assert code == 0, err
    with (tmp_path / "unpod-demo-export.csv").open(newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 300


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_simulate_serves_until_stopped(stop: signal.Signals) -> None:
    proc = await _start(["simulate", "--port", "0", "--tasks", "50"], cli_env())
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
            env=cli_env(),
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
            "tasks", "export", sim.space_token, "-o", str(out), env=cli_env(sim)
        )
        assert code == 3, err
        assert "incomplete: 70 fewer tasks than the server's count of 500" in err
        assert out.read_bytes().count(b"\n") == 430
        strict = tmp_path / "strict.jsonl"
        code, _, err = await run(
            "tasks", "export", sim.space_token, "-o", str(strict), "--strict", env=cli_env(sim)
        )
        assert code == 1, err
        assert "incomplete" in err
        assert not strict.exists()


# --- feedback: progress lines, -vv, warnings -------------------------------------------------


async def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    async with serve(tasks=600, latency=0.05) as slow:
        code, _, err = await run(
            "tasks", "export", slow.space_token, "-o", str(tmp_path / "t.jsonl"),
            "--page-size", "20", "--concurrency", "2", "--progress-interval", "0.2",
            env=cli_env(slow),
        )  # fmt: skip
    assert code == 0, err
    progress = [line for line in err.splitlines() if line.startswith("progress: ")]
    assert len(progress) >= 2, err
    assert re.fullmatch(
        r"progress: \d+%, [\d,]+/600 tasks, \d+/3\d pages, [\d.]+ [kM]?B, [\d.]+ [kM]?B/s, "
        r"[\d,]+ tasks/s, elapsed 0:0\d, ETA \d+:\d\d",
        progress[-1],
    ), progress[-1]
    # and none with the interval at 0
    async with serve(tasks=200, latency=0.05) as slow:
        code, _, err = await run(
            "tasks", "export", slow.space_token, "-o", str(tmp_path / "u.jsonl"),
            "--page-size", "20", "--concurrency", "1", "--progress-interval", "0",
            env=cli_env(slow),
        )  # fmt: skip
    assert code == 0, err
    assert "progress:" not in err


async def test_very_verbose_logs_each_request_without_the_token(tmp_path: Path) -> None:
    async with serve(tasks=300, token=SECRET) as sim:
        sim.faults.append(Fault("status", page=2, status=503))
        code, _, err = await run(
            "-vv", "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.jsonl"),
            env=cli_env(sim),
        )  # fmt: skip
    assert code == 0, err
    requests = re.findall(r"DEBUG unpod_async: GET (page \d+ \(attempt \d of 6\): HTTP \d+)", err)
    assert "page 1 (attempt 1 of 6): HTTP 200" in requests
    assert "page 2 (attempt 1 of 6): HTTP 503" in requests
    assert "page 2 (attempt 2 of 6): HTTP 200" in requests
    assert re.search(r"HTTP 200, [\d,]+ bytes in \d+\.\d{3}s \(http://127\.0\.0\.1:\d+/", err)
    assert "INFO unpod_async: retrying page 2 (attempt 2 of 6) after HTTP 503 without" in err
    assert SECRET not in err
    # -v alone: the retries, not the requests
    async with serve(tasks=300, token=SECRET) as sim:
        sim.faults.append(Fault("status", page=2, status=503))
        code, _, err = await run(
            "-v", "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.jsonl"),
            env=cli_env(sim),
        )  # fmt: skip
    assert code == 0, err
    assert "INFO unpod_async: retrying page 2" in err
    assert "DEBUG" not in err


async def test_an_unknown_status_is_warned_about(sim: Simulator, tmp_path: Path) -> None:
    code, _, err = await run_here(
        "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.jsonl"),
        "--status", "Interested", "--status", "completed,Failed", env=cli_env(sim),
    )  # fmt: skip
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith(
        "warning: --status 'Interested' is not one of the documented task statuses (pending, "
        "in_progress, completed, hold, failed, partially_completed); it is matched exactly"
    )
    assert "use --outcome" in warnings[0]
    assert "(did you mean failed?)" in warnings[1]


async def test_an_incomplete_export_says_it_once(tmp_path: Path) -> None:
    async with serve(tasks=430, count_offset=70) as sim:
        code, _, err = await run(
            "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.jsonl"),
            env=cli_env(sim),
        )  # fmt: skip
    assert code == 3, err
    # The CLI's "incomplete:" line, not the library's warning too (70 as a number: a port
    # such as 35707 is not it).
    assert len(re.findall(r"\b70\b", err)) == 1
    assert err.splitlines()[-1].startswith("incomplete: 70 fewer tasks")


# --- errors that fit a command line ----------------------------------------------------------


async def test_plain_http_to_another_host_names_the_flag(tmp_path: Path) -> None:
    args = ["tasks", "get", "space-demo", "--token", "x", "--base-url", "http://192.0.2.1:9",
            "--max-retries", "0", "--timeout", "0.3"]  # fmt: skip
    code, _, err = await run_here(*args, env=cli_env())
    assert code == 2
    assert "refusing plain http:// to 192.0.2.1" in err
    assert "--allow-insecure-http" in err
    # With the flag, the request is tried (and fails as the network does: nothing is there).
    code, _, err = await run_here(*args, "--allow-insecure-http", env=cli_env())
    assert code == 1, err
    assert "refusing" not in err


async def test_one_message_for_a_status_without_a_body(sim: Simulator) -> None:
    sim.faults.append(Fault("status", page=1, status=503))
    code, _, err = await run_here(
        "tasks", "get", sim.space_token, "--max-retries", "0", env=cli_env(sim)
    )
    assert code == 1
    assert err.startswith("error: HTTP 503 without a JSON message (page 1, http://")
    assert err.count("HTTP 503") == 1


async def test_an_invalid_space_token_suggests_spaces_list(sim: Simulator) -> None:
    code, _, err = await run_here("tasks", "get", "no-such-space", env=cli_env(sim))
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("error: HTTP 206: Invalid Space Token")
    assert lines[1].startswith("hint: `unpod-async spaces list` shows the spaces")


async def test_a_page_too_large_suggests_a_smaller_page_size(tmp_path: Path) -> None:
    from .helpers import MiniServer, http, send

    async with MiniServer() as server:
        server.on(send(http(200, b"", length=200 * 1024 * 1024)), times=100)
        code, _, err = await run_here(
            "tasks", "export", "space-demo", "-o", str(tmp_path / "t.jsonl"),
            "--page-size", "400", "--token", "x", "--base-url", server.url, env=cli_env(),
        )  # fmt: skip
    assert code == 1, err
    assert "larger than max_response_bytes" in err
    assert err.splitlines()[-1] == (
        "hint: one page of 400 tasks is more than the client accepts; try a smaller "
        "--page-size (say 100)"
    )


async def test_a_checkpoint_of_another_export_names_resume(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    async with serve(tasks=500) as sim:
        sim.faults.append(Fault("status", page=3, status=503, times=100))
        args = ["tasks", "export", sim.space_token, "-o", str(out), "--resume", "--max-retries",
                "0"]  # fmt: skip
        code, _, err = await run_here(*args, "--page-size", "50", env=cli_env(sim))
        assert code == 1, err  # a partial file and its checkpoint stay
        code, _, err = await run_here(*args, "--page-size", "60", env=cli_env(sim))
    assert code == 4, err
    last = err.splitlines()[-1]
    assert "belongs to a different export" in last
    assert "(--resume on the command line)" in last


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX permissions, /sys")
async def test_an_unwritable_directory_names_the_users_path(tmp_path: Path) -> None:
    # Root writes anywhere it may: sysfs refuses new files even to root.
    folder = Path("/sys") if os.geteuid() == 0 else tmp_path / "ro"
    if folder != Path("/sys"):
        folder.mkdir()
        folder.chmod(0o555)
    out = folder / "tasks.jsonl"
    async with serve(tasks=50) as sim:
        code, _, err = await run("tasks", "export", sim.space_token, "-o", str(out),
                                 env=cli_env(sim))  # fmt: skip
    assert code == 4, err
    assert err.splitlines()[-1] == f"error: cannot create {out}: Permission denied (in {folder})"
    assert ".unpod-" not in err
    assert sim.requests == []  # found before any request


async def test_a_missing_pyarrow_is_a_local_problem(sim: Simulator, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    (blocked / "pyarrow").mkdir(parents=True)
    (blocked / "pyarrow" / "__init__.py").write_text("raise ImportError('not here')\n")
    code, _, err = await run(
        "tasks", "export", sim.space_token, "-o", str(tmp_path / "t.parquet"),
        env=cli_env(sim, PYTHONPATH=str(blocked)),
    )  # fmt: skip
    assert code == 4, err
    assert err.splitlines()[-1] == (
        "error: Parquet export needs pyarrow, which is not installed: pip install pyarrow "
        "(the unpod-async[parquet] extra)"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
async def test_output_to_a_pipe_closed_early_stops_quietly() -> None:
    async with serve(tasks=20_000) as sim:
        read_end, write_end = os.pipe()
        proc = await _start(
            ["tasks", "export", sim.space_token, "-o", "-"], cli_env(sim), stdout=write_end
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:  # `| head -c 1000`
            assert len(await asyncio.to_thread(reader.read, 1000)) == 1000
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    text = err.decode()
    assert "error" not in text.lower()
    assert "Broken pipe" not in text
    assert "Exception ignored" not in text


# --- simulate and demo ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--port", "70000"], 2, "argument --port: a port is 0 to 65535, got 70000"),
        (["--port", "-1"], 2, "argument --port: must be at least 0, got -1"),
        (["--host", "no-such-host.invalid"], 2, "error: cannot serve on no-such-host.invalid"),
        (["--host", "192.0.2.1"], 2, "is not an address of this machine (try 127.0.0.1)"),
    ],
)
async def test_simulate_refuses_what_cannot_work(args: list[str], code: int, message: str) -> None:
    got, _, err = await run("simulate", *args, env=cli_env())
    assert got == code, err
    assert message in err
    assert "Traceback" not in err


async def test_simulate_on_a_port_in_use() -> None:
    async with serve(tasks=1) as busy:
        port = busy.port
        code, _, err = await run("simulate", "--port", str(port), env=cli_env())
    assert code == 4
    assert err == (
        f"error: cannot serve on 127.0.0.1:{port}: the port is in use; pick another "
        "with --port, or --port 0 for a free one\n"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_simulate_on_every_interface_warns_and_prints_a_loopback_url() -> None:
    proc = await _start(["simulate", "--host", "0.0.0.0", "--port", "0", "--tasks", "5"], cli_env())
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        warning = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
        banner = ""
        while "space token:" not in banner:
            banner += (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 10)
    assert warning.startswith("warning: serving on every network interface: anyone who can ")
    assert "'test-token'" in warning
    url = re.search(r"base URL:\s+(\S+)", banner)
    assert url
    assert url.group(1).startswith("http://127.0.0.1:")


# --- help -------------------------------------------------------------------------------------


def _subparsers(parser: Any) -> list[Any]:
    import argparse

    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _subparsers(sub)
    return found


def test_every_option_and_argument_has_help_with_its_default() -> None:
    import argparse

    for parser in _subparsers(cli.build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            where = f"{parser.prog} {action.option_strings or action.dest}"
            assert action.help, f"{where} has no help"
            text = formatter._expand_help(action) if action.option_strings else action.help
            if action.option_strings:
                assert "default" in text or "required" in text, f"{where}: {text}"


@pytest.mark.parametrize(
    ("command", "absent", "present"),
    [
        (["demo"], ["--token", "--org-handle", "--base-url", "--auth-scheme"],
         ["--concurrency N", "default: 16", "--progress-interval"]),
        (["simulate"], ["--token", "--concurrency", "--max-retries", "--progress-interval"],
         ["--host", "--port", "default: 8080"]),
        (["tasks", "export"], [], ["--token", "DATE: 2026-01-31", "--allow-insecure-http"]),
        (["tasks", "get"], [], ["DATE: 2026-01-31", "--page N"]),
    ],
)  # fmt: skip
def test_help_lists_what_applies(
    command: list[str], absent: list[str], present: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    for option in absent:
        assert option not in out, option
    for text in present:
        assert text in " ".join(out.split()) or text in out, text


def test_top_level_help_shows_the_way_to_data_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "unpod-async orgs list" in out
    assert "unpod-async spaces list" in out
    for code, meaning in _commands.EXIT_CODES:
        assert f"  {code:<3}  {meaning}" in out
