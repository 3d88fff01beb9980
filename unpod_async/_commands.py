"""The commands of ``unpod-async``: each calls the library and prints what it did.

Shared by every command, so that a new one gets them by using them: the client built from
the options (:func:`_client`), the filters with their warnings (:func:`_filters`), an
export with its header line, its progress display and its summary (:func:`export_with_display`,
or :func:`display_for` and :func:`report`), and the one place where an error becomes a message
and an exit code (:func:`failure`, called by ``cli.main`` for every command).

Exit codes (:data:`EXIT_CODES`): 0 done (also when the reader of stdout went away: ``| head``);
1 the API or the network failed; 2 the command line was wrong; 3 finished, but incomplete;
4 a local problem: a file that cannot be written, pyarrow missing, a port in use;
5 partial (``--all-spaces``: some spaces failed, the others were written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import signal
import sys
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from ._client import UnpodClient
from ._errors import BusinessLogicError, ExportError, ResponseTooLargeError, UnpodError
from ._export import ExportStats, Format
from ._params import (
    BASE_URL_ENV,
    ORG_ENV,
    TASK_STATUSES,
    TOKEN_ENV,
    TaskFilterArgs,
    env_org_handle,
    env_token,
    is_loopback,
    split_list,
)
from ._progress import (
    ProgressDisplay,
    format_bytes,
    format_duration,
    isatty,
    open_display,
    plural,
    print_line,
)
from ._spaces import FORMAT_SUFFIX, SpacesExportStats
from ._store_export import export_from_db
from ._sync import SyncStats

_EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}
DEMO_NAME = "unpod-demo-export"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3  # finished, but knows it is short: tasks missing or skipped
EXIT_LOCAL = 4  # this machine is in the way: a file cannot be written, pyarrow, a port
EXIT_PARTIAL = 5  # --all-spaces: some spaces failed, the others were written
EXIT_INTERRUPTED = 130

#: What each exit code means, as ``--help`` and the README say it.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "done (also when the reader of stdout went away, as with | head)"),
    (EXIT_ERROR, "the API or the network failed (or --strict found the export short)"),
    (EXIT_USAGE, "the command line was wrong: bad arguments, no token, no such directory"),
    (EXIT_INCOMPLETE, "finished, but incomplete: tasks missing or skipped (said on stderr)"),
    (
        EXIT_LOCAL,
        "a local problem: the output cannot be written, pyarrow is missing, a port is in use",
    ),
    (EXIT_PARTIAL, "partial: --all-spaces wrote some spaces, others failed (each named)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)


class UsageError(Exception):
    """A command line that cannot work (exit code 2), found before any request."""


class LocalError(Exception):
    """Something on this machine is in the way (exit code 4): a port in use, say."""


def format_for(output: str) -> Format:
    """The export format an output name implies: by extension, else JSONL."""
    if output == "-":
        return "jsonl"
    return _EXTENSIONS.get(Path(output).suffix.lower(), "jsonl")


# --- printing -----------------------------------------------------------------------------


def err(line: str) -> None:
    """A line on stderr, above the progress display if one is open."""
    print_line(line)


def warn(text: str) -> None:
    err(f"warning: {text}")


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


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else format_duration(seconds)


def summary_lines(stats: ExportStats, space: str | None = None) -> list[str]:
    """What an export did, in the same lines for every command that exports. ``space`` is a
    space token, or a label of what was exported (``space T run R``, ``agent H``).

    >>> summary_lines(stats, "space-demo")  # doctest: +SKIP
    ['exported 20,000 tasks from space space-demo to out.jsonl (jsonl)',
     '  48.2 MB in 3.1 s (15.5 MB/s, 6,451 tasks/s); the server counted 20,000',
     '  201 pages, 3 retries, 0 duplicates dropped',
     '  (one page was empty: it confirms the full page before it was the last)']
    """
    where = "stdout" if stats.path in (None, "-") else stats.path
    source = ""
    if space:
        source = f" from {space}" if " " in space else f" from space {space}"
    speed = stats.bytes / stats.seconds if stats.seconds > 0 else 0.0
    counts = [
        plural(stats.pages, "page"),
        plural(stats.retries, "retry", "retries"),
        f"{plural(stats.duplicates, 'duplicate')} dropped",
    ]
    if stats.recovered:
        counts.append(f"{stats.recovered:,} recovered in {plural(stats.passes, 'pass', 'passes')}")
    if stats.resumed_pages:
        counts.append(f"{plural(stats.resumed_pages, 'page')} resumed from a checkpoint")
    lines = [
        f"exported {plural(stats.tasks, 'task')}{source} to {where} ({stats.format})",
        f"  {format_bytes(stats.bytes)} in {_seconds(stats.seconds)} "
        f"({format_bytes(speed)}/s, {stats.tasks_per_second:,.0f} tasks/s); "
        f"the server counted {stats.expected:,}",
        "  " + ", ".join(counts),
    ]
    # Why 200 pages of tasks took 201: a full last page cannot tell it is the last.
    if stats.empty_pages == 1 and stats.pages > 1:
        lines.append("  (one page was empty: it confirms the full page before it was the last)")
    elif stats.empty_pages > 1:
        lines.append(
            f"  ({stats.empty_pages:,} pages were empty: each confirms that the full page "
            "before it was a pass's last)"
        )
    return lines


def shortfall_lines(stats: ExportStats) -> list[str]:
    """What an incomplete export lacks, a line each (none when it is complete)."""
    lines = []
    if stats.skipped:
        shown = ", ".join(map(str, stats.skipped[:10]))
        more = f" and {len(stats.skipped) - 10} more" if len(stats.skipped) > 10 else ""
        lines.append(
            f"incomplete: skipped {plural(len(stats.skipped), 'task')} the server fails to "
            f"serve (positions {shown}{more}); rerun with --strict to fail instead"
        )
    if stats.stopped:
        lines.append(f"incomplete: stopped early ({stats.stopped})")
    elif stats.missing:
        lines.append(
            f"incomplete: {stats.missing:,} fewer tasks than the server's count of "
            f"{stats.last_count:,} after re-reading"
        )
    return lines


def sync_summary_line(stats: SyncStats) -> str:
    """One line saying what a sync did."""
    how = "full" if stats.full else "head"
    if stats.horizon_page is not None:
        how += f", down to page {stats.horizon_page}"
    return (
        f"synced {stats.db} ({how}): {stats.new:,} new, {stats.updated:,} updated, "
        f"{stats.unchanged:,} unchanged, {stats.deleted:,} deleted; "
        f"{plural(stats.requests, 'request')} in {stats.seconds:.1f}s, "
        f"{plural(stats.retries, 'retry', 'retries')}; {stats.stored:,} tasks stored"
    )


def sync_shortfall_lines(stats: SyncStats) -> list[str]:
    """What an incomplete sync lacks, a line each (none when it is complete)."""
    lines = []
    if stats.skipped:
        lines.append(
            f"incomplete: skipped {plural(len(stats.skipped), 'task')} the server fails to "
            "serve; a --full sync reads them once it does"
        )
    if stats.stopped:
        lines.append(f"incomplete: stopped early ({stats.stopped}); the next sync reads again")
    elif stats.missing:
        lines.append(
            f"incomplete: {stats.missing:,} fewer tasks than the server's count of "
            f"{stats.last_count:,}; the next sync reads again"
        )
    return lines


# --- errors -------------------------------------------------------------------------------


def failure(exc: BaseException, args: argparse.Namespace) -> tuple[int, list[str]]:
    """The exit code of a command that raised ``exc`` and what to say (each thing once).

    The lines are not yet scrubbed of the token: the caller does that.
    """
    if (isinstance(exc, ExportError) and exc.errno == errno.EPIPE) or isinstance(
        exc, BrokenPipeError
    ):
        return EXIT_OK, []  # the reader went away (`| head`): stop quietly, like cat does
    if isinstance(exc, ExportError | LocalError):
        return EXIT_LOCAL, [f"error: {exc}"]
    if isinstance(exc, UnpodError):
        return EXIT_ERROR, [f"error: {exc}", *_hints(exc, args)]
    if isinstance(exc, UsageError | ValueError | TypeError):
        return EXIT_USAGE, [f"error: {exc}"]
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return EXIT_LOCAL, [f"error: {exc.strerror or exc}{where}"]
    raise exc


def _hints(exc: UnpodError, args: argparse.Namespace) -> list[str]:
    """What the user can do about an API error, in the command line's own terms."""
    invalid = "invalid space token" in exc.message.lower()
    if isinstance(exc, BusinessLogicError) and not exc.transient and invalid:
        return [
            "hint: `unpod-async spaces list` shows the spaces of your organization and "
            "their tokens (it needs --org-handle; `unpod-async orgs list` shows those)"
        ]
    if isinstance(exc, ResponseTooLargeError):
        size = getattr(args, "page_size", None)
        if size is not None:
            return [
                f"hint: one page of {size:,} tasks is more than the client accepts; try a "
                f"smaller --page-size (say {max(1, size // 4):,})"
            ]
    return []


