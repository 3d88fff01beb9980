"""Filters that mean what they say, against the real-server simulator (and request shape)."""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aioresponses import aioresponses

from unpod_async import BusinessLogicError, ExportError, TaskFilter, UnpodClient
from unpod_async._dates import epoch_of
from unpod_async._params import literal_pattern
from unpod_async.testing import Simulator, serve
from unpod_async.testing._data import OUTCOME_LABELS, phone_of, thread_id_of

from .helpers import ORG, SPACE, TOKEN, cli_env, docs, ids, make_client, run_here

ANY_URL = re.compile(r"^https://unpod\.ai/.*$")


def label(doc: dict[str, Any]) -> str | None:
    summary = (doc["output"].get("post_call_data") or {}).get("summary")
    return summary.get("status") if isinstance(summary, dict) else None


# --------------------------------------------------------------------------- TaskFilter


def test_what_each_filter_sends() -> None:
    where = TaskFilter(
        status="completed",
        outcome="Interested, Call Back",
        call_type="inboundPhoneCall",
        created_after=datetime(2026, 1, 1, tzinfo=timezone.utc),
        created_before=1_767_300_000.9,
        search="+1555 (0100)",
        thread_id="th_1",
        user_id=17,
    )
    assert where.params() == [
        ("status", "Interested,Call Back"),
        ("call_type", "inboundPhoneCall"),
        ("from_ts", "1767225600"),
        ("to_ts", "1767300000"),
        ("search", r"\+1555 \(0100\)"),
        ("thread_id", "th_1"),
        ("user_id", "17"),
    ]
    assert TaskFilter(status=["completed", "failed"]).params() == []  # client-side only
    assert TaskFilter(search_pattern="^Zo").params() == [("search", "^Zo")]
    assert TaskFilter(call_type="outbound").params() == [("call_type", "outbound")]
    assert TaskFilter().params() == []
    for where in (TaskFilter(status="x"), TaskFilter(created_after=0), TaskFilter(outcome="y")):
        assert "space_id" not in where.query()


