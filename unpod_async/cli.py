"""The ``unpod-async`` command: parsing and printing only; the work is in the library.

Exit codes: 0 done; 1 the API, the network or the output failed (any ``UnpodError``); 2 the
command line was wrong (bad arguments, no token); 3 finished, but incomplete (tasks missing
or skipped, said on stderr); 130 interrupted (Ctrl-C).

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
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from . import _commands
from ._commands import (
    DEMO_NAME,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from ._errors import UnpodError
from ._export import FORMATS
from ._params import AUTH_SCHEME_ENV, AUTH_SCHEMES, BASE_URL_ENV, ORG_ENV, TOKEN_ENV
from ._redact import Redactor
from ._version import __version__

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


# --- logging ------------------------------------------------------------------------------


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now, so that a live progress display that
    redirects stderr keeps log lines above itself."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
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
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"  # Python 3.10's fromisoformat does not take "Z"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date (2026-01-31), datetime (2026-01-31T08:00:00Z) or epoch "
            f"seconds, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


# --- the parser ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose error messages are scrubbed of secrets."""

    redact: Redactor | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `--tok X` would hide a token from the scrubbing in `main`.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if _Parser.redact is not None:
            message = _Parser.redact(message)
        super().error(message)


def _global_options(*, suppress: bool) -> _Parser:
    """Options accepted before or after the command (``suppress`` keeps a later copy from
    overwriting an earlier value with its default)."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = _Parser(add_help=False)
    opts = group.add_argument_group("connection options")
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
        help=f"organization domain handle (default: ${ORG_ENV})",
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
        help=f"Authorization scheme: {', '.join(AUTH_SCHEMES)} (default: ${AUTH_SCHEME_ENV}, "
        "else Token; the spaces and organizations views may need JWT or Bearer)",
    )
    opts.add_argument(
        "--concurrency",
        type=_positive_int,
        default=default,
        metavar="N",
        help="requests in flight at most (default: 8)",
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
    opts.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="log what the client does to stderr (-vv for debug)",
    )
    return group


def _add_filters(parser: argparse.ArgumentParser) -> None:
    filters = parser.add_argument_group("filters")
    filters.add_argument(
        "--status",
        action="append",
        metavar="S",
        help="only tasks with this status of their own (repeatable, or a comma list: "
        "completed,failed); checked on each task, the server has no such filter",
    )
    filters.add_argument(
        "--outcome",
        action="append",
        metavar="LABEL",
        help="only calls with this outcome label (repeatable, or a comma list: "
        "'Interested,Call Back'); the server's own status filter",
    )
    filters.add_argument(
        "--call-type",
        metavar="TYPE",
        help="inbound or outbound (provider variants included), or any exact value",
    )
    filters.add_argument(
        "--since",
        type=parse_date,
        metavar="DATE",
        help="created at or after DATE (the server reads it in its own time zone; each task "
        "is checked again in UTC)",
    )
    filters.add_argument(
        "--until", type=parse_date, metavar="DATE", help="created at or before DATE (likewise)"
    )
    search = filters.add_mutually_exclusive_group()
    search.add_argument(
        "--search", metavar="TEXT", help="the contact's name or phone contains TEXT"
    )
    search.add_argument(
        "--search-pattern", metavar="REGEX", help="the same, with a regular expression"
    )
    filters.add_argument("--thread-id", metavar="ID", help="only tasks of this thread")
    filters.add_argument("--user-id", metavar="ID", help="only tasks of this user")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``unpod-async`` command line."""
    common = _global_options(suppress=True)
    parser = _Parser(
        prog="unpod-async",
        description="Fast, safe client for the Unpod platform API.",
        parents=[_global_options(suppress=False)],
        epilog="DATE is an ISO date or datetime (naive means UTC) or epoch seconds. "
        "Run `unpod-async demo` to try it against the built-in simulator, no account needed.",
    )
    parser.add_argument("--version", action="version", version=f"unpod-async {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # tasks
    tasks = commands.add_parser("tasks", help="read a space's tasks")
    tasks_cmds = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)

    export = tasks_cmds.add_parser(
        "export",
        parents=[common],
        help="export every task of a space to a file",
        description="Export every task of a space, once each, newest first.",
    )
    export.add_argument("space_token", metavar="SPACE_TOKEN")
    export.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="output file, or - for stdout"
    )
    export.add_argument(
        "--format",
        choices=FORMATS,
        help="jsonl, csv or parquet (default: from the extension of FILE, else jsonl)",
    )
    export.add_argument("--page-size", type=_positive_int, default=100, metavar="N")
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
        "--deadline", type=_positive_float, metavar="SECONDS", help="give up after this long"
    )
    export.add_argument(
        "--no-csv-formula-guard",
        dest="csv_formula_guard",
        action="store_false",
        help="write CSV cells as they are (by default a cell starting with = + - @ gets a ' "
        "in front, so that a spreadsheet does not run it as a formula)",
    )
    export.add_argument(
        "--from-db",
        metavar="DB",
        help="write what `tasks sync` stored in DB instead (no request, no token needed; "
        "only the --status, --since and --until filters)",
    )
    _add_filters(export)
    export.set_defaults(handler=_commands.run_export)

    sync = tasks_cmds.add_parser(
        "sync",
        parents=[common],
        help="keep a local SQLite copy of a space current",
        description="Keep a copy of a space in an SQLite file current: the first sync reads "
        "every task, the next ones only the head (new tasks, those still open, and those "
        "created within --lookback). Many spaces can share one file.",
    )
    sync.add_argument("space_token", metavar="SPACE_TOKEN")
    sync.add_argument("--db", required=True, metavar="FILE", help="the SQLite file (created)")
    sync.add_argument(
        "--full",
        action="store_true",
        help="read every task again, and mark those no longer served deleted",
    )
    sync.add_argument(
        "--lookback",
        type=parse_duration,
        default=timedelta(hours=24),
        metavar="DURATION",
        help="read again the tasks created within this long (post-call data lands after a "
        "call ends): 24h (default), 90m, 2d, 0",
    )
    sync.add_argument("--page-size", type=_positive_int, default=100, metavar="N")
    sync.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) rather than finish short (exit 3) when tasks are missing",
    )
    sync.add_argument(
        "--deadline", type=_positive_float, metavar="SECONDS", help="give up after this long"
    )
    sync.set_defaults(handler=_commands.run_sync)

    get = tasks_cmds.add_parser(
        "get", parents=[common], help="print one page of a space's tasks as JSON"
    )
    get.add_argument("space_token", metavar="SPACE_TOKEN")
    get.add_argument("--page", type=_positive_int, default=1, metavar="N")
    get.add_argument("--page-size", type=_positive_int, default=20, metavar="N")
    _add_filters(get)
    get.set_defaults(handler=_commands.run_get)

    # spaces / orgs
    spaces = commands.add_parser("spaces", help="the spaces of an organization")
    spaces_cmds = spaces.add_subparsers(dest="spaces_command", metavar="ACTION", required=True)
    spaces_list = spaces_cmds.add_parser(
        "list", parents=[common], help="list the spaces of --org-handle"
    )
    spaces_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    spaces_list.set_defaults(handler=_commands.run_spaces)

    orgs = commands.add_parser("orgs", help="the organizations of the token")
    orgs_cmds = orgs.add_subparsers(dest="orgs_command", metavar="ACTION", required=True)
    orgs_list = orgs_cmds.add_parser(
        "list", parents=[common], help="list the organizations the token belongs to"
    )
    orgs_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    orgs_list.set_defaults(handler=_commands.run_orgs)

    # demo / simulate
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="export a simulated space end to end (no account needed)",
        description="Start the built-in simulator on loopback, export its space of tasks "
        "with the progress display, and say where the file is and how fast it went.",
    )
    demo.add_argument("--tasks", type=_non_negative_int, default=20_000, metavar="N")
    demo.add_argument(
        "-o",
        "--output",
        metavar="DIR_OR_FILE",
        help=f"where to write (default: ./{DEMO_NAME}.jsonl, else a temporary directory)",
    )
    demo.add_argument("--format", choices=FORMATS, help="default: from the extension, else jsonl")
    demo.add_argument("--page-size", type=_positive_int, default=100, metavar="N")
    demo.set_defaults(handler=_commands.run_demo)

    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="serve the simulated API until Ctrl-C",
        description="Serve the built-in simulator of the Unpod API until Ctrl-C.",
    )
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=_non_negative_int, default=8080, help="0 picks one")
    simulate.add_argument("--tasks", type=_non_negative_int, default=20_000, metavar="N")
    simulate.add_argument("--latency-ms", type=_non_negative_float, default=0.0, metavar="X")
    simulate.add_argument("--fault-rate", type=_fraction, default=0.0, metavar="F")
    simulate.add_argument("--page-size-cap", type=_positive_int, metavar="N")
    simulate.set_defaults(handler=_commands.run_simulate)
    return parser


def _fill_defaults(args: argparse.Namespace) -> None:
    """Global options given nowhere: the values argparse left out (see ``_global_options``)."""
    names = ("token", "org_handle", "base_url", "auth_scheme", "concurrency", "timeout")
    for name in (*names, "max_retries"):
        if not hasattr(args, name):
            setattr(args, name, None)
    if not hasattr(args, "verbose"):
        args.verbose = 0


@contextmanager
def _logging(verbosity: int, redact: Redactor) -> Iterator[None]:
    logger = logging.getLogger("unpod_async")
    if not verbosity:
        yield
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter(redact))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


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
    except SystemExit as exc:  # --help and --version (0), or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    finally:
        _Parser.redact = None
    _fill_defaults(args)
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
    except UnpodError as exc:
        _commands.err(f"error: {redact(str(exc))}")
        return EXIT_ERROR
    except (UsageError, ValueError, TypeError) as exc:
        _commands.err(f"error: {redact(str(exc))}")
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's final flush of
        # stdout from raising again at exit.
        with suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:
        _commands.err(f"error: {redact(str(exc))}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