def interrupt_hint(args: argparse.Namespace) -> str:
    if getattr(args, "handler", None) is run_sync:
        return "interrupted; every page read is stored: sync again to finish"
    if getattr(args, "handler", None) is run_export:
        if args.resume:
            return "interrupted; rerun the same command with --resume to continue"
        if args.all_spaces:
            return "interrupted; the spaces not finished were left untouched"
        if args.output != "-":
            untouched = "interrupted; the destination was left untouched"
            if args.from_db is not None:  # which takes no --resume: it reads no server
                return untouched
            return f"{untouched} (use --resume to make long exports resumable)"
    return "interrupted"


# --- building a client --------------------------------------------------------------------


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    """The client keywords the command line sets (an option not given keeps its default)."""
    options: dict[str, Any] = {}
    for name in ("concurrency", "timeout", "max_retries", "auth_scheme", "allow_insecure_http"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def _client(args: argparse.Namespace) -> UnpodClient:
    """The client the options describe; no token is a usage error (exit 2)."""
    if env_token(args.token) is None:
        raise UsageError(f"no API token: pass --token or set {TOKEN_ENV}")
    return UnpodClient(args.token, args.org_handle, base_url=args.base_url, **_client_options(args))


def _filters(args: argparse.Namespace) -> TaskFilterArgs:
    """The filter options as the keywords every task method takes (checked by the library);
    a ``--status`` outside the documented statuses is warned about."""
    statuses = _statuses(args)
    for status in statuses or ():
        _check_status(status)
    return {
        "status": statuses,
        "outcome": ",".join(args.outcome) if args.outcome else None,
        "call_type": args.call_type,
        "created_after": args.since,
        "created_before": args.until,
        "search": args.search,
        "search_pattern": args.search_pattern,
        "thread_id": args.thread_id,
        "user_id": args.user_id,
    }


def _statuses(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The ``--status`` values: each option may be a comma list (``--status a,b --status c``)."""
    return split_list(",".join(args.status), "--status") if args.status else None


def _check_status(status: str) -> None:
    if status in TASK_STATUSES:
        return
    known = ", ".join(TASK_STATUSES)
    near = [s for s in TASK_STATUSES if s == status.lower().replace(" ", "_").replace("-", "_")]
    guess = f" (did you mean {near[0]}?)" if near else ""
    warn(
        f"--status {status!r} is not one of the documented task statuses ({known}){guess}; "
        "it is matched exactly, so it may select nothing. To filter by the call's outcome "
        "('Interested', 'Call Back', ...), use --outcome"
    )


def host_of(base_url: str) -> str:
    """``https://unpod.ai`` -> ``unpod.ai``; ``http://127.0.0.1:9`` -> ``127.0.0.1:9``."""
    return urllib.parse.urlsplit(base_url).netloc or base_url


# --- exporting with a display --------------------------------------------------------------


def display_for(args: argparse.Namespace, output: str, target: str = "") -> ProgressDisplay:
    """The progress display of a command that writes to ``output`` (a command with
    ``--progress-interval``); ``target`` is the host it reads, shown until page 1 arrives."""
    interval: float = args.progress_interval
    interactive = None
    if output == "-" and isatty(sys.stdout):
        # JSONL on the terminal itself: a live display, or progress lines, would tear it.
        interactive, interval = False, 0.0
    return open_display(target, interactive=interactive, interval=interval)


async def export_with_display(
    client: UnpodClient,
    args: argparse.Namespace,
    label: str,
    output: str | Path,
    fmt: Format,
    export: Callable[..., Awaitable[ExportStats]],
    **options: Any,
) -> ExportStats:
    """Run one export (``export(output, format=, progress=, **options)``) with the header
    line and the progress display; its stats. ``label`` says what is exported: ``space
    TOKEN``, ``space TOKEN run ID``, ``agent HANDLE``."""
    where = "stdout" if output == "-" else str(output)
    err(f"exporting {label} from {host_of(client.base_url)} to {where} ({fmt})")
    with display_for(args, str(output), host_of(client.base_url)) as display:
        return await export(output, format=fmt, progress=display.update, **options)


def report(stats: ExportStats, space: str | None) -> int:
    """Print the summary (and what is missing, if anything); the exit code."""
    for line in summary_lines(stats, space):
        err(line)
    short = shortfall_lines(stats)
    for line in short:
        err(line)
    return EXIT_INCOMPLETE if short else EXIT_OK


# --- commands -----------------------------------------------------------------------------


async def run_sync(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        err(f"syncing space {args.space_token} from {host_of(client.base_url)} into {args.db}")
        with display_for(args, str(args.db), host_of(client.base_url)) as display:
            stats = await client.sync_tasks(
                args.space_token,
                args.db,
                full=args.full,
                lookback=args.lookback,
                page_size=args.page_size,
                progress=display.update,
                deadline=args.deadline,
                strict=args.strict,
            )
    err(sync_summary_line(stats))
    short = sync_shortfall_lines(stats)
    for line in short:
        err(line)
    return EXIT_INCOMPLETE if short else EXIT_OK


#: What only the server does: ``--from-db`` takes none of these (``export_sources_problem``).
_SERVER_OPTIONS = (
    "outcome",
    "call_type",
    "search",
    "search_pattern",
    "thread_id",
    "user_id",
    "resume",
    "strict",
    "deadline",
)


async def _export_from_db(args: argparse.Namespace, output: str, fmt: Format) -> int:
    with display_for(args, output) as display:
        stats = await export_from_db(
            args.from_db,
            args.space_token,
            output,
            format=fmt,
            progress=display.update,
            csv_formula_guard=args.csv_formula_guard,
            status=_statuses(args),
            created_after=args.since,
            created_before=args.until,
        )
    where = "stdout" if stats.path in (None, "-") else stats.path
    err(
        f"exported {plural(stats.tasks, 'task')} of {args.space_token} from {args.from_db} "
        f"to {where} in {stats.seconds:.1f}s, without a request"
    )
    return EXIT_OK


async def run_export(args: argparse.Namespace) -> int:
    if args.all_spaces:
        return await run_export_spaces(args)
    output: str = args.output
    fmt: Format = args.format or format_for(output)
    if args.from_db is not None:
        return await _export_from_db(args, output, fmt)
    filters = _filters(args)
    async with _client(args) as client:
        options: dict[str, Any] = {
            "page_size": args.page_size,
            "resume": args.resume,
            "deadline": args.deadline,
            "strict": args.strict,
            "csv_formula_guard": args.csv_formula_guard,
            **filters,
        }
        if args.agent is not None:
            label = f"agent {args.agent}"
            export = functools.partial(client.export_agent_tasks, args.agent)
        else:
            label = f"space {args.space_token}"
            if args.run is not None:
                label += f" run {args.run}"
            export = functools.partial(client.export_tasks, args.space_token, run_id=args.run)
        stats = await export_with_display(client, args, label, output, fmt, export, **options)
    return report(stats, label)


def export_sources_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``tasks export``'s source and output, if anything: exactly one
    source, and the output that goes with it (checked by the parser, before any request)."""
    if args.from_db is not None:
        problem = _from_db_problem(args)
        if problem is not None:
            return problem
    given = [
        name
        for name, value in (
            ("SPACE_TOKEN", args.space_token),
            ("--agent", args.agent),
            ("--all-spaces", args.all_spaces),
        )
        if value
    ]
    if len(given) != 1:
        return "give one of SPACE_TOKEN, --agent HANDLE or --all-spaces" + (
            f" (not {' and '.join(given)})" if given else ""
        )
    if args.run is not None and args.space_token is None:
        return "--run RUN_ID needs the SPACE_TOKEN the run belongs to"
    if args.all_spaces:
        if args.output_dir is None or args.output is not None:
            return "--all-spaces writes one file per space: give --output-dir DIR"
    elif args.output is None or args.output_dir is not None:
        return "the following arguments are required: -o/--output"
    return None


def _from_db_problem(args: argparse.Namespace) -> str | None:
    """What ``--from-db`` cannot go with: another source, or what only the server does."""
    sources = [
        name
        for name, value in (
            ("--agent", args.agent is not None),
            ("--run", args.run is not None),
            ("--all-spaces", args.all_spaces),
        )
        if value
    ]
    if sources:
        return f"--from-db reads one SPACE_TOKEN from DB: it takes no {' or '.join(sources)}"
    given = [name for name in _SERVER_OPTIONS if getattr(args, name)]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        return f"--from-db takes no {options}: they are the server's"
    return None


def _spaces_line(summary: SpacesExportStats) -> str:
    written = len(summary.results) - len(summary.failed)
    return (
        f"exported {plural(summary.tasks, 'task')} of {written}/"
        f"{plural(len(summary.results), 'space')} to {summary.directory} "
        f"({summary.format}) in {summary.seconds:.1f}s ({summary.tasks_per_second:,.0f} tasks/s)"
    )


async def run_export_spaces(args: argparse.Namespace) -> int:
    if env_org_handle(args.org_handle) is None:
        raise UsageError(f"--all-spaces needs --org-handle or {ORG_ENV}")
    fmt: Format = args.format or "jsonl"
    async with _client(args) as client:
        with display_for(args, str(args.output_dir), host_of(client.base_url)) as display:
            summary = await client.export_spaces(
                args.output_dir,
                format=fmt,
                spaces_at_once=args.spaces_at_once,
                page_size=args.page_size,
                resume=args.resume,
                deadline=args.deadline,
                progress=display.update,
                strict=args.strict,
                csv_formula_guard=args.csv_formula_guard,
                **_filters(args),
            )
    err(_spaces_line(summary))
    short = False
    for result in summary.results:
        if result.stats is None:
            err(f"failed: space {result.space_token}: {result.error}")
            continue
        for line in shortfall_lines(result.stats):
            err(f"space {result.space_token}: {line}")
            short = True
    if summary.failed:
        if len(summary.failed) == len(summary.results):
            return EXIT_ERROR
        hint = " (rerun with --resume to continue them)" if args.resume else ""
        err(f"partial: {len(summary.failed)} of {len(summary.results)} spaces failed{hint}")
        return EXIT_PARTIAL
    return EXIT_INCOMPLETE if short else EXIT_OK


async def run_runs(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        runs = await client.list_runs(args.space_token, page_size=args.page_size)
    if args.json:
        _write_stdout(msgspec.json.format(msgspec.json.encode(runs), indent=2) + b"\n")
    else:
        rows = [
            (
                r.run_id or "",
                r.status or "",
                str(r.batch_count or 0),
                r.run_mode or "",
                r.created or "",
            )
            for r in runs
        ]
        print(_table(("RUN_ID", "STATUS", "TASKS", "MODE", "CREATED"), rows))
    return EXIT_OK


async def run_get(args: argparse.Namespace) -> int:
    filters = _filters(args)
    async with _client(args) as client:
        page = await client.get_tasks(
            args.space_token, page=args.page, page_size=args.page_size, **filters
        )
    _write_stdout(msgspec.json.format(msgspec.json.encode(page), indent=2) + b"\n")
    return EXIT_OK


async def run_spaces(args: argparse.Namespace) -> int:
    if env_org_handle(args.org_handle) is None:
        raise UsageError(
            f"spaces list needs --org-handle or {ORG_ENV} (`unpod-async orgs list` shows them)"
        )
    async with _client(args) as client:
        spaces = await client.list_spaces()
    if args.json:
        _write_stdout(msgspec.json.format(msgspec.json.encode(spaces), indent=2) + b"\n")
    else:
        print(_table(("TOKEN", "NAME"), [(s.token, s.name or "") for s in spaces]))
    return EXIT_OK


async def run_orgs(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        orgs = await client.list_organizations()
    if args.json:
        _write_stdout(msgspec.json.format(msgspec.json.encode(orgs), indent=2) + b"\n")
    else:
        print(_table(("HANDLE", "NAME"), [(o.domain_handle, o.name or "") for o in orgs]))
    return EXIT_OK


def _demo_destination(output: str | None, fmt: Format | None) -> tuple[Path, Format, bool]:
    """Where the demo writes, in which format, and whether that is a new temporary directory."""
    if output is None:
        fmt = fmt or "jsonl"
        folder = Path(tempfile.mkdtemp(prefix="unpod-demo-"))
        return folder / f"{DEMO_NAME}{FORMAT_SUFFIX[fmt]}", fmt, True
    path = Path(output).expanduser()
    if path.is_dir():
        fmt = fmt or "jsonl"
        return path / f"{DEMO_NAME}{FORMAT_SUFFIX[fmt]}", fmt, False
    return path, fmt or format_for(output), False


async def run_demo(args: argparse.Namespace) -> int:
    from .testing import serve

    path, fmt, temporary = _demo_destination(args.output, args.format)
    options = {"concurrency": 16, **_client_options(args)}
    err(f"starting the Unpod simulator with {args.tasks:,} tasks (5 ms latency, 1% faults)")
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(
            serve(tasks=args.tasks, latency=0.005, fault_rate=0.01)
        )
        client = UnpodClient(sim.token, sim.org_handle, base_url=sim.base_url, **options)
        await stack.enter_async_context(client)
        label = f"space {sim.space_token}"
        export = functools.partial(client.export_tasks, sim.space_token)
        stats = await export_with_display(
            client, args, label, path, fmt, export, page_size=args.page_size
        )
    code = report(stats, label)
    if temporary:
        err(
            f"the file is in a new temporary directory, {path.parent} (pass --output to "
            "write it elsewhere)"
        )
    return code


def _serve_problem(exc: OSError, host: str, port: int) -> Exception:
    """A simulator that cannot listen, said in the command line's terms."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return LocalError(
            f"cannot serve on {where}: the port is in use; pick another with --port, or "
            "--port 0 for a free one"
        )
    if exc.errno == errno.EACCES:
        return LocalError(
            f"cannot serve on {where}: permission denied (ports below 1024 "
            "need privileges; try --port 8080)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(
            f"cannot serve on {where}: --host {host} is not an address of "
            "this machine (try 127.0.0.1)"
        )
    reason = exc.strerror or str(exc)
    return UsageError(f"cannot serve on {where}: {reason} (try --host 127.0.0.1)")


async def run_simulate(args: argparse.Namespace) -> int:
    import socket

    from .testing import Simulator

    host: str = args.host
    sim = Simulator(
        args.tasks,
        latency=args.latency_ms / 1000,
        fault_rate=args.fault_rate,
        page_size_cap=args.page_size_cap,
    )
    try:
        await sim.start(host, args.port)
    except socket.gaierror as exc:
        raise UsageError(f"cannot serve on {host}: unknown host ({exc.strerror})") from None
    except OSError as exc:
        raise _serve_problem(exc, host, args.port) from None
    try:
        wide = host in ("", "0.0.0.0", "::")  # noqa: S104 (what we warn about)
        if not is_loopback(host):
            where = "every network interface" if wide else host
            warn(
                f"serving on {where}: anyone who can reach this machine can read the "
                f"simulated tasks with the well-known token {sim.token!r}"
            )
        url = sim.base_url
        print(
            f"Unpod simulator serving {args.tasks:,} tasks at {url} (Ctrl-C to stop)\n"
            f"  base URL:     {url}\n"
            f"  token:        {sim.token}\n"
            f"  org handle:   {sim.org_handle}\n"
            f"  space token:  {sim.space_token}\n"
            "try:\n"
            f"  export {BASE_URL_ENV}={url} {TOKEN_ENV}={sim.token} {ORG_ENV}={sim.org_handle}\n"
            f"  unpod-async tasks export {sim.space_token} --output tasks.jsonl",
            flush=True,
        )
        if not wide and not is_loopback(host):
            err(
                "  (a plain http:// URL to another host is refused unless the client is "
                "given --allow-insecure-http)"
            )
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, AttributeError, RuntimeError):
            # `docker stop` and service managers send SIGTERM: stop as cleanly as on Ctrl-C.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    finally:
        await sim.close()
    err("simulator stopped")
    return EXIT_OK
