"""The ``unpod-async`` command: parsing and the entry point; the work is in ``_commands``.

Exit codes: 0 done (also when the reader of stdout went away, as with ``| head``); 1 the API
or the network failed; 2 the command line was wrong (bad arguments, no token); 3 finished,
but incomplete (tasks missing or skipped, said on stderr); 4 a local problem (the output
cannot be written, pyarrow is missing, a port is in use); 5 partial: ``tasks export
--all-spaces`` wrote some spaces but others failed (each named on stderr; a rerun with
``--resume`` continues them; when every space fails the code is 1); 130 interrupted (Ctrl-C).

The API token is never printed: it is not an argparse default (so ``--help`` cannot show it),
and every error or log line is scrubbed of it before it reaches the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any, NoReturn

from . import _commands
from ._commands import DEMO_NAME, EXIT_CODES, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ._dates import parse_datetime
from ._export import FORMATS
from ._params import AUTH_SCHEME_ENV, AUTH_SCHEMES, BASE_URL_ENV, ORG_ENV, TOKEN_ENV
from ._progress import DEFAULT_INTERVAL, print_line
from ._redact import Redactor
from ._spaces import DEFAULT_SPACES_AT_ONCE
from ._sync import DEFAULT_LOOKBACK
from ._version import __version__

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


# --- logging ------------------------------------------------------------------------------


class _StderrHandler(logging.Handler):
    """Writes each record as a line of its own, above the progress display if one is open."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print_line(self.format(record))
        except Exception:
            self.handleError(record)


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class _NotInSummary(logging.Filter):
    """Without ``-v``: leave out the warnings the summary says too (each thing said once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "unpod_in_stats", False)


class _Brief(logging.Formatter):
    """Without ``-v``: ``warning: ...``, as the command's own warnings read."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _tokens_in(argv: Sequence[str]) -> list[str]:
    """The values given to ``--token`` in ``argv``, found before argparse sees (and echoes) it."""
    found = []
    for i, arg in enumerate(argv):
        if arg == "--token" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--token="):
            found.append(arg.partition("=")[2])
    return found


# --- argument types -----------------------------------------------------------------------


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


_EPOCH = re.compile(r"-?\d+(\.\d*)?")
_DURATION = re.compile(r"(\d+(?:\.\d*)?)\s*([smhdw]?)", re.I)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``2d``, ``1h30m``, ``3600s`` or ``3600`` (seconds) as a timedelta.

    >>> parse_duration("1h30m"), parse_duration("0")
    (datetime.timedelta(seconds=5400), datetime.timedelta(0))
    """
    value = text.strip().replace(" ", "")
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 24h, 90m, 2d or 3600 (seconds), got {text!r}"
        )
    seconds = sum(float(n) * _SECONDS[u.lower()] for n, u in parts)
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"duration too long: {text!r}")
    return timedelta(seconds=seconds)


def parse_date(text: str) -> float:
    """ISO date or datetime (naive means UTC), or epoch seconds, as epoch seconds.

    >>> parse_date("2026-01-01"), parse_date("2026-01-01T00:00:00Z"), parse_date("1767225600")
    (1767225600.0, 1767225600.0, 1767225600.0)
    """
    value = text.strip()
    if _EPOCH.fullmatch(value):
        return float(value)
    # The server's own timestamp reader: the same forms on every Python version.
    when = parse_datetime(value)
    if when is None:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date (2026-01-31), datetime (2026-01-31T08:00:00Z) or epoch "
            f"seconds, got {text!r}"
        )
    return when.timestamp()


# --- the parser ---------------------------------------------------------------------------

DATE_HELP = "DATE: 2026-01-31, 2026-01-31T08:00:00Z or +01:00, or epoch seconds; naive is UTC"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option says its default: written in its help, or added here from the value."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.required or "default" in text.lower():
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        if action.default not in (None, argparse.SUPPRESS):
            return f"{text} (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose error messages are scrubbed of secrets."""

    redact: Redactor | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `--tok X` would hide a token from the scrubbing in `main`.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        description = kwargs.get("description")
        if description and "\n" not in description:  # the formatter keeps text as it is
            kwargs["description"] = textwrap.fill(description, 80)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if _Parser.redact is not None:
            message = _Parser.redact(message)
        super().error(message)


