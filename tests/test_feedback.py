"""What the library tells a caller while it works and when it fails: the retry notices and
request lines on its log records, the bytes of an export's progress, the end-confirming page,
and error messages that say each thing once (the command line builds its display and its
messages from these)."""

from __future__ import annotations

import errno
import io
import logging
from pathlib import Path

import pytest

from unpod_async import APIConnectionError, ExportError, ExportProgress, ServerError
from unpod_async.testing import Fault, Simulator, serve

from .helpers import ORG, SPACE, TOKEN, client_for, free_port, make_client


async def test_a_status_without_a_message_is_said_once(sim: Simulator) -> None:
    sim.faults.append(Fault("status", page=1, status=503, times=10))
    async with make_client(sim, max_retries=0) as client:
        with pytest.raises(ServerError) as info:
            await client.get_tasks(SPACE)
    text = str(info.value)
    assert text.startswith("HTTP 503 without a JSON message (page 1, ")
    assert text.count("HTTP 503") == 1


async def test_retry_records_carry_a_notice(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.faults.append(Fault("status", page=2, status=500))
    caplog.set_level(logging.INFO, logger="unpod_async")
    async with make_client(sim, max_retries=3) as client:
        await client.get_tasks(SPACE, page=2)
    [record] = [r for r in caplog.records if hasattr(r, "unpod_retry")]
    notice = record.unpod_retry
    assert (notice.page, notice.attempt, notice.attempts) == (2, 2, 4)
    assert notice.wait >= 0
    assert notice.reason == "HTTP 500 without a JSON message"
    assert record.getMessage().count("HTTP 500") == 1


async def test_connection_refused_says_so() -> None:
    port = free_port()
    async with client_for(f"http://127.0.0.1:{port}", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_tasks(SPACE)
    assert info.value.message == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert info.value.page == 1


async def test_each_request_is_logged_at_debug_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cret-Token-never-in-a-log"
    async with serve(tasks=250, token=secret, org_handle=ORG, space_token=SPACE) as sim:
        sim.faults.append(Fault("status", page=2, status=503))
        caplog.set_level(logging.DEBUG, logger="unpod_async")
        async with client_for(sim.base_url, token=secret, max_retries=2) as client:
            await client.get_all_tasks(SPACE, page_size=100)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    requests = [line for line in lines if line.startswith("GET ")]
    assert any(line.startswith("GET page 1 (attempt 1 of 3): HTTP 200, ") for line in requests)
    assert any(line.startswith("GET page 2 (attempt 1 of 3): HTTP 503, ") for line in requests)
    assert any(line.startswith("GET page 2 (attempt 2 of 3): HTTP 200, ") for line in requests)
    assert all(" bytes in " in line and "page_size=100" in line for line in requests)
    assert not any(secret in r.getMessage() for r in caplog.records)


async def test_export_progress_counts_bytes_and_the_end_page(tmp_path: Path) -> None:
    seen: list[ExportProgress] = []
    out = tmp_path / "t.jsonl"
    async with (
        serve(tasks=300, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim,
        make_client(sim) as client,
    ):
        stats = await client.export_tasks(SPACE, out, page_size=100, progress=seen.append)
    sizes = [p.bytes_written for p in seen]
    assert sizes == sorted(sizes)
    assert sizes[-1] == stats.bytes == out.stat().st_size
    # 300 tasks in pages of 100: the fourth page, empty, confirms that the third was the last.
    assert (stats.pages, stats.empty_pages) == (4, 1)
    assert seen[-1].pages_done == seen[-1].pages_planned == 4


async def test_a_closed_pipe_is_an_export_error_with_its_errno(sim: Simulator) -> None:
    class Closed(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    async with make_client(sim) as client:
        with pytest.raises(ExportError) as info:
            await client.export_tasks(SPACE, Closed())  # type: ignore[arg-type]
    assert info.value.errno == errno.EPIPE
    assert info.value.path is None


async def test_an_unwritable_directory_names_the_destination(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unpod_async import _atomic

    def refuse(path: Path, *, exclusive: bool = False) -> object:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(_atomic, "create_private", refuse)
    out = tmp_path / "tasks.jsonl"
    async with make_client(sim) as client:
        with pytest.raises(ExportError) as info:
            await client.export_tasks(SPACE, out)
    assert str(info.value) == f"cannot create {out}: Permission denied (in {tmp_path})"
    assert (info.value.path, info.value.errno) == (str(out), errno.EACCES)
    assert ".unpod-" not in str(info.value)


@pytest.mark.parametrize(("host", "url_host"), [("0.0.0.0", "127.0.0.1"), ("127.0.0.1", None)])
async def test_a_simulator_on_every_interface_gives_a_loopback_url(
    host: str, url_host: str | None
) -> None:
    async with serve(tasks=1, host=host) as sim:
        assert sim.base_url == f"http://{url_host or host}:{sim.port}"
