"""The ``unpod-async`` command: parsing and printing only; the work is in the library.

Exit codes: 0 done; 1 the API, the network or the output failed (any ``UnpodError``); 2 the
command line was wrong (bad arguments, no token); 130 interrupted (Ctrl-C).

The API token is never printed: it is not an argparse default (so ``--help`` cannot show it),
and every error or log line is scrubbed of it before it reaches the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import msgspec

from ._errors import UnpodError
from ._progress import open_display
from ._version import __version__

if TYPE_CHECKING:
    from ._client import UnpodClient
    from ._export import ExportStats

__all__ = ["main"]

TOKEN_ENV = "UNPOD_API_TOKEN"  # noqa: S105 (a variable's name, not a secret)
ORG_ENV = "UNPOD_ORG_HANDLE"
BASE_URL_ENV = "UNPOD_BASE_URL"

Format = Literal["jsonl", "csv", "parquet"]
FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}
_SUFFIX = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}
DEMO_NAME = "unpod-demo-export"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """A command line that cannot work (exit code 2), found before any request."""


# --- secrets ------------------------------------------------------------------------------


class _Redactor:
    """Replaces every known secret in a text with ``<redacted>``.

    Only whole occurrences count (not inside a longer word), so that a short test token
    such as ``x`` does not mangle every message that happens to contain the letter.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str | None) -> None:
        if secret and secret.strip():
            self._secrets.update((secret, secret.strip()))
            # Longest first, so a secret that contains another is replaced whole.
            alternatives = "|".join(
                re.escape(s) for s in sorted(self._secrets, key=len, reverse=True)
            )
            self._pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub("<redacted>", text)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now, so that a live progress display that
    redirects stderr keeps log lines above itself."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: _Redactor) -> None:
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


def format_for(output: str) -> Format:
    """The export format an output name implies: by extension, else JSONL."""
    if output == "-":
        return "jsonl"
    return _EXTENSIONS.get(Path(output).suffix.lower(), "jsonl")


# --- the parser ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose error messages are scrubbed of secrets."""

    redact: _Redactor | None = None

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
        help="only tasks with this status (repeatable, or a comma list: completed,failed)",
    )
    filters.add_argument("--call-type", choices=("inbound", "outbound"), help="only this kind")
    filters.add_argument(
        "--since", type=parse_date, metavar="DATE", help="created at or after DATE"
    )
    filters.add_argument(
        "--until", type=parse_date, metavar="DATE", help="created at or before DATE"
    )
    filters.add_argument("--search", metavar="TEXT", help="free-text search")


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
        "--deadline", type=_positive_float, metavar="SECONDS", help="give up after this long"
    )
    _add_filters(export)
    export.set_defaults(handler=_cmd_export)

    get = tasks_cmds.add_parser(
        "get", parents=[common], help="print one page of a space's tasks as JSON"
    )
    get.add_argument("space_token", metavar="SPACE_TOKEN")
    get.add_argument("--page", type=_positive_int, default=1, metavar="N")
    get.add_argument("--page-size", type=_positive_int, default=20, metavar="N")
    _add_filters(get)
    get.set_defaults(handler=_cmd_get)

    # spaces / orgs
    spaces = commands.add_parser("spaces", help="the spaces of an organization")
    spaces_cmds = spaces.add_subparsers(dest="spaces_command", metavar="ACTION", required=True)
    spaces_list = spaces_cmds.add_parser(
        "list", parents=[common], help="list the spaces of --org-handle"
    )
    spaces_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    spaces_list.set_defaults(handler=_cmd_spaces)

    orgs = commands.add_parser("orgs", help="the organizations of the token")
    orgs_cmds = orgs.add_subparsers(dest="orgs_command", metavar="ACTION", required=True)
    orgs_list = orgs_cmds.add_parser(
        "list", parents=[common], help="list the organizations the token belongs to"
    )
    orgs_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    orgs_list.set_defaults(handler=_cmd_orgs)

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
    demo.set_defaults(handler=_cmd_demo)

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
    simulate.set_defaults(handler=_cmd_simulate)
    return parser