def _connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    opts = parser.add_argument_group("connection options")
    opts.add_argument(
        "--token",
        default=default,
        metavar="TOKEN",
        help=f"API token (default: ${TOKEN_ENV}; never printed)",
    )
    opts.add_argument(
        "--org-handle",
        default=default,
        metavar="HANDLE",
        help=f"organization handle, the Org-Handle header; `orgs list` shows them "
        f"(default: ${ORG_ENV})",
    )
    opts.add_argument(
        "--base-url",
        default=default,
        metavar="URL",
        help=f"API base URL (default: ${BASE_URL_ENV}, else https://unpod.ai)",
    )
    opts.add_argument(
        "--auth-scheme",
        default=default,
        metavar="SCHEME",
        help=f"Authorization scheme: {', '.join(AUTH_SCHEMES)}; the spaces and organizations "
        f"views may need JWT or Bearer (default: ${AUTH_SCHEME_ENV}, else Token)",
    )
    opts.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=default,
        help="allow a plain http:// base URL to a host other than this machine: the token "
        "then travels in clear text (default: off; http:// to loopback is always allowed)",
    )


def _request_options(parser: argparse.ArgumentParser, default: Any, concurrency: int) -> None:
    opts = parser.add_argument_group("request options")
    opts.add_argument(
        "--concurrency",
        type=_positive_int,
        default=default,
        metavar="N",
        help=f"requests in flight at most (default: {concurrency})",
    )
    opts.add_argument(
        "--timeout",
        type=_positive_float,
        default=default,
        metavar="SECONDS",
        help="per-attempt timeout (default: 30)",
    )
    opts.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=default,
        metavar="N",
        help="retries per request (default: 5)",
    )


def _verbosity_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log to stderr: -v what the client does (retries, resumes), -vv also each "
        "request with its page, status, size, time and attempt; the token never appears "
        "(default: warnings only)",
    )


def _global_options(*, suppress: bool) -> _Parser:
    """Options of every command that talks to the API, accepted before or after the command
    (``suppress`` keeps a later copy from overwriting an earlier value with its default)."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = _Parser(add_help=False)
    _connection_options(group, default)
    _request_options(group, default, concurrency=8)
    _verbosity_option(group, argparse.SUPPRESS if suppress else 0)
    return group


def _display_options(parser: argparse.ArgumentParser) -> None:
    """The options of a command that shows a progress display (export, demo)."""
    parser.add_argument(
        "--progress-interval",
        type=_non_negative_float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help="when stderr is not a terminal (a CI log, nohup), print a progress line every "
        f"SECONDS; 0 prints none (default: {DEFAULT_INTERVAL:g}; on a terminal the display "
        "is live)",
    )


def _add_filters(parser: argparse.ArgumentParser) -> None:
    filters = parser.add_argument_group("filters (default: none, every task)")
    filters.add_argument(
        "--status",
        action="append",
        metavar="S",
        help="only tasks with this status of their own: pending, in_progress, completed, "
        "hold, failed, partially_completed (repeatable, or a comma list); checked on each "
        "task, the server has no such filter (default: any)",
    )
    filters.add_argument(
        "--outcome",
        action="append",
        metavar="LABEL",
        help="only calls with this outcome label (repeatable, or a comma list: "
        "'Interested,Call Back'); the server's own status filter (default: any)",
    )
    filters.add_argument(
        "--call-type",
        metavar="TYPE",
        help="inbound or outbound (provider variants included), or any exact value (default: both)",
    )
    filters.add_argument(
        "--since",
        type=parse_date,
        metavar="DATE",
        help="created at or after DATE (the server reads it in its own time zone; each task "
        f"is checked again in UTC). {DATE_HELP} (default: no lower bound)",
    )
    filters.add_argument(
        "--until",
        type=parse_date,
        metavar="DATE",
        help=f"created at or before DATE, likewise. {DATE_HELP} (default: no upper bound)",
    )
    search = filters.add_mutually_exclusive_group()
    search.add_argument(
        "--search",
        metavar="TEXT",
        help="the contact's name or phone contains TEXT, any case (default: no search)",
    )
    search.add_argument(
        "--search-pattern",
        metavar="REGEX",
        help="the same, with a regular expression (default: no search)",
    )
    filters.add_argument(
        "--thread-id", metavar="ID", help="only tasks of this thread (default: any)"
    )
    filters.add_argument("--user-id", metavar="ID", help="only tasks of this user (default: any)")


def _space_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "space_token",
        metavar="SPACE_TOKEN",
        help="the space's token (`unpod-async spaces list` shows them)",
    )


def _epilog() -> str:
    codes = "\n".join(f"  {code:<3}  {meaning}" for code, meaning in EXIT_CODES)
    return (
        "getting started:\n"
        "  unpod-async demo                      try it on the built-in simulator\n"
        "  unpod-async orgs list                 your organizations: HANDLE is --org-handle\n"
        "  unpod-async spaces list               their spaces: TOKEN is SPACE_TOKEN\n"
        "  unpod-async tasks export SPACE_TOKEN -o tasks.jsonl\n"
        f"\nexit codes:\n{codes}"
    )


def _add_sources(parser: argparse.ArgumentParser) -> None:
    """``tasks export``'s other sources: every space, one run, one agent."""
    org = parser.add_argument_group("other sources")
    org.add_argument(
        "--all-spaces",
        action="store_true",
        help="every space of --org-handle, concurrently, one file per space in --output-dir "
        "(Parquet: one dataset partitioned by space_token)",
    )
    org.add_argument(
        "--output-dir",
        metavar="DIR",
        help="where --all-spaces writes, created if missing (required with --all-spaces)",
    )
    org.add_argument(
        "--spaces-at-once",
        type=_positive_int,
        default=DEFAULT_SPACES_AT_ONCE,
        metavar="N",
        help="spaces exported at the same time by --all-spaces, sharing --concurrency "
        f"(default: {DEFAULT_SPACES_AT_ONCE})",
    )
    org.add_argument(
        "--run",
        metavar="RUN_ID",
        help="only the tasks of this run of SPACE_TOKEN (default: every task of the space)",
    )
    org.add_argument(
        "--agent",
        metavar="HANDLE",
        help="the tasks of this agent across its spaces, instead of SPACE_TOKEN (default: none)",
    )


