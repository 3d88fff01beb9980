"""The terminal display of a running export, for the command line.

Three shapes behind one interface: a rich progress bar when rich is installed (the ``cli``
extra), a single ``\\r``-rewritten line on stderr when it is not, and nothing at all when
stderr is not a terminal (a log file or a CI job wants the summary line, not a redraw per page).
rich is imported only when a bar is actually drawn, so ``import unpod_async`` never pays for it.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from types import TracebackType
from typing import Any, Protocol, TextIO

__all__ = [
    "ProgressDisplay",
    "Snapshot",
    "describe",
    "format_duration",
    "isatty",
    "open_display",
]


class Snapshot(Protocol):
    """The fields of ``ExportProgress`` the display reads."""

    @property
    def pages_done(self) -> int: ...
    @property
    def pages_planned(self) -> int: ...
    @property
    def tasks_written(self) -> int: ...
    @property
    def expected(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def elapsed(self) -> float: ...


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``; ``4000`` -> ``"1:06:40"``; unknown -> ``"--:--"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _rate(snap: Snapshot) -> float:
    return snap.tasks_written / snap.elapsed if snap.elapsed > 0 else 0.0


def _eta(snap: Snapshot) -> float:
    rate = _rate(snap)
    left = snap.expected - snap.tasks_written
    if rate <= 0:
        return math.inf
    return max(0.0, left / rate)


def _fraction(snap: Snapshot) -> float:
    """How far along: by tasks when the server said how many, else by pages."""
    if snap.expected > 0:
        return min(1.0, snap.tasks_written / snap.expected)
    planned = max(snap.pages_planned, snap.pages_done)
    return min(1.0, snap.pages_done / planned) if planned else 0.0


def describe(snap: Snapshot) -> str:
    """``48/200 pages, 3,400/20,000 tasks, 8,328 tasks/s, ETA 0:02, 1 retry``."""
    planned = max(snap.pages_planned, snap.pages_done)
    retries = f"{snap.retries} {'retry' if snap.retries == 1 else 'retries'}"
    # An export of several spaces (``SpacesProgress``) says how many are done first.
    spaces = getattr(snap, "spaces_total", None)
    head = f"{getattr(snap, 'spaces_done', 0)}/{spaces} spaces, " if spaces is not None else ""
    return (
        f"{head}{snap.pages_done}/{planned} pages, {snap.tasks_written:,}/{snap.expected:,} tasks, "
        f"{_rate(snap):,.0f} tasks/s, ETA {format_duration(_eta(snap))}, {retries}"
    )


class ProgressDisplay:
    """Base display: a context manager whose ``update`` is the export's ``progress`` callback.

    This base class draws nothing (the non-terminal case).
    """

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, snap: Snapshot) -> None:
        """Show ``snap``; called after every page written."""

    def close(self) -> None:
        """Leave the terminal clean for the summary line."""


class PlainDisplay(ProgressDisplay):
    """One line on ``stream``, rewritten with ``\\r`` at most ``hz`` times a second."""

    def __init__(self, stream: TextIO, label: str, *, hz: float = 10.0) -> None:
        self._stream = stream
        self._label = f"{label}: " if label else ""
        self._interval = 1.0 / hz
        self._last_draw = -math.inf
        self._width = 0
        self._last: Snapshot | None = None

    def update(self, snap: Snapshot) -> None:
        self._last = snap
        now = time.monotonic()
        if now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw(snap)

    def _draw(self, snap: Snapshot) -> None:
        line = f"{self._label}{100 * _fraction(snap):3.0f}% {describe(snap)}"
        # A line longer than the terminal wraps, and "\r" would then redraw only its tail.
        line = line[: max(20, shutil.get_terminal_size().columns - 1)]
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        try:
            self._stream.write(f"\r{line}{pad}")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken terminal must not fail the export

    def close(self) -> None:
        if self._last is not None:
            self._draw(self._last)
        if self._width:
            try:
                self._stream.write("\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass
            self._width = 0


class RichDisplay(ProgressDisplay):
    """A rich progress bar on ``stream``: pages, tasks, rate, ETA and retries."""

    def __init__(self, stream: TextIO, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

        columns: list[Any] = [SpinnerColumn()]
        if label:
            columns.append(TextColumn("[bold]{task.description}"))
        columns += [
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        self._progress = Progress(*columns, console=Console(file=stream), transient=False)
        self._task = self._progress.add_task(label, total=None, info="")
        self._progress.start()

    def update(self, snap: Snapshot) -> None:
        self._progress.update(self._task, completed=_fraction(snap), total=1.0, info=describe(snap))

    def close(self) -> None:
        self._progress.stop()


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a closed or fake stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _rich_available() -> bool:
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


def open_display(
    label: str = "",
    *,
    stream: TextIO | None = None,
    interactive: bool | None = None,
    use_rich: bool | None = None,
) -> ProgressDisplay:
    """The display that fits ``stream`` (stderr by default).

    ``interactive`` defaults to ``stream.isatty()``; ``use_rich`` to whether rich imports.
    ``label`` prefixes the line (none by default: the figures need the width).

    >>> with open_display() as display:
    ...     stats = await client.export_tasks(space, "out.jsonl", progress=display.update)
    """
    stream = stream if stream is not None else sys.stderr
    if interactive is None:
        interactive = isatty(stream)
    if not interactive:
        return ProgressDisplay()
    if use_rich is None:
        use_rich = _rich_available()
    if use_rich:
        return RichDisplay(stream, label)
    return PlainDisplay(stream, label)