def test_bad_filters_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        TaskFilter(search="a", search_pattern="b")
    with pytest.raises(ValueError, match="call_type"):
        TaskFilter(call_type="  ")
    with pytest.raises(TypeError, match="search"):
        TaskFilter(search=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outcome"):
        TaskFilter(outcome=",")
    with pytest.raises(ValueError, match="timezone"):
        TaskFilter(created_before=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "text", ["+1555", "a.b", "(x)", "[y]", "a|b", "^$", "x*+?", "{2}", "back\\slash", "José & co"]
)
def test_search_is_literal_in_python_regex(text: str) -> None:
    pattern = literal_pattern(text)
    assert re.fullmatch(pattern, text)
    assert re.search(pattern, f"...{text}...", re.IGNORECASE)
    assert not re.fullmatch(pattern, text + "!")


def test_keep_checks_status_and_created() -> None:
    where = TaskFilter(status="completed", created_after=100, created_before=200)
    statuses = ["completed", "completed", "failed", "completed", None, "completed"]
    created = [
        "1970-01-01T00:01:40",  # 100: inclusive
        "1970-01-01T00:03:20Z",  # 200: inclusive
        "1970-01-01T00:02:00",
        "1970-01-01T00:03:21",  # 201: out
        "1970-01-01T00:02:00",
        "not a date",  # unreadable: out while a bound is set
    ]
    assert where.keep(statuses, created) == [0, 1]
    assert TaskFilter(status="failed").keep(statuses, created) == [2]
    assert TaskFilter(outcome="x").keep(statuses, created) is None  # nothing to check here


# --------------------------------------------------------------------------- request shape


async def test_status_is_never_sent_and_outcome_is(mocked: aioresponses) -> None:
    mocked.get(ANY_URL, payload={"count": 0, "data": []}, repeat=True)
    async with UnpodClient(TOKEN, ORG) as client:
        await client.get_tasks(SPACE, status="completed")
        await client.get_tasks(SPACE, outcome=["Call Back"], search="+1555", user_id=3)
        await client.get_tasks(SPACE, search_pattern="^\\+1", thread_id="th_9")
    sent = [url.query for (_, url), calls in mocked.requests.items() for _ in calls]
    assert [dict(q) for q in sent] == [
        {"page": "1", "page_size": "20"},
        {
            "page": "1",
            "page_size": "20",
            "status": "Call Back",
            "search": "\\+1555",
            "user_id": "3",
        },
        {"page": "1", "page_size": "20", "search": "^\\+1", "thread_id": "th_9"},
    ]


# --------------------------------------------------------------------------- behaviour


async def test_status_filters_the_tasks_own_status_client_side(
    sim: Simulator, client: UnpodClient
) -> None:
    want = [d["task_id"] for d in docs(sim) if d["status"] in ("failed", "hold")]
    assert 0 < len(want) < len(sim)
    got = await client.get_all_tasks(SPACE, status="failed,hold", page_size=100)
    assert ids(got) == want
    streamed = [t async for t in client.iter_tasks(SPACE, status=["failed", "hold"])]
    assert ids(streamed) == want
    assert all("status" not in r.query for r in sim.requests)


async def test_get_tasks_filters_data_and_keeps_count(sim: Simulator, client: UnpodClient) -> None:
    page = await client.get_tasks(SPACE, page=2, page_size=50, status="completed")
    expected = [d for d in docs(sim)[50:100] if d["status"] == "completed"]
    assert [t.task_id for t in page.data] == [d["task_id"] for d in expected]
    assert page.count == len(sim)  # the server's count, for what the server filtered


async def test_outcome_is_the_servers_status_filter(sim: Simulator, client: UnpodClient) -> None:
    everything = docs(sim)
    want = [d["task_id"] for d in everything if label(d) in ("Call Back", "Not Interested")]
    assert want
    got = await client.get_all_tasks(SPACE, outcome="Call Back,Not Interested", page_size=100)
    assert ids(got) == want
    assert sim.requests[-1].query["status"] == "Call Back,Not Interested"
    assert {t.outcome for t in got} == {"Call Back", "Not Interested"}
    # The task's own status means nothing to the server's filter.
    assert await client.get_all_tasks(SPACE, outcome="completed") == []
    assert set(OUTCOME_LABELS[1:]) >= {t.outcome for t in got}


async def test_call_type_matches_the_provider_variants(sim: Simulator, client: UnpodClient) -> None:
    everything = docs(sim)

    def kind(d: dict[str, Any]) -> str | None:
        return d["output"].get("call_type") or d["output"].get("type")

    inbound = await client.get_all_tasks(SPACE, call_type="inbound", page_size=200)
    want = [d["task_id"] for d in everything if kind(d) in ("inbound", "inboundPhoneCall")]
    assert ids(inbound) == want
    assert {kind(d) for d in everything if d["task_id"] in set(want)} == {
        "inbound",
        "inboundPhoneCall",
    }
    exact = await client.get_all_tasks(SPACE, call_type="outboundPhoneCall", page_size=200)
    assert ids(exact) == [d["task_id"] for d in everything if kind(d) == "outboundPhoneCall"]


async def test_search_is_literal_text(sim: Simulator, client: UnpodClient) -> None:
    everything = docs(sim)
    phone = everything[3]["input"]["phone"]
    assert phone.startswith("+1555")
    got = await client.get_all_tasks(SPACE, search=phone, page_size=100)  # no 206
    assert ids(got) == [d["task_id"] for d in everything if d["input"]["phone"] == phone]
    every = await client.get_all_tasks(SPACE, search="+1555", page_size=500)
    assert len(every) == len(sim)
    name = everything[7]["input"]["name"].upper()
    got = await client.get_all_tasks(SPACE, search=name, page_size=500)
    assert everything[7]["task_id"] in ids(got)
    assert all(name.lower() in t.input["name"].lower() for t in got)
    assert await client.get_all_tasks(SPACE, search="a.b|c") == []


async def test_search_pattern_is_a_regex(sim: Simulator) -> None:
    everything = docs(sim)
    async with make_client(sim, max_retries=1) as client:
        got = await client.get_all_tasks(SPACE, search_pattern="^zo", page_size=500)
        assert ids(got) == [d["task_id"] for d in everything if d["input"]["name"].startswith("Zo")]
        with pytest.raises(BusinessLogicError, match="Tasks Fetch Failed"):
            await client.get_all_tasks(SPACE, search_pattern="+1555")


async def test_thread_id_and_user_id(sim: Simulator, client: UnpodClient) -> None:
    everything = docs(sim)
    thread = next(d["thread_id"] for d in everything if d["thread_id"])
    serials = range(len(sim) - 1, -1, -1)  # server order: newest (highest serial) first
    assert [thread_id_of(sim.seed, n) for n in serials] == [d["thread_id"] for d in everything]
    got = await client.get_all_tasks(SPACE, thread_id=thread)
    assert ids(got) == [d["task_id"] for d in everything if d["thread_id"] == thread]
    assert 1 <= len(got) <= 3
    got = await client.get_all_tasks(SPACE, user_id=23, page_size=500)
    assert ids(got) == [d["task_id"] for d in everything if d["user"] == 23]
    assert {t.user_info.full_name for t in got if t.user_info} == {"李 Wei"}


async def test_created_bounds_are_checked_again_on_each_task() -> None:
    # A server whose local time is an hour behind UTC reads from_ts/to_ts an hour early: it
    # sends the hour before the range too (and misses its last hour, which no client can get
    # back). The client checks each task's created (UTC): none outside the range comes out.
    async with serve(1000, token=TOKEN, space_token=SPACE, utc_offset=-3600) as sim:
        created = {d["task_id"]: epoch_of(d["created"]) or 0.0 for d in docs(sim)}
        low, high = 1_767_225_600 + 400 * 60, 1_767_225_600 + 700 * 60
        async with make_client(sim) as client:
            got = await client.get_all_tasks(
                SPACE, created_after=low, created_before=high, page_size=100
            )
            page = await client.get_tasks(SPACE, page_size=1000, created_after=low)
    assert sim.requests[-1].query["from_ts"] == str(low)
    served = [i for i, t in created.items() if low - 3600 <= t <= high - 3600]
    assert ids(got) == [i for i in served if low <= created[i] <= high]
    assert len(got) == len(served) - 60  # the hour the server sent too early is gone
    assert page.count == sum(t >= low - 3600 for t in created.values())
    assert len(page.data) == page.count - 60
    assert all(low <= created[t.task_id or ""] for t in page.data)

    # A server on UTC: what it sends is exactly the range, and nothing is dropped.
    async with serve(1000, token=TOKEN, space_token=SPACE) as sim, make_client(sim) as client:
        got = await client.get_all_tasks(SPACE, created_after=low, created_before=high)
    assert ids(got) == [i for i, t in created.items() if low <= t <= high]


async def test_the_filter_applies_after_dedupe_in_a_drifting_space(sim: Simulator) -> None:
    # Inserts while paging make the pager read tasks twice; it drops the repeats by key, and
    # only then is the status checked: nothing is repeated, nothing matching is lost.
    original = {d["task_id"]: d["status"] for d in docs(sim)}

    def hook(page: int, s: Simulator) -> None:
        if page in (3, 6):
            s.insert(7)

    sim.on_request = hook
    async with make_client(sim, concurrency=2) as client:
        got = await client.get_all_tasks(SPACE, status="completed", page_size=50)
    sim.on_request = None
    statuses = {d["task_id"]: d["status"] for d in docs(sim)}
    assert len(set(ids(got))) == len(got)
    assert all(statuses[t.task_id or ""] == "completed" for t in got)
    assert {i for i, s in original.items() if s == "completed"} <= set(ids(got))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "parquet-resumable"])