def _add_runs(commands: Any, common: argparse.ArgumentParser) -> None:
    """``runs list SPACE_TOKEN``."""
    runs = commands.add_parser("runs", help="the runs of a space")
    runs_cmds = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    runs_list = runs_cmds.add_parser(
        "list", parents=[common], help="list the runs of a space, newest first"
    )
    _space_argument(runs_list)
    runs_list.add_argument(
        "--page-size", type=_positive_int, default=100, metavar="N", help="runs per request"
    )
    runs_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs_list.set_defaults(handler=_commands.run_runs)


def _add_export(tasks_cmds: Any, common: argparse.ArgumentParser) -> None:
    """``tasks export [SPACE_TOKEN]``: a space, a run, an agent or every space, from the
    server or (``--from-db``) a store."""
    export = tasks_cmds.add_parser(
        "export",
        parents=[common],
        help="export every task of a space to a file",
        description="Export every task of a space, once each, newest first. The file "
        "appears only when complete (written beside it, then renamed).",
    )
    export.add_argument(
        "space_token",
        metavar="SPACE_TOKEN",
        nargs="?",
        help="the space's token (`unpod-async spaces list` shows them); or --agent HANDLE, "
        "or --all-spaces",
    )
    export.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="output file, or - for stdout (required, but with --all-spaces: --output-dir)",
    )
    _add_sources(export)
    export.add_argument(
        "--format",
        choices=FORMATS,
        help="jsonl, csv or parquet (default: from the extension of FILE, else jsonl)",
    )
    export.add_argument(
        "--page-size", type=_positive_int, default=100, metavar="N", help="tasks per request"
    )
    export.add_argument(
        "--resume",
        action="store_true",
        help="checkpoint as it goes, keep a partial file on failure, continue from a checkpoint",
    )
    export.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1, no file) rather than finish short (exit 3) when tasks are "
        "missing or the server fails to serve some of them",
    )
    export.add_argument(
        "--deadline",
        type=_positive_float,
        metavar="SECONDS",
        help="give up after this long (default: no deadline)",
    )
    export.add_argument(
        "--no-csv-formula-guard",
        dest="csv_formula_guard",
        action="store_false",
        help="write CSV cells as they are (default: a cell starting with = + - @ gets a ' "
        "in front, so that a spreadsheet does not run it as a formula)",
    )
    export.add_argument(
        "--from-db",
        metavar="DB",
        help="write what `tasks sync` stored in DB instead (no request, no token needed; "
        "only the --status, --since and --until filters; default: read the server)",
    )
    _display_options(export)
    _add_filters(export)
    export.set_defaults(
        handler=_commands.run_export, check=_commands.export_sources_problem, parser=export
    )


