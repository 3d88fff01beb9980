"""The progress display: the fitting rule at fixed widths, and the real command on a pty of 60,
80 and 120 columns (rich and plain), read back through a terminal emulator (pyte).

A line that is wider than the terminal wraps, and a ``\\r`` redraw then rewrites only its tail:
so besides what the screens show, every redrawn line of the raw output is checked to fit.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import re
import struct
import sys
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from unpod_async._progress import (
    Board,
    PeriodicDisplay,
    PlainDisplay,
    ProgressDisplay,
    RichDisplay,
    fields,
    fit,
    format_bytes,
    log_line,
    open_display,
    render,
)
from unpod_async._retry import RetryNotice
from unpod_async.testing import Fault, serve

from .helpers import child_env, free_port

pyte = pytest.importorskip("pyte")


@dataclass(frozen=True)
class Snap:
    pages_done: int = 900
    pages_planned: int = 2001
    tasks_written: int = 90_000
    expected: int = 200_000
    retries: int = 2
    elapsed: float = 5.0
    bytes_written: int = 41_200_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _board(snap: Snap | None = Snap(), target: str = "unpod.ai") -> tuple[Board, Clock]:
    clock = Clock()
    board = Board(target, clock=clock)
    if snap is not None:
        clock.now += snap.elapsed
        board.update(snap)
    return board, clock


def _names(board: Board, width: int) -> list[str]:
    return [f.name for f, _ in fit(fields(board), width)]


# --- the fitting rule -----------------------------------------------------------------------


def test_fields_are_dropped_least_important_first() -> None:
    board, _ = _board()
    wide = _names(board, 200)
    assert wide == [
        "bar", "percent", "tasks", "pages", "bytes", "speed", "rate", "elapsed", "eta", "retries",
    ]  # fmt: skip
    assert _names(board, 119) == [
        "bar", "percent", "tasks", "pages", "bytes", "speed", "elapsed", "eta", "retries",
    ]  # fmt: skip
    assert _names(board, 79) == ["bar", "percent", "tasks", "bytes", "speed", "elapsed", "eta"]
    assert _names(board, 59) == ["bar", "percent", "tasks", "elapsed", "eta"]
    assert _names(board, 30) == ["percent", "tasks"]
    for width in range(20, 200):
        assert len(render(board, width)) <= width


def test_the_line_reads_as_expected() -> None:
    board, _ = _board()
    assert render(board, 79) == (
        "[###----]  45%  90,000/200,000 tasks  41.2 MB  8.2 MB/s  elapsed 0:05  ETA 0:06"
    )
    assert log_line(board) == (
        "progress: 45%, 90,000/200,000 tasks, 900/2,001 pages, 41.2 MB, 8.2 MB/s, "
        "18,000 tasks/s, elapsed 0:05, ETA 0:06, 2 retries"
    )


def test_before_page_1_it_says_what_happens() -> None:
    board, clock = _board(None, target="127.0.0.1:9")
    assert render(board, 79) == "connecting to 127.0.0.1:9  elapsed 0:00"
    board.retrying(RetryNotice(1, 3, 6, 1.2, "cannot connect to 127.0.0.1:9: Connection refused"))
    clock.now += 0.2
    assert render(board, 119) == (
        "connecting to 127.0.0.1:9  retrying page 1 (attempt 3/6, next in 1.0 s): "
        "Connection refused  elapsed 0:00"
    )
    assert render(board, 79) == (
        "retrying page 1 (attempt 3/6, next in 1.0 s): Connection refused  elapsed 0:00"
    )
    assert render(board, 59) == "retry 3/6 of page 1 in 1.0 s: Connection refused"
    clock.now += 5  # the wait is over: the attempt is on its way, the retry stays shown
    assert "retrying page 1 (attempt 3/6): Connection refused" in render(board, 119)


def test_a_retry_mid_run_is_a_detail_until_pages_stop() -> None:
    board, clock = _board()
    board.retrying(RetryNotice(57, 2, 6, 0.3, "HTTP 503 without a JSON message"))
    assert "retry" not in _names(board, 79)  # pages still come: the figures keep the room
    assert "retry" in _names(board, 200)
    clock.now += 0.2
    board.update(Snap(pages_done=901, tasks_written=90_100))
    clock.now += 1.1  # no page for a second: the retry is what matters now
    assert _names(board, 79)[:3] == ["bar", "percent", "tasks"]
    assert "retry" in _names(board, 79)
    assert len(render(board, 79)) <= 79


def test_a_stalled_line_shows_the_page_everything_waits_for() -> None:
    board, clock = _board()  # 900 pages written; page 903 keeps failing
    board.retrying(RetryNotice(902, 2, 6, 0.1, "HTTP 500 without a JSON message"))
    board.retrying(RetryNotice(903, 3, 6, 0.5, "HTTP 503 without a JSON message"))
    board.retrying(RetryNotice(905, 2, 6, 0.1, "connection failed: Connection reset by peer"))
    line = render(board, 200)
    assert "retrying page 905 (attempt 2/6, next in 0.1 s): Connection reset by peer" in line
    clock.now += 3  # long after both waits, and no page since
    line = render(board, 79)
    assert line.endswith("retrying page 903 (attempt 3/6): HTTP 503"), line
    board.update(Snap(pages_done=905, tasks_written=90_500))  # it came
    clock.now += 3
    assert "retrying" not in render(board, 200)


def test_unknown_count_and_sizes() -> None:
    board, _ = _board(Snap(expected=0, pages_planned=3, pages_done=3, tasks_written=250))
    assert "250 tasks" in render(board, 200)
    assert format_bytes(999) == "999 B"
    assert format_bytes(48_213_000) == "48.2 MB"
    assert format_bytes(2.5e12) == "2,500.0 GB"


def test_display_kinds() -> None:
    assert type(open_display(stream=io.StringIO(), interval=0)) is ProgressDisplay
    assert isinstance(open_display(stream=io.StringIO()), PeriodicDisplay)
    plain = open_display(stream=io.StringIO(), interactive=True, use_rich=False)
    assert isinstance(plain, PlainDisplay)
    pytest.importorskip("rich")
    assert isinstance(open_display(stream=io.StringIO(), interactive=True), RichDisplay)


def test_periodic_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with PeriodicDisplay(stream, "unpod.ai", interval=0.05) as display:
        time.sleep(0.12)
        display.update(Snap())
        time.sleep(0.12)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("progress: connecting to unpod.ai, elapsed 0:00")
    assert lines[-1].startswith("progress: 45%, 90,000/200,000 tasks, 900/2,001 pages, 41.2 MB")


def test_plain_display_prints_lines_above_itself() -> None:
    stream = io.StringIO()
    with PlainDisplay(stream, "unpod.ai") as display:
        display.update(Snap())
        display.tick()
        display.print_line("a log line")
    text = stream.getvalue()
    assert "\r\x1b[K\ra log line\n\r" in text
    assert text.endswith("\x1b[K\n")
    assert text.count("\n") == 2


# --- the real command on a pty ----------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB0-2]|\x1b[=>]")


def _segments(raw: str) -> list[str]:
    """What each redraw puts on one line of the terminal (escape sequences removed)."""
    return [s for s in re.split(r"[\r\n]|\x1b\[\d*[ABEFG]", raw) if s]


@dataclass
class Screens:
    code: int
    raw: str
    seen: list[list[str]]  # the screen after each chunk, lines stripped

    @property
    def last(self) -> list[str]:
        return self.seen[-1]

    def first(self, predicate: object) -> list[str]:
        return next(s for s in self.seen if predicate(s))  # type: ignore[operator]


def _pty_env(env: dict[str, str], *, rich: bool, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", NO_COLOR="1", PYTHONUNBUFFERED="1")
    if not rich:  # a rich that cannot be imported: the plain line
        blocked = tmp / "no-rich" / "rich"
        blocked.mkdir(parents=True, exist_ok=True)
        (blocked / "__init__.py").write_text("raise ImportError('rich is blocked here')\n")
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(blocked.parent), env.get("PYTHONPATH")])
        )
    return env


async def on_pty(args: Sequence[str], env: dict[str, str], cols: int, rows: int = 24) -> Screens:
    """Run the command with stderr on a pty of ``cols`` x ``rows``; every screen it showed."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    seen: list[list[str]] = []
    raw = bytearray()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "unpod_async", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=slave, env=env,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await loop.run_in_executor(None, os.read, master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            raw += chunk
            stream.feed(chunk)
            seen.append([line.rstrip() for line in screen.display])
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return Screens(code, raw.decode(errors="replace"), seen)


def _text(screen: list[str]) -> str:
    return "\n".join(line for line in screen if line)


# Lines printed once (the header, the summary, an error) may wrap: only redraws must fit.
_PRINTED = ("exporting ", "exported ", "  ", "(", "error:", "warning:", "hint:", "$")


def _fits(screens: Screens, cols: int) -> None:
    redraws = [s for s in _segments(_ANSI.sub("", screens.raw)) if not s.startswith(_PRINTED)]
    assert redraws
    for segment in redraws:
        assert len(segment) <= cols, f"wider than {cols}: {segment!r}"


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "plain"])
@pytest.mark.parametrize("cols", [60, 80, 120])
async def test_export_on_a_terminal(cols: int, rich: bool, tmp_path: Path) -> None:
    if rich:
        pytest.importorskip("rich")
    async with serve(tasks=6000, latency=0.02) as sim:
        sim.faults.append(Fault("status", page=20, status=503))
        out = tmp_path / "t.jsonl"
        args = ["tasks", "export", sim.space_token, "-o", str(out), "--concurrency", "4"]
        screens = await on_pty(args, _pty_env(child_env(sim), rich=rich, tmp=tmp_path), cols)
    assert screens.code == 0, _text(screens.last)
    _fits(screens, cols)
    mid = screens.first(lambda s: any("%" in line and "tasks" in line for line in s))
    live = next(line for line in mid if "%" in line)
    assert re.search(r"\d+%  [\d,]+/6,000 tasks", live), live
    if cols >= 80:
        assert "━" in live if rich else "[#" in live or "[-" in live, live
        assert re.search(r"\d+(\.\d)? [kM]B", live), live
        assert "elapsed 0:0" in live
    assert "100%  6,000/6,000 tasks" in _text(screens.last)
    printed = _ANSI.sub("", screens.raw)  # what was printed once, before the terminal wrapped it
    assert f"exported 6,000 tasks from space space-demo to {out} (jsonl)\r\n" in printed
    assert "  61 pages, 1 retry, 0 duplicates dropped\r\n" in printed
    assert "  (one page was empty: it confirms the full page before it was the last)" in printed


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "plain"])
@pytest.mark.parametrize("cols", [60, 80, 120])
async def test_before_page_1_on_a_terminal(cols: int, rich: bool, tmp_path: Path) -> None:
    if rich:
        pytest.importorskip("rich")
    env = child_env(UNPOD_API_TOKEN="test-token")
    url = f"http://127.0.0.1:{free_port()}"
    args = ["tasks", "export", "space-demo", "-o", str(tmp_path / "t.jsonl"), "--base-url", url,
            "--max-retries", "2"]  # fmt: skip
    screens = await on_pty(args, _pty_env(env, rich=rich, tmp=tmp_path), cols)
    assert screens.code == 1
    _fits(screens, cols)
    assert "connecting to 127.0.0.1:" in _ANSI.sub("", screens.raw)
    retrying = screens.first(lambda s: any("attempt" in line or "retry " in line for line in s))
    line = next(line for line in retrying if "attempt" in line or "retry " in line)
    if cols >= 80:
        assert re.search(r"retrying page 1 \(attempt [23]/3(, next in \d\.\d s)?\): "
                         r"Connection refused", line), line  # fmt: skip
    else:  # the short form, unless the long one fits (no countdown)
        assert re.search(r"retry [23]/3 of page 1|retrying page 1 \(attempt [23]/3\)", line)
    printed = _ANSI.sub("", screens.raw)
    assert "error: cannot connect to 127.0.0.1:" in printed
    assert "Connection refused (page 1, http://127.0.0.1:" in printed
