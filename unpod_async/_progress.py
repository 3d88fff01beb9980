"""The terminal display of a running export, for the command line.

Three shapes behind one interface:

- on a terminal, with rich installed (the ``cli`` extra): a rich line with a bar and a spinner;
- on a terminal without rich: one plain line on stderr, rewritten with ``\\r``;
- not on a terminal (a CI log, ``nohup``): a ``progress:`` line every ``interval`` seconds.

Both terminal shapes fit the terminal's width (read again at every redraw, so a resize is
followed): the fields are kept in order of importance and the least important ones dropped
first (see :func:`fit`). They show what happens from the first request on: "connecting to
HOST" until page 1 arrives, and each retry with its page, attempt, wait and reason, which the
library's log records carry (``record.unpod_retry``, logged by ``_retry``): the display
listens to the ``unpod_async`` logger while it is open, and never reads private state.

rich is imported only when a rich display is opened, so ``import unpod_async`` never pays for it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TextIO

__all__ = [
    "DEFAULT_INTERVAL",
    "Board",
    "Field",
    "ProgressDisplay",
    "Snapshot",
    "fields",
    "fit",
    "format_bytes",
    "format_duration",
    "isatty",
    "open_display",
    "plural",
    "print_line",
    "render",
    "terminal_width",
]

DEFAULT_INTERVAL = 10.0  # seconds between progress lines when stderr is not a terminal
_LOGGER = "unpod_async"
_HZ = 8  # terminal redraws a second
_RETRY_SHOWN_AFTER = 1.5  # a retry stays on the line this long after its wait ended


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
    @property
    def bytes_written(self) -> int: ...


class RetryLike(Protocol):
    """The fields of ``_retry.RetryNotice`` the display reads."""

    @property
    def page(self) -> int | None: ...
    @property
    def attempt(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def wait(self) -> float: ...
    @property
    def reason(self) -> str: ...


# --- figures as text ------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``; ``4000`` -> ``"1:06:40"``; unknown -> ``"--:--"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_bytes(n: float) -> str:
    """``48_213_000`` -> ``"48.2 MB"`` (decimal units, as MB/s are)."""
    if n < 1000:
        return f"{n:,.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 999.95 or unit == "GB":
            return f"{n:,.1f} {unit}"
    raise AssertionError("unreachable")


def _speed_texts(per_second: float) -> tuple[str, ...]:
    """``"30.5 MB/s"``, and ``"31 MB/s"`` for when a column counts (10 and up)."""
    text = f"{format_bytes(per_second)}/s"
    number, unit = text.split(" ", 1)
    value = float(number.replace(",", ""))
    if value < 10 or "." not in number:
        return (text,)
    return (text, f"{int(value + 0.5):,} {unit}")


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 task``, ``2,000 tasks``; ``many`` when adding an s will not do (``retries``)."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _fraction(snap: Snapshot) -> float:
    """How far along: by tasks when the server said how many, else by pages."""
    if snap.expected > 0:
        return min(1.0, snap.tasks_written / snap.expected)
    planned = max(snap.pages_planned, snap.pages_done)
    return min(1.0, snap.pages_done / planned) if planned else 0.0


def _eta(snap: Snapshot) -> float:
    done = _fraction(snap)
    if done >= 1:
        return 0.0
    if done <= 0 or snap.elapsed <= 0:
        return math.inf
    return snap.elapsed * (1 - done) / done


_SAID_ELSEWHERE = re.compile(r"^(cannot connect to \S+|connection failed): ")
_NO_MESSAGE = re.compile(r"^(HTTP \d+) without a JSON message")


def _short_reason(reason: str) -> str:
    """The reason in the fewest words: without what the line already says (the host it
    connects to) or what adds nothing (a body without a message)."""
    return _NO_MESSAGE.sub(r"\1", _SAID_ELSEWHERE.sub("", reason))


# --- what is shown ----------------------------------------------------------------------------


class Board:
    """What the display shows: the export's latest snapshot and the latest retry.

    Written on the event loop, read by the drawing thread: each attribute is replaced whole,
    never changed in place, so a reader sees one state or the next.
    """

    def __init__(self, target: str = "", *, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.started: float = clock()
        self.target = target
        self.snap: Snapshot | None = None
        self.updated: float = self.started  # when the last snapshot came
        self.retry: tuple[RetryLike, float] | None = None
        self._by_page: dict[int | None, tuple[RetryLike, float]] = {}
        self.finished = False  # the export succeeded: no ETA, no retry left to show
        self.stopped = False  # it ended, either way: no spinner

    def update(self, snap: Snapshot) -> None:
        self.snap = snap
        self.updated = self.clock()

    def retrying(self, notice: RetryLike) -> None:
        entry = (notice, self.clock())
        done = self.snap.pages_done if self.snap is not None else 0
        pages = {p: e for p, e in self._by_page.items() if p is None or p > done}
        pages[notice.page] = entry
        self._by_page = pages
        self.retry = entry

    def blocking_retry(self) -> tuple[RetryLike, float] | None:
        """The retry most likely holding the export up while pages stop coming: of the pages
        not yet written, the one retried most (pages are written in order, and one that
        keeps failing is what they all wait for), the earliest of those."""
        if self.snap is None:
            return self.retry  # page 1 (or an endpoint without pages)
        done = self.snap.pages_done
        waiting = [e for p, e in self._by_page.items() if p is not None and p > done]
        if not waiting:
            return None
        return min(waiting, key=lambda e: (-e[0].attempt, e[0].page))


@dataclass(frozen=True, slots=True)
class Field:
    """One figure of the line: its texts (longest first), its rank (0 is dropped last) and
    whether it may be cut short to fit. ``bar`` marks the progress bar (its width is what
    is left)."""

    name: str
    texts: tuple[str, ...]
    rank: int
    cut: bool = False
    bar: float | None = None


BAR_MIN = 8  # with its brackets
BAR_WANT = 20  # what it grows to before the least important fields are placed
_BAR_GROWS_AFTER = 8  # the rank after which it does
_STALLED = 1.0  # seconds without a page after which a retry is what the line is about
BAR_MAX = 32


def _retry_texts(notice: RetryLike, remaining: float) -> tuple[str, ...]:
    page = f"page {notice.page}" if notice.page is not None else "the request"
    when = f", next in {remaining:.1f} s" if remaining >= 0.05 else ""
    short_when = f" in {remaining:.1f} s" if remaining >= 0.05 else ""
    reason = _short_reason(notice.reason)
    return (
        f"retrying {page} (attempt {notice.attempt}/{notice.attempts}{when}): {reason}",
        f"retry {notice.attempt}/{notice.attempts} of {page}{short_when}: {reason}",
        f"{page} retry {notice.attempt}/{notice.attempts}: {reason}",
    )


def fields(board: Board, now: float | None = None) -> list[Field]:
    """The figures of ``board`` at ``now``, in the order they are shown."""
    now = board.clock() if now is None else now
    snap = board.snap
    out: list[Field] = []
    retry: tuple[str, ...] | None = None
    stalled = now - board.updated > _STALLED
    # The page everything waits for stays shown until it comes; any other retry briefly.
    blocking = board.blocking_retry() if stalled else None
    latest = blocking or board.retry
    if latest is not None and not board.finished:
        notice, at = latest
        remaining = at + notice.wait - now
        if blocking is not None or remaining > -_RETRY_SHOWN_AFTER:
            retry = _retry_texts(notice, remaining)
    elapsed = now - board.started
    if snap is None:
        if board.target:
            out.append(Field("target", (f"connecting to {board.target}",), 2))
        if retry is not None:
            out.append(Field("retry", retry, 0, cut=True))
        out.append(Field("elapsed", (f"elapsed {format_duration(elapsed)}",), 1))
        return out
    done = _fraction(snap)
    planned = max(snap.pages_planned, snap.pages_done)
    seconds = max(snap.elapsed, 1e-9)
    tasks = (
        f"{snap.tasks_written:,}/{snap.expected:,} tasks"
        if snap.expected > 0
        else plural(snap.tasks_written, "task")
    )
    out += [
        Field("bar", ("",), 3, bar=done),
        Field("percent", (f"{100 * done:.0f}%",), 0),
    ]
    # An export of several spaces (``SpacesProgress``) says how many are done.
    spaces = getattr(snap, "spaces_total", None)
    if spaces is not None:
        space_text = f"{getattr(snap, 'spaces_done', 0):,}/{spaces:,} spaces"
        out.append(Field("spaces", (space_text,), 1))
    out += [
        Field("tasks", (tasks,), 1),
        Field("pages", (f"{snap.pages_done:,}/{planned:,} pages",), 10),
    ]
    written = getattr(snap, "bytes_written", None)  # a progress without bytes has no figures
    if written is not None:
        out += [
            Field("bytes", (format_bytes(written),), 6),
            Field("speed", _speed_texts(written / seconds), 7),
        ]
    out += [
        Field("rate", (f"{snap.tasks_written / seconds:,.0f} tasks/s",), 11),
        Field("elapsed", (f"elapsed {format_duration(elapsed)}",), 5),
    ]
    if not board.finished and done < 1:
        out.append(Field("eta", (f"ETA {format_duration(_eta(snap))}",), 4))
    if snap.retries:
        out.append(Field("retries", (plural(snap.retries, "retry", "retries"),), 8))
    if retry is not None:
        # While pages keep coming a retry is a detail; once they stop, it is the news.
        out.append(Field("retry", retry, 2 if stalled else 9, cut=stalled))
    return out


_SEP = "  "


def fit(items: Sequence[Field], width: int) -> list[tuple[Field, str]]:
    """The fields that fit in ``width`` columns, each with its text (a bar's text is its
    width in columns, as digits), in their order.

    Fields are taken by rank, most important first; each gets its longest text that still
    fits, or, if it may be cut, what room is left (at least 12 columns) ending in ``…``. The
    bar takes at least ``BAR_MIN`` columns and, at the end, what is left up to ``BAR_MAX``.
    """
    chosen: dict[int, str] = {}
    used = 0

    def room(extra: int) -> int:
        return width - used - (len(_SEP) if chosen else 0) - extra

    bar = next((i for i, item in enumerate(items) if item.bar is not None), None)
    grown = False
    for index in sorted(range(len(items)), key=lambda i: items[i].rank):
        item = items[index]
        if not grown and item.rank > _BAR_GROWS_AFTER and bar in chosen:
            grown = True
            extra = max(0, min(BAR_WANT - BAR_MIN, width - used))
            chosen[bar] = str(BAR_MIN + extra)
            used += extra
        left = room(0)
        if item.bar is not None:
            if left >= BAR_MIN:
                chosen[index] = str(BAR_MIN)
                used = width - left + BAR_MIN
            continue
        text = next((t for t in item.texts if len(t) <= left), None)
        if text is None and item.cut and left >= 12:
            text = item.texts[-1][: left - 1] + "…"
        if text is not None:
            chosen[index] = text
            used = width - left + len(text)
    if bar in chosen:
        chosen[bar] = str(min(BAR_MAX, int(chosen[bar]) + max(0, width - used)))
    return [(items[i], chosen[i]) for i in sorted(chosen)]


def _bar_text(done: float, width: int) -> str:
    inner = max(1, width - 2)
    full = min(inner, int(done * inner))
    return "[" + "#" * full + "-" * (inner - full) + "]"


def render(board: Board, width: int, now: float | None = None) -> str:
    """The plain line for ``board`` in ``width`` columns."""
    parts = []
    for item, text in fit(fields(board, now), width):
        parts.append(_bar_text(item.bar, int(text)) if item.bar is not None else text)
    return _SEP.join(parts)


def log_line(board: Board, now: float | None = None) -> str:
    """Every figure of ``board``, for a log (no width to fit)."""
    texts = [f.texts[0] for f in fields(board, now) if f.bar is None]
    return "progress: " + ", ".join(texts)


# --- where lines go ----------------------------------------------------------------------------


def terminal_width(stream: Any) -> int:
    """The width of the terminal ``stream`` writes to: ``$COLUMNS`` if set, else the
    terminal's own, else 80."""
    with contextlib.suppress(ValueError):
        columns = int(os.environ.get("COLUMNS", ""))
        if columns > 0:
            return columns
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.get_terminal_size(stream.fileno()).columns or 80
    return 80


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a closed or fake stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