def _add_sync(tasks_cmds: Any, common: argparse.ArgumentParser) -> None:
    """``tasks sync SPACE_TOKEN --db FILE``."""
    sync = tasks_cmds.add_parser(
        "sync",
        parents=[common],
        help="keep a local SQLite copy of a space current",
        description="Keep a copy of a space in an SQLite file current: the first sync reads "
        "every task, the next ones only the head (new tasks, those still open, and those "
        "created within --lookback). Many spaces can share one file.",
    )
    _space_argument(sync)
    sync.add_argument(
        "--db", required=True, metavar="FILE", help="the SQLite file, created if missing (required)"
    )
    sync.add_argument(
        "--full",
        action="store_true",
        help="read every task again, and mark those no longer served deleted (default: read "
        "only the head)",
    )
    sync.add_argument(
        "--lookback",
        type=parse_duration,
        default=DEFAULT_LOOKBACK,
        metavar="DURATION",
        help="read again the tasks created within this long (post-call data lands after a "
        "call ends): 24h (default), 90m, 2d, 0",
    )
    sync.add_argument(
        "--page-size", type=_positive_int, default=100, metavar="N", help="tasks per request"
    )
    sync.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) rather than finish short (exit 3) when tasks are missing",
    )
    sync.add_argument(
        "--deadline",
        type=_positive_float,
        metavar="SECONDS",
        help="give up after this long (default: no deadline)",
    )
    _display_options(sync)
    sync.set_defaults(handler=_commands.run_sync)


def _add_get(tasks_cmds: Any, common: argparse.ArgumentParser) -> None:
    """``tasks get SPACE_TOKEN``: one page as JSON."""
    get = tasks_cmds.add_parser(
        "get", parents=[common], help="print one page of a space's tasks as JSON"
    )
    _space_argument(get)
    get.add_argument("--page", type=_positive_int, default=1, metavar="N", help="page number")
    get.add_argument(
        "--page-size", type=_positive_int, default=20, metavar="N", help="tasks per page"
    )
    _add_filters(get)
    get.set_defaults(handler=_commands.run_get)


def _add_tasks(commands: Any, common: argparse.ArgumentParser) -> None:
    """``tasks export``, ``tasks sync`` and ``tasks get``."""
    tasks = commands.add_parser("tasks", help="read a space's tasks")
    tasks_cmds = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    _add_export(tasks_cmds, common)
    _add_sync(tasks_cmds, common)
    _add_get(tasks_cmds, common)


def _add_spaces(commands: Any, common: argparse.ArgumentParser) -> None:
    """``spaces list``."""
    spaces = commands.add_parser("spaces", help="the spaces of an organization")
    spaces_cmds = spaces.add_subparsers(dest="spaces_command", metavar="ACTION", required=True)
    spaces_list = spaces_cmds.add_parser(
        "list", parents=[common], help="list the spaces of --org-handle and their tokens"
    )
    spaces_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    spaces_list.set_defaults(handler=_commands.run_spaces)


def _add_orgs(commands: Any, common: argparse.ArgumentParser) -> None:
    """``orgs list``."""
    orgs = commands.add_parser("orgs", help="the organizations of the token")
    orgs_cmds = orgs.add_subparsers(dest="orgs_command", metavar="ACTION", required=True)
    orgs_list = orgs_cmds.add_parser(
        "list",
        parents=[common],
        help="list the organizations the token belongs to and their handles",
    )
    orgs_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    orgs_list.set_defaults(handler=_commands.run_orgs)


