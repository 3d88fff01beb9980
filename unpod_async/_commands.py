"""The commands of ``unpod-async``: each calls the library and prints what it did.

Exit codes: 0 done; 1 the API, the network or the output failed (any ``UnpodError``); 2 the
command line was wrong (bad arguments, no token); 3 finished, but incomplete (tasks missing
or skipped, said on stderr); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from ._client import UnpodClient
from ._export import ExportStats, Format
from ._params import BASE_URL_ENV, ORG_ENV, TOKEN_ENV, TaskFilterArgs, env_token
from ._progress import isatty, open_display
from ._store_export import export_from_db
from ._sync import SyncStats

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
EXIT_INCOMPLETE = 3  # finished, but knows it is short: tasks missing or skipped
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command line that cannot work (exit code 2), found before any request."""


def format_for(output: str) -> Format:
    """The export format an output name implies: by extension, else JSONL."""
    if output == "-":
        return "jsonl"
    return _EXTENSIONS.get(Path(output).suffix.lower(), "jsonl")


# --- building a client --------------------------------------------------------------------


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("concurrency", "timeout", "max_retries", "auth_scheme"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


def _client(args: argparse.Namespace) -> UnpodClient:
    if env_token(args.token) is None:
        raise UsageError(f"no API token: pass --token or set {TOKEN_ENV}")
    return UnpodClient(args.token, args.org_handle, base_url=args.base_url, **_client_options(args))


def _filters(args: argparse.Namespace) -> TaskFilterArgs:
    """The filter options as the keywords every task method takes (checked by the library)."""
    return {
        "status": ",".join(args.status) if args.status else None,
        "outcome": ",".join(args.outcome) if args.outcome else None,
        "call_type": args.call_type,
        "created_after": args.since,
        "created_before": args.until,
        "search": args.search,
        "search_pattern": args.search_pattern,
        "thread_id": args.thread_id,
        "user_id": args.user_id,
    }


# --- printing -----------------------------------------------------------------------------


def err(line: str) -> None:
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


def shortfall_lines(stats: ExportStats) -> list[str]:
    """What an incomplete export lacks, a line each (none when it is complete)."""
    lines = []
    if stats.skipped:
        shown = ", ".join(map(str, stats.skipped[:10]))
        more = f" and {len(stats.skipped) - 10} more" if len(stats.skipped) > 10 else ""
        lines.append(
            f"incomplete: skipped {_plural(len(stats.skipped), 'task')} the server fails to "
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
        f"{_plural(stats.requests, 'request')} in {stats.seconds:.1f}s, "
        f"{_plural(stats.retries, 'retry', 'retries')}; {stats.stored:,} tasks stored"
    )


def sync_shortfall_lines(stats: SyncStats) -> list[str]:
    """What an incomplete sync lacks, a line each (none when it is complete)."""
    lines = []
    if stats.skipped:
        lines.append(
            f"incomplete: skipped {_plural(len(stats.skipped), 'task')} the server fails to "
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


# --- commands -----------------------------------------------------------------------------


async def run_sync(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        with open_display() as display:
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


_SERVER_FILTERS = ("outcome", "call_type", "search", "search_pattern", "thread_id", "user_id")


async def _export_from_db(args: argparse.Namespace, output: str, fmt: Format) -> int:
    given = [name for name in _SERVER_FILTERS if getattr(args, name)]
    given += [name for name in ("resume", "strict", "deadline") if getattr(args, name)]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"--from-db takes no {options}: they are the server's")
    interactive = False if output == "-" and isatty(sys.stdout) else None
    with open_display(interactive=interactive) as display:
        stats = await export_from_db(
            args.from_db,
            args.space_token,
            output,
            format=fmt,
            progress=display.update,
            csv_formula_guard=args.csv_formula_guard,
            status=",".join(args.status) if args.status else None,
            created_after=args.since,
            created_before=args.until,
        )
    where = "stdout" if stats.path in (None, "-") else stats.path
    err(
        f"exported {_plural(stats.tasks, 'task')} of {args.space_token} from {args.from_db} "
        f"to {where} in {stats.seconds:.1f}s, without a request"
    )
    return EXIT_OK


async def run_export(args: argparse.Namespace) -> int:
    output: str = args.output
    fmt: Format = args.format or format_for(output)
    if args.from_db:
        return await _export_from_db(args, output, fmt)
    filters = _filters(args)
    # JSONL on the terminal itself: a live display would tear through it.
    interactive = False if output == "-" and isatty(sys.stdout) else None
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
                strict=args.strict,
                csv_formula_guard=args.csv_formula_guard,
                **filters,
            )
    err(summary_line(stats))
    short = shortfall_lines(stats)
    for line in short:
        err(line)
    return EXIT_INCOMPLETE if short else EXIT_OK


async def run_get(args: argparse.Namespace) -> int:
    filters = _filters(args)
    async with _client(args) as client:
        page = await client.get_tasks(
            args.space_token, page=args.page, page_size=args.page_size, **filters
        )
    _write_stdout(msgspec.json.format(msgspec.json.encode(page), indent=2) + b"\n")
    return EXIT_OK


async def run_spaces(args: argparse.Namespace) -> int:
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


async def run_orgs(args: argparse.Namespace) -> int:
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


async def run_demo(args: argparse.Namespace) -> int:
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


async def run_simulate(args: argparse.Namespace) -> int:
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
    err("simulator stopped")
    return EXIT_OK


# --- entry point --------------------------------------------------------------------------


def interrupt_hint(args: argparse.Namespace) -> str:
    if getattr(args, "handler", None) is run_sync:
        return "interrupted; every page read is stored: sync again to finish"
    if getattr(args, "handler", None) is run_export:
        if args.resume:
            return "interrupted; rerun the same command with --resume to continue"
        if args.output != "-":
            return (
                "interrupted; the destination was left untouched "
                "(use --resume to make long exports resumable)"
            )
    return "interrupted"