_active: ProgressDisplay | None = None


def print_line(text: str) -> None:
    """Print ``text`` on stderr, above the display if one is open (log lines, warnings)."""
    display = _active
    if display is not None:
        display.print_line(text)
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


class _RetryListener(logging.Handler):
    """Hands the retries the library logs to the board."""

    def __init__(self, board: Board) -> None:
        super().__init__(logging.INFO)
        self._board = board

    def emit(self, record: logging.LogRecord) -> None:
        notice = getattr(record, "unpod_retry", None)
        if notice is not None:
            self._board.retrying(notice)


# --- the displays ------------------------------------------------------------------------------


class ProgressDisplay:
    """Base display: a context manager whose ``update`` is the export's ``progress`` callback.

    This base class draws nothing (stderr is not a terminal and no interval was asked for).
    """

    def __init__(self, target: str = "") -> None:
        self.board = Board(target)
        self._listener = _RetryListener(self.board)
        self._previous_level: int | None = None
        self._lock = threading.RLock()

    def __enter__(self) -> ProgressDisplay:
        global _active
        logger = logging.getLogger(_LOGGER)
        if logger.getEffectiveLevel() > logging.INFO:
            self._previous_level = logger.level
            logger.setLevel(logging.INFO)
        logger.addHandler(self._listener)
        _active = self
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _active
        logger = logging.getLogger(_LOGGER)
        logger.removeHandler(self._listener)
        if self._previous_level is not None:
            logger.setLevel(self._previous_level)
        self.board.stopped = True
        if exc_type is None:
            self.board.finished = True
        try:
            self.close()
        finally:
            if _active is self:
                _active = None

    def update(self, snap: Snapshot) -> None:
        """Show ``snap``; called after every page written."""
        self.board.update(snap)

    def start(self) -> None:
        """Begin drawing."""

    def close(self) -> None:
        """Leave the terminal clean for the summary."""

    def print_line(self, text: str) -> None:
        """Print a line of its own on the display's stream (above the live line, if any)."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


class _Ticking(ProgressDisplay):
    """A display redrawn by a thread of its own, every ``period`` seconds: the clock and a
    retry's countdown move even while no page arrives."""

    period = 1.0 / _HZ

    def __init__(self, stream: TextIO, target: str) -> None:
        super().__init__(target)
        self._stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="unpod-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
            except Exception:  # a display must never fail the work it shows
                logging.getLogger(_LOGGER).debug("progress display failed", exc_info=True)
                return

    def tick(self) -> None:
        """Draw once (called by the thread)."""

    def stop_ticking(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def write(self, text: str) -> None:
        with self._lock:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken terminal must not fail the export


class PlainDisplay(_Ticking):
    """One line on ``stream``, rewritten in place (``\\r``) to fit the terminal's width."""

    def __init__(self, stream: TextIO, target: str = "") -> None:
        super().__init__(stream, target)
        self._drawn = False
        # Erase to the end of the line, or pad where a terminal cannot.
        self._erase = "" if os.environ.get("TERM") == "dumb" else "\x1b[K"
        self._width_drawn = 0

    def _line(self) -> str:
        # One column short of the width: a line that fills it makes some terminals wrap, and
        # "\r" would then rewrite only the wrapped tail.
        return render(self.board, max(20, terminal_width(self._stream) - 1))

    def _draw(self) -> str:
        line = self._line()
        pad = "" if self._erase else " " * max(0, self._width_drawn - len(line))
        self._width_drawn = len(line)
        self._drawn = True
        return f"\r{line}{pad}{self._erase}"

    def start(self) -> None:
        self.tick()  # "connecting to ..." at once, before the first request
        super().start()

    def tick(self) -> None:
        with self._lock:
            self.write(self._draw())

    def print_line(self, text: str) -> None:
        with self._lock:
            clear = f"\r{self._erase or ' ' * self._width_drawn}\r" if self._drawn else ""
            self.write(f"{clear}{text}\n{self._draw() if self._drawn else ''}")

    def close(self) -> None:
        self.stop_ticking()
        with self._lock:
            self.write(self._draw() + "\n")


class RichDisplay(_Ticking):
    """A rich line on ``stream``: a spinner, a coloured bar and the figures, fitted to the
    terminal's width by the same rule as the plain line."""

    def __init__(self, stream: TextIO, target: str = "") -> None:
        super().__init__(stream, target)
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner

        self._console = Console(file=stream, highlight=False, soft_wrap=False)
        self._spinner = Spinner("dots")
        self._live = Live(
            console=self._console,
            get_renderable=self._renderable,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def _renderable(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        width = max(20, terminal_width(self._stream))
        self._console.width = width
        line = Text(no_wrap=True, overflow="ellipsis")
        spinner = not self.board.stopped
        room = width - (2 if spinner else 0)  # rich redraws whole lines: all columns serve
        for i, (item, text) in enumerate(fit(fields(self.board), room)):
            if i:
                line.append(_SEP)
            if item.bar is not None:
                inner = int(text)
                full = min(inner, int(item.bar * inner))
                line.append("━" * full, style="bar.complete")
                line.append("━" * (inner - full), style="bar.back")
            elif item.name == "retry":
                line.append(text, style="yellow")
            else:
                line.append(text)
        if not spinner:
            return line
        grid = Table.grid(padding=(0, 1))
        grid.add_row(self._spinner.render(time.monotonic()), line)
        return grid

    def start(self) -> None:
        self._live.start(refresh=True)
        super().start()

    def tick(self) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._live.refresh()

    def print_line(self, text: str) -> None:
        from rich.text import Text

        with self._lock, contextlib.suppress(OSError, ValueError):
            self._console.print(Text(text), soft_wrap=True)

    def close(self) -> None:
        self.stop_ticking()
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._live.refresh()
            self._live.stop()


class PeriodicDisplay(_Ticking):
    """Not a terminal: a ``progress:`` line every ``interval`` seconds (nothing redrawn)."""

    def __init__(self, stream: TextIO, target: str, interval: float) -> None:
        super().__init__(stream, target)
        self.period = interval

    def tick(self) -> None:
        self.write(log_line(self.board) + "\n")

    def print_line(self, text: str) -> None:
        self.write(text + "\n")

    def close(self) -> None:
        self.stop_ticking()


def _rich_available() -> bool:
    try:
        import rich.live  # noqa: F401
    except ImportError:
        return False
    return True


def open_display(
    target: str = "",
    *,
    stream: TextIO | None = None,
    interactive: bool | None = None,
    use_rich: bool | None = None,
    interval: float = DEFAULT_INTERVAL,
) -> ProgressDisplay:
    """The display that fits ``stream`` (stderr by default).

    ``target`` is the host shown until page 1 arrives ("connecting to unpod.ai").
    ``interactive`` defaults to ``stream.isatty()``; ``use_rich`` to whether rich imports;
    ``interval`` is the seconds between progress lines when not interactive (0: none).

    >>> with open_display("unpod.ai") as display:
    ...     stats = await client.export_tasks(space, "out.jsonl", progress=display.update)
    """
    stream = stream if stream is not None else sys.stderr
    if interactive is None:
        interactive = isatty(stream)
    if not interactive:
        if interval > 0:
            return PeriodicDisplay(stream, target, interval)
        return ProgressDisplay(target)
    if use_rich is None:
        use_rich = _rich_available()
    if use_rich:
        return RichDisplay(stream, target)
    return PlainDisplay(stream, target)