def _add_demo(commands: Any) -> None:
    """``demo``: no connection options (it talks to its own simulator)."""
    demo = commands.add_parser(
        "demo",
        help="export a simulated space end to end (no account needed)",
        description="Start the built-in simulator on loopback, export its space of tasks "
        "with the progress display, and say where the file is and how fast it went.",
    )
    demo.add_argument(
        "--tasks",
        type=_non_negative_int,
        default=20_000,
        metavar="N",
        help="tasks in the simulated space",
    )
    demo.add_argument(
        "-o",
        "--output",
        metavar="DIR_OR_FILE",
        help=f"where to write (default: {DEMO_NAME}.jsonl in a new temporary directory, "
        "which the demo names)",
    )
    demo.add_argument("--format", choices=FORMATS, help="default: from the extension, else jsonl")
    demo.add_argument(
        "--page-size", type=_positive_int, default=100, metavar="N", help="tasks per request"
    )
    _request_options(demo, argparse.SUPPRESS, concurrency=16)
    _verbosity_option(demo, argparse.SUPPRESS)
    _display_options(demo)
    demo.set_defaults(handler=_commands.run_demo)


def _add_simulate(commands: Any) -> None:
    """``simulate``: no connection options (it serves the simulator)."""
    simulate = commands.add_parser(
        "simulate",
        help="serve the simulated API until Ctrl-C",
        description="Serve the built-in simulator of the Unpod API until Ctrl-C. Anyone who "
        "can reach it can read its tasks with its well-known token: keep it on loopback.",
    )
    simulate.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; anything but loopback is warned about",
    )
    simulate.add_argument(
        "--port", type=_port, default=8080, help="port to listen on, 0 to pick a free one"
    )
    simulate.add_argument(
        "--tasks",
        type=_non_negative_int,
        default=20_000,
        metavar="N",
        help="tasks in the simulated space",
    )
    simulate.add_argument(
        "--latency-ms",
        type=_non_negative_float,
        default=0.0,
        metavar="X",
        help="added to every answer, in milliseconds",
    )
    simulate.add_argument(
        "--fault-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="share of requests that fail (503, 206, 429, reset), 0 to 1",
    )
    simulate.add_argument(
        "--page-size-cap",
        type=_positive_int,
        metavar="N",
        help="serve at most N tasks a page, whatever is asked (default: no cap)",
    )
    simulate.set_defaults(handler=_commands.run_simulate)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``unpod-async`` command line."""
    common = _global_options(suppress=True)
    parser = _Parser(
        prog="unpod-async",
        description="Fast, safe client for the Unpod platform API.",
        parents=[_global_options(suppress=False)],
        epilog=_epilog(),
    )
    parser.add_argument("--version", action="version", version=f"unpod-async {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_tasks(commands, common)
    _add_runs(commands, common)
    _add_spaces(commands, common)
    _add_orgs(commands, common)
    _add_demo(commands)
    _add_simulate(commands)
    return parser


@contextmanager
def _logging(verbosity: int, redact: Redactor) -> Iterator[None]:
    """Log lines on stderr: warnings only (minus those the summary says), ``-v`` INFO, ``-vv``
    DEBUG (each request). The logger passes INFO in any case, for the display's retries."""
    logger = logging.getLogger("unpod_async")
    handler = _StderrHandler()
    if verbosity:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    else:
        handler.setFormatter(_Brief())
        handler.setLevel(logging.WARNING)
        handler.addFilter(_NotInSummary())
    handler.addFilter(_RedactingFilter(redact))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _quiet_stdout() -> None:
    """The reader of stdout went away: keep Python's final flush from failing again."""
    with suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit code.

    >>> main(["orgs", "list", "--json"])  # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    redact = Redactor()
    redact.add(os.environ.get(TOKEN_ENV))
    for token in _tokens_in(argv):
        redact.add(token)
    _Parser.redact = redact
    try:
        args = build_parser().parse_args(argv)
        # What argparse cannot say alone (one source of several), said as its usage errors.
        check = getattr(args, "check", None)
        problem = check(args) if check is not None else None
        if problem is not None:
            args.parser.error(problem)
    except SystemExit as exc:  # --help and --version (0), or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    finally:
        _Parser.redact = None
    redact.add(args.token)
    handler: Handler = args.handler

    try:
        with _logging(args.verbose, redact):
            return asyncio.run(handler(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if args.command == "simulate":
            _commands.err("simulator stopped")
            return EXIT_OK
        _commands.err(_commands.interrupt_hint(args))
        return EXIT_INTERRUPTED
    except Exception as exc:
        code, lines = _commands.failure(exc, args)
        for line in lines:
            _commands.err(redact(line))
        if code == EXIT_OK:  # stdout's reader went away
            _quiet_stdout()
        return code


if __name__ == "__main__":
    sys.exit(main())