# --- building a client --------------------------------------------------------------------


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("concurrency", "timeout", "max_retries"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def _client(args: argparse.Namespace) -> UnpodClient:
    from ._client import UnpodClient

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    if not token or not token.strip():
        raise UsageError(f"no API token: pass --token or set {TOKEN_ENV}")
    org = args.org_handle if args.org_handle is not None else os.environ.get(ORG_ENV)
    return UnpodClient(token, org or None, base_url=args.base_url or None, **_client_options(args))


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    statuses = None
    if args.status:
        statuses = [s.strip() for item in args.status for s in item.split(",") if s.strip()]
        if not statuses:
            raise UsageError("--status needs at least one status")
    return {
        "status": statuses,
        "call_type": args.call_type,
        "created_after": args.since,
        "created_before": args.until,
        "search": args.search,
    }


# --- printing -----------------------------------------------------------------------------


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _write_stdout(data: bytes) -> None:
    """Bytes to stdout as they are (JSON is UTF-8 whatever the terminal's encoding)."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        sys.stdout.write(data.decode())
        sys.stdout.flush()


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def summary_line(stats: ExportStats) -> str:
    """One line saying what an export did."""
    where = "stdout" if stats.path in (None, "-") else stats.path
    line = (
        f"exported {_plural(stats.tasks, 'task')} ({stats.expected} expected) "
        f"from {_plural(stats.pages, 'page')} to {where} in {stats.seconds:.1f}s "
        f"({stats.tasks_per_second:,.0f} tasks/s), {_plural(stats.retries, 'retry', 'retries')}, "
        f"{_plural(stats.duplicates, 'duplicate')} dropped"
    )
    if stats.recovered:
        line += f", {stats.recovered} recovered in {_plural(stats.passes, 'pass', 'passes')}"
    if stats.resumed_pages:
        line += f", {_plural(stats.resumed_pages, 'page')} resumed from a checkpoint"
    return line


# --- commands -----------------------------------------------------------------------------


async def _cmd_export(args: argparse.Namespace) -> int:
    output: str = args.output
    fmt: Format = args.format or format_for(output)
    filters = _filters(args)
    # JSONL on the terminal itself: a live display would tear through it.
    interactive = False if output == "-" and _isatty(sys.stdout) else None
    async with _client(args) as client:
        with open_display(interactive=interactive) as display:
            stats = await client.export_tasks(
                args.space_token,
                output,
                format=fmt,
                page_size=args.page_size,
                resume=args.resume,
                deadline=args.deadline,
                progress=display.update,
                **filters,
            )
    _err(summary_line(stats))
    return EXIT_OK


async def _cmd_get(args: argparse.Namespace) -> int:
    filters = _filters(args)
    async with _client(args) as client:
        page = await client.get_tasks(
            args.space_token, page=args.page, page_size=args.page_size, **filters
        )
    _write_stdout(msgspec.json.format(msgspec.json.encode(page), indent=2) + b"\n")
    return EXIT_OK


async def _cmd_spaces(args: argparse.Namespace) -> int:
    client = _client(args)
    if not client.org_handle:
        await client.aclose()
        raise UsageError(f"spaces list needs --org-handle or {ORG_ENV}")
    async with client:
        spaces = await client.list_spaces()
    if args.json:
        _write_stdout(msgspec.json.format(msgspec.json.encode(spaces), indent=2) + b"\n")
    else:
        print(_table(("TOKEN", "NAME"), [(s.token, s.name or "") for s in spaces]))
    return EXIT_OK


async def _cmd_orgs(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        orgs = await client.list_organizations()
    if args.json:
        _write_stdout(msgspec.json.format(msgspec.json.encode(orgs), indent=2) + b"\n")
    else:
        print(_table(("HANDLE", "NAME"), [(o.domain_handle, o.name or "") for o in orgs]))
    return EXIT_OK


def _demo_destination(output: str | None, fmt: Format | None) -> tuple[Path, Format]:
    """Where the demo writes, and in which format."""
    if output is None:
        folder = Path.cwd()
        if not os.access(folder, os.W_OK):
            folder = Path(tempfile.gettempdir())
        fmt = fmt or "jsonl"
        return folder / f"{DEMO_NAME}{_SUFFIX[fmt]}", fmt
    path = Path(output).expanduser()
    if path.is_dir():
        fmt = fmt or "jsonl"
        return path / f"{DEMO_NAME}{_SUFFIX[fmt]}", fmt
    return path, fmt or format_for(output)


async def _cmd_demo(args: argparse.Namespace) -> int:
    from ._client import UnpodClient
    from .testing import serve

    path, fmt = _demo_destination(args.output, args.format)
    options = {"concurrency": 16, **_client_options(args)}
    print(f"starting the Unpod simulator with {args.tasks:,} tasks (5 ms latency, 1% faults)")
    async with serve(tasks=args.tasks, latency=0.005, fault_rate=0.01) as sim:
        client = UnpodClient(sim.token, sim.org_handle, base_url=sim.base_url, **options)
        async with client:
            print(f"exporting space {sim.space_token} from {sim.base_url} to {path}", flush=True)
            with open_display() as display:
                stats = await client.export_tasks(
                    sim.space_token,
                    path,
                    format=fmt,
                    page_size=args.page_size,
                    progress=display.update,
                )
    print(f"file:       {stats.path or path}")
    print(
        f"tasks:      {stats.tasks:,} of {stats.expected:,} expected ({fmt}, {stats.bytes:,} bytes)"
    )
    print(
        f"throughput: {stats.tasks_per_second:,.0f} tasks/s ({stats.seconds:.2f}s, "
        f"{_plural(stats.pages, 'page')}, {_plural(stats.retries, 'retry', 'retries')} "
        f"of injected faults, {_plural(stats.duplicates, 'duplicate')} dropped)"
    )
    return EXIT_OK


async def _cmd_simulate(args: argparse.Namespace) -> int:
    from .testing import serve

    async with serve(
        tasks=args.tasks,
        host=args.host,
        port=args.port,
        latency=args.latency_ms / 1000,
        fault_rate=args.fault_rate,
        page_size_cap=args.page_size_cap,
    ) as sim:
        print(
            f"Unpod simulator serving {args.tasks:,} tasks at {sim.base_url} (Ctrl-C to stop)\n"
            f"  base URL:     {sim.base_url}\n"
            f"  token:        {sim.token}\n"
            f"  org handle:   {sim.org_handle}\n"
            f"  space token:  {sim.space_token}\n"
            "try:\n"
            f"  export {BASE_URL_ENV}={sim.base_url} {TOKEN_ENV}={sim.token} "
            f"{ORG_ENV}={sim.org_handle}\n"
            f"  unpod-async tasks export {sim.space_token} --output tasks.jsonl",
            flush=True,
        )
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, AttributeError, RuntimeError):
            # `docker stop` and service managers send SIGTERM: stop as cleanly as on Ctrl-C.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    _err("simulator stopped")
    return EXIT_OK


# --- entry point --------------------------------------------------------------------------


def _interrupt_hint(args: argparse.Namespace) -> str:
    if getattr(args, "handler", None) is _cmd_export:
        if args.resume:
            return "interrupted; rerun the same command with --resume to continue"
        if args.output != "-":
            return (
                "interrupted; the destination was left untouched "
                "(use --resume to make long exports resumable)"
            )
    return "interrupted"


def _fill_defaults(args: argparse.Namespace) -> None:
    """Global options given nowhere: the values argparse left out (see ``_global_options``)."""
    for name in ("token", "org_handle", "base_url", "concurrency", "timeout", "max_retries"):
        if not hasattr(args, name):
            setattr(args, name, None)
    if not hasattr(args, "verbose"):
        args.verbose = 0


@contextlib.contextmanager
def _logging(verbosity: int, redact: _Redactor) -> Iterator[None]:
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
    redact = _Redactor()
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
            _err("simulator stopped")
            return EXIT_OK
        _err(_interrupt_hint(args))
        return EXIT_INTERRUPTED
    except UnpodError as exc:
        _err(f"error: {redact(str(exc))}")
        return EXIT_ERROR
    except (UsageError, ValueError, TypeError) as exc:
        _err(f"error: {redact(str(exc))}")
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's final flush of
        # stdout from raising again at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:
        _err(f"error: {redact(str(exc))}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