async def test_every_export_format_applies_the_client_side_filter(
    sim: Simulator, client: UnpodClient, tmp_path: Path, fmt: str
) -> None:
    want = [d["task_id"] for d in docs(sim) if d["status"] == "completed"]
    out = tmp_path / f"out.{fmt.split('-')[0]}"
    stats = await client.export_tasks(
        SPACE,
        out,
        format=fmt.split("-")[0],  # type: ignore[arg-type]
        resume=fmt.endswith("resumable"),
        status="completed",
        page_size=100,
    )
    if fmt == "jsonl":
        got = [msgspec.json.decode(line)["task_id"] for line in out.read_bytes().splitlines()]
    elif fmt == "csv":
        import csv

        with out.open(encoding="utf-8-sig", newline="") as f:
            got = [row["task_id"] for row in csv.DictReader(f)]
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        got = pq.read_table(out).column("task_id").to_pylist()
    assert got == want
    assert stats.tasks == len(want)  # what was written, not what the server sent


async def test_export_to_a_stream_is_filtered_and_counted(
    sim: Simulator, client: UnpodClient
) -> None:
    seen: list[int] = []
    out = io.BytesIO()
    stats = await client.export_tasks(
        SPACE, out, status="pending", progress=lambda p: seen.append(p.tasks_written)
    )
    lines = out.getvalue().splitlines()
    assert {msgspec.json.decode(line)["status"] for line in lines} == {"pending"}
    assert stats.tasks == len(lines) == seen[-1]


async def test_a_resumed_export_with_other_filters_starts_afresh(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    from unpod_async.testing import Fault

    out = tmp_path / "t.jsonl"
    sim.faults.append(Fault("206", page=4, message="Invalid Space Token"))
    with pytest.raises(BusinessLogicError):
        await client.export_tasks(SPACE, out, page_size=50, resume=True, status="completed")
    # Another client-side filter is another export: its checkpoint is not trusted.
    with pytest.raises(ExportError, match="belongs to a different export"):
        await client.export_tasks(SPACE, out, page_size=50, resume=True, status="failed")
    stats = await client.export_tasks(SPACE, out, page_size=50, resume=True, status="completed")
    assert stats.resumed_pages == 3
    lines = out.read_bytes().splitlines()
    assert [msgspec.json.decode(line)["task_id"] for line in lines] == [
        d["task_id"] for d in docs(sim) if d["status"] == "completed"
    ]
    assert stats.tasks == len(lines)


def test_phone_helper_matches_the_documents() -> None:
    sim = Simulator(20)
    for serial, doc in zip(range(19, -1, -1), docs(sim), strict=True):
        assert doc["input"]["phone"] == phone_of(sim.seed, serial)


# --------------------------------------------------------------------------- command line


async def test_cli_filters(sim: Simulator, tmp_path: Path) -> None:
    everything = docs(sim)
    out = tmp_path / "some.jsonl"
    code, _, err = await run_here(
        "tasks", "export", SPACE, "-o", str(out), "--status", "completed", "--status", "hold",
        "--outcome", "Interested", "--call-type", "outbound", "--search", "+1555",
        "--user-id", "17", env=cli_env(sim),
    )  # fmt: skip
    assert code == 0, err
    got = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    want = [
        d["task_id"]
        for d in everything
        if d["status"] in ("completed", "hold")
        and label(d) == "Interested"
        and d["output"].get("call_type") == "outbound"
        and d["user"] == 17
    ]
    assert [t["task_id"] for t in got] == want
    assert want
    query = sim.requests[-1].query
    assert query["status"] == "Interested"
    assert query["search"] == "\\+1555"
    assert query["user_id"] == "17"
    assert f"exported {len(want)} task" in err

    code, _, err = await run_here(
        "tasks", "get", SPACE, "--search", "x", "--search-pattern", "y", env=cli_env(sim)
    )
    assert code == 2
    assert "not allowed with" in err
