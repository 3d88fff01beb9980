"""Tests of the Unpod API simulator (unpod_async.testing), over real loopback HTTP."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import aiohttp
import msgspec
import pytest

from unpod_async.testing import FAULT_KINDS, Fault, RequestRecord, Simulator, serve

from .helpers import docs as decoded
from .helpers import get_json, tasks_url

# --------------------------------------------------------------------------- paging


async def test_paging_count_and_order(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=120, legacy_shapes=True) as sim:
        seen: list[dict[str, Any]] = []
        for page, expected in ((1, 50), (2, 50), (3, 20)):
            status, body = await get_json(session, tasks_url(sim), page=page, page_size=50)
            assert status == 200
            assert body["count"] == 120
            assert body["status_code"] == 200
            assert body["message"] == "Tasks Fetched Successfully"
            assert len(body["data"]) == expected
            seen.extend(body["data"])
        assert [t["task_id"] for t in seen] == sim.task_ids()
        ids = [t["_id"] for t in seen]
        assert all(len(i) == 24 and int(i, 16) >= 0 and i == i.lower() for i in ids)
        assert all(a > b for a, b in itertools.pairwise(ids))  # newest first
        created = [t["created"] for t in seen]
        assert all(a > b for a, b in itertools.pairwise(created))
        assert all(c.endswith("Z") for c in created)
        assert len({t["task_id"] for t in seen}) == 120


async def test_past_end_default_size_all_and_cap(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=120) as sim:
        status, body = await get_json(session, tasks_url(sim), page=4, page_size=50)
        assert (status, body["count"], body["data"]) == (200, 120, [])
        _, body = await get_json(session, tasks_url(sim))  # page 1, server default size 50
        assert len(body["data"]) == 50
        _, body = await get_json(session, tasks_url(sim), page=1, page_size=0)
        assert len(body["data"]) == 120
        assert body["count"] == 120
        sim.default_page_size = 7
        _, body = await get_json(session, tasks_url(sim), page=2)
        assert [t["task_id"] for t in body["data"]] == sim.task_ids()[7:14]

    async with serve(tasks=120, page_size_cap=30) as sim:
        _, body = await get_json(session, tasks_url(sim), page=1, page_size=100)
        assert len(body["data"]) == 30
        _, body = await get_json(session, tasks_url(sim), page=2, page_size=100)
        assert [t["task_id"] for t in body["data"]] == sim.task_ids()[30:60]
        _, body = await get_json(session, tasks_url(sim), page=1, page_size=0)
        assert len(body["data"]) == 30
        assert body["count"] == 120


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"page": -1}, {"page": "abc"}, {"page": 1, "page_size": -5}, {"page_size": "x"}],
)
async def test_bad_page_params_fail_with_206(
    session: aiohttp.ClientSession, params: dict[str, Any]
) -> None:
    async with serve(tasks=10, legacy_params=True) as sim:
        status, body = await get_json(session, tasks_url(sim), **params)
        assert status == 206
        assert body["message"] == "Tasks Fetch Failed"
        assert body["status_code"] == 206
        assert body["errors"]
        assert body["data"]["errors"] == body["errors"]


# ---------------------------------------------------------------- auth and routes


async def test_auth(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=5) as sim, aiohttp.ClientSession() as anon:
        async with anon.get(tasks_url(sim)) as resp:
            assert resp.status == 401
            assert resp.content_type == "application/json"
            assert await resp.json() == {
                "message": "Authentication credentials were not provided.",
                "status_code": 401,
            }
        for header in ("Token wrong", "Bearer test-token"):
            async with anon.get(tasks_url(sim), headers={"Authorization": header}) as resp:
                assert resp.status == 401
                body = await resp.json()
                assert body["status_code"] == 401
        async with anon.get(tasks_url(sim), headers={"Authorization": "Token wrong"}) as resp:
            assert (await resp.json())["message"] == "Invalid token."
        url = f"{sim.base_url}/api/v2/platform/organizations/"
        async with anon.get(url) as resp:
            assert resp.status == 401
        status, _ = await get_json(session, url)
        assert status == 200
    async with serve(tasks=5, token="other") as sim:
        status, body = await get_json(session, tasks_url(sim))
        assert (status, body["message"]) == (401, "Invalid token.")


async def test_invalid_space_and_space_id(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=5, legacy_params=True) as sim:
        status, body = await get_json(session, tasks_url(sim, "nope"))
        assert status == 206
        assert body == {"status_code": 206, "message": "Invalid Space Token", "data": {}}
        status, body = await get_json(session, tasks_url(sim), page=1, space_id=99)
        assert status == 400
        assert body["message"] == "space_id must not be sent"
        assert sim.requests[-1].query["space_id"] == "99"


async def test_spaces_and_organizations(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=5, space_token="sp-1", org_handle="acme", legacy_shapes=True) as sim:
        base = f"{sim.base_url}/api/v2/platform/"
        status, body = await get_json(session, base + "organizations/")
        assert status == 200
        assert body["data"][0]["domain_handle"] == "acme"
        assert {"name", "token", "domain", "domain_handle"} <= set(body["data"][0])

        async with session.get(base + "spaces/") as resp:
            assert resp.status == 400
            assert (await resp.json())["message"] == "Org-Handle header is required"
        async with session.get(base + "spaces/", headers={"Org-Handle": "other"}) as resp:
            assert resp.status == 404
            assert (await resp.json()) == {"message": "Organization not found"}
        async with session.get(base + "spaces/", headers={"Org-Handle": "acme"}) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["status_code"] == 200
        assert [s["token"] for s in body["data"]] == ["sp-1"]
        assert body["data"][0]["name"] == "Demo space"

        for path in ("nothing/", "spaces/sp-1/tasks", "spaces//tasks/", "organizations"):
            status, body = await get_json(session, base + path)
            assert (status, body) == (404, {"message": "Not found."})
        async with session.get(f"{sim.base_url}/elsewhere") as resp:
            assert resp.status == 404
        async with session.post(tasks_url(sim)) as resp:
            assert resp.status == 405


# ------------------------------------------------------------------------- filters


async def test_filters(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=400, seed=3, legacy_shapes=True, legacy_filters=True) as sim:
        tasks = decoded(sim)

        async def fetch_all(**params: Any) -> tuple[int, list[str]]:
            status, body = await get_json(session, tasks_url(sim), page_size=0, **params)
            assert status == 200
            return body["count"], [t["task_id"] for t in body["data"]]

        def expect(pred: Any) -> list[str]:
            return [t["task_id"] for t in tasks if pred(t)]

        want = expect(lambda t: t["status"] in ("failed", "hold"))
        assert 0 < len(want) < 400
        assert await fetch_all(status="failed,hold") == (len(want), want)

        want = expect(lambda t: t["output"].get("call_type") == "inbound")
        assert 0 < len(want) < 400
        assert await fetch_all(call_type="inbound") == (len(want), want)

        def epoch(iso: str) -> int:
            return int(time.mktime(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)

        lo, hi = epoch(tasks[300]["created"]), epoch(tasks[100]["created"])
        want = expect(lambda t: lo <= epoch(t["created"]) <= hi)
        assert len(want) == 201  # inclusive on both ends
        assert await fetch_all(from_ts=lo, to_ts=hi) == (201, want)

        name = tasks[10]["input"]["name"]
        want = expect(lambda t: name.lower() in t["input"]["name"].lower())
        assert await fetch_all(search=name.upper()) == (len(want), want)
        tid = tasks[42]["task_id"]
        assert await fetch_all(search=tid[5:20]) == (1, [tid])

        # filters combine with paging; count is the filtered total
        want = expect(lambda t: t["status"] == "completed")
        status, body = await get_json(
            session, tasks_url(sim), status="completed", page=2, page_size=10
        )
        assert body["count"] == len(want)
        assert [t["task_id"] for t in body["data"]] == want[10:20]

        status, body = await get_json(session, tasks_url(sim), from_ts="yesterday")
        assert (status, body["message"]) == (206, "Tasks Fetch Failed")


# -------------------------------------------------------------------------- faults


async def test_fault_status_and_206_and_429(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=30) as sim:
        url = tasks_url(sim)
        sim.faults = [
            Fault("status"),
            Fault("status", status=502),
            Fault("206"),
            Fault("206", message="Invalid Space Token"),
            Fault("429"),
            Fault("429", retry_after=None),
            Fault("429", retry_after="7"),
        ]
        async with session.get(url) as resp:
            assert resp.status == 503
            assert resp.content_type == "text/html"
            assert await resp.text() == "<html><body><h1>503 Service Unavailable</h1></body></html>"
        async with session.get(url) as resp:
            assert resp.status == 502
            assert "502 Bad Gateway" in await resp.text()
        status, body = await get_json(session, url)
        assert status == 206
        assert body == {
            "status_code": 206,
            "message": "Tasks Fetch Failed",
            "data": {"errors": "database timeout"},
            "errors": "database timeout",
        }
        status, body = await get_json(session, url)
        assert (status, body) == (
            206,
            {"status_code": 206, "message": "Invalid Space Token", "data": {}},
        )
        for retry_after in ("0.05", None, "7"):
            async with session.get(url) as resp:
                assert resp.status == 429
                assert resp.headers.get("Retry-After") == retry_after
                assert await resp.json() == {
                    "message": "Request was throttled.",
                    "status_code": 429,
                }
        assert sim.faults == []
        status, body = await get_json(session, url)
        assert status == 200
        assert [r.status for r in sim.requests] == [503, 502, 206, 206, 429, 429, 429, 200]
        assert [r.fault for r in sim.requests][:2] == ["status", "status"]


async def test_fault_page_matching_and_times(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=30) as sim:
        url = tasks_url(sim)
        sim.faults.append(Fault("status", page=2, times=2))
        statuses = []
        for page in (1, 2, 3, 2, 2):
            async with session.get(url, params={"page": page, "page_size": 5}) as resp:
                statuses.append(resp.status)
        assert statuses == [200, 503, 200, 503, 200]
        assert sim.faults == []
        assert [r.page for r in sim.requests] == [1, 2, 3, 2, 2]
        sim.faults.append(Fault("status", page=9, times=3))
        status, _ = await get_json(session, url, page=1)
        assert status == 200
        assert sim.faults == [Fault("status", page=9, times=3)]
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("nope")
    with pytest.raises(ValueError, match="unknown fault kind"):
        Simulator(1, fault_kinds=("503", "bogus"))
    assert {"reset", "stall", "slow_body", "empty"} <= FAULT_KINDS


async def test_fault_reset_is_a_connection_error(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=30, reset_includes_auto_retry=True) as sim:
        url = tasks_url(sim)
        sim.faults.append(Fault("reset", page=1))
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(url, params={"page": 1}) as resp:
                await resp.read()
        # aiohttp retried once by itself; both attempts were reset.
        assert [(r.status, r.fault) for r in sim.requests] == [(0, "reset"), (0, "reset")]
        status, _ = await get_json(session, url, page=1)
        assert status == 200

        # concurrent resets each surface as an error
        sim.faults += [Fault("reset", page=2), Fault("reset", page=3)]

        async def fetch(page: int) -> int:
            async with session.get(url, params={"page": page}) as resp:
                await resp.read()
                return resp.status

        results = await asyncio.gather(fetch(2), fetch(3), fetch(4), return_exceptions=True)
        assert isinstance(results[0], aiohttp.ClientConnectionError)
        assert isinstance(results[1], aiohttp.ClientConnectionError)
        assert results[2] == 200

        sim.reset_includes_auto_retry = False
        sim.faults.append(Fault("reset"))
        status, _ = await get_json(session, url, page=1)
        assert status == 200  # absorbed by aiohttp's transparent retry
        assert [r.status for r in sim.requests[-2:]] == [0, 200]


async def test_fault_body_level(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=30) as sim:
        url = tasks_url(sim)
        async with session.get(url, params={"page": 1, "page_size": 10}) as resp:
            full = await resp.read()

        sim.faults.append(Fault("reset_mid_body"))
        async with session.get(url, params={"page": 1, "page_size": 10}) as resp:
            assert resp.status == 200
            assert resp.content_length == len(full)
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()

        sim.faults.append(Fault("truncated"))
        async with session.get(url, params={"page": 1, "page_size": 10}) as resp:
            assert resp.status == 200
            body = await resp.read()
            assert resp.content_length == len(body) == len(full) // 2
        assert full.startswith(body)
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(body)

        sim.faults.append(Fault("malformed"))
        async with session.get(url) as resp:
            assert (resp.status, resp.content_type) == (200, "application/json")
            assert await resp.read() == b'{"count": 3, "data": [ {"_id": '

        sim.faults.append(Fault("html200"))
        async with session.get(url) as resp:
            assert (resp.status, resp.content_type) == (200, "text/html")
            assert (await resp.text()).lstrip().startswith("<!DOCTYPE html>")

        sim.faults.append(Fault("empty"))
        async with session.get(url) as resp:
            assert resp.status == 200
            assert await resp.read() == b""

        async with session.get(url, params={"page": 1, "page_size": 10}) as resp:
            assert await resp.read() == full


async def test_fault_stall_and_slow_body(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=30) as sim:
        url = tasks_url(sim)
        sim.faults.append(Fault("stall", delay=2.0))
        started = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=0.2)) as resp:
                await resp.read()
        assert time.perf_counter() - started < 1.0

        sim.faults.append(Fault("stall", delay=0.1))
        started = time.perf_counter()
        status, body = await get_json(session, url, page_size=3)
        assert status == 200
        assert len(body["data"]) == 3
        assert time.perf_counter() - started >= 0.1

        sim.faults.append(Fault("slow_body", delay=0.05))
        timeout = aiohttp.ClientTimeout(total=None, sock_read=0.5)
        async with session.get(url, timeout=timeout) as resp:
            assert resp.status == 200  # headers arrive at once
            first = await resp.content.read(1)
            assert first == b"{"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(resp.read(), 0.3)
            resp.close()

        status, _ = await get_json(session, url)
        assert status == 200


async def test_fault_rate_is_seeded(session: aiohttp.ClientSession) -> None:
    async def statuses(seed: int) -> list[int]:
        async with serve(tasks=20, seed=seed, fault_rate=0.5, fault_kinds=("503", "429")) as sim:
            out = []
            for _ in range(30):
                async with session.get(tasks_url(sim)) as resp:
                    await resp.read()
                    out.append(resp.status)
            return out

    first = await statuses(5)
    assert set(first) == {200, 503, 429}
    assert await statuses(5) == first

    async with serve(tasks=20, fault_rate=1.0, fault_kinds=("206",)) as sim:
        status, body = await get_json(session, tasks_url(sim))
        assert (status, body["message"]) == (206, "Tasks Fetch Failed")
        # non-tasks routes are never faulted
        status, _ = await get_json(session, f"{sim.base_url}/api/v2/platform/organizations/")
        assert status == 200


# --------------------------------------------------------- hooks, mutation, options


async def test_latency(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=5, latency=0.1) as sim:
        started = time.perf_counter()
        status, _ = await get_json(session, tasks_url(sim))
        assert status == 200
        assert time.perf_counter() - started >= 0.1


async def test_on_request_hook_drift(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=100) as sim:
        original = sim.task_ids()
        calls: list[int] = []
        inserted: list[str] = []

        def hook(page: int, s: Simulator) -> None:
            calls.append(page)
            if page == 3:
                inserted.extend(s.insert(5))

        sim.on_request = hook
        pages = []
        for page in (1, 2, 3):
            _, body = await get_json(session, tasks_url(sim), page=page, page_size=10)
            pages.append([t["task_id"] for t in body["data"]])
            if page == 3:
                assert body["count"] == 105
        assert calls == [1, 2, 3]
        assert pages[0] == original[:10]
        assert pages[2] == original[15:25]  # shifted by the 5 inserted tasks
        assert sim.task_ids()[:5] == inserted

        async def async_hook(page: int, s: Simulator) -> None:
            await asyncio.sleep(0)
            s.delete(1)

        sim.on_request = async_hook
        _, body = await get_json(session, tasks_url(sim), page=1, page_size=10)
        assert body["count"] == 104
        assert body["data"][0]["task_id"] == inserted[1]


def test_insert_delete() -> None:
    sim = Simulator(50, seed=1, ids="_id")
    before = decoded(sim)
    new_ids = sim.insert(3)
    assert sim.task_ids()[:3] == new_ids
    assert len(sim) == 53
    after = decoded(sim)
    assert after[3:] == before
    assert after[2]["_id"] > before[0]["_id"]
    assert after[2]["created"] > before[0]["created"]
    assert after[0]["_id"] > after[1]["_id"] > after[2]["_id"]

    removed = sim.delete(2, at=10)
    assert removed == [t["task_id"] for t in after[10:12]]
    assert sim.task_ids() == [t["task_id"] for t in after[:10] + after[12:]]
    sim.delete_ids([new_ids[1], "T-unknown"])
    assert new_ids[1] not in sim.task_ids()
    assert len(sim.task_ids()) == 50
    assert sim.delete(0) == []


async def test_strip_ids_and_count_offset(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=20, strip_ids=True, count_offset=-3, ids="_id") as sim:
        _, body = await get_json(session, tasks_url(sim), page_size=0)
        assert body["count"] == 17
        assert len(body["data"]) == 20
        assert all("_id" not in t and t["task_id"].startswith("T") for t in body["data"])
        sim.count_offset = 4
        sim.strip_ids = False
        _, body = await get_json(session, tasks_url(sim), page_size=0)
        assert body["count"] == 24
        assert all("_id" in t for t in body["data"])


async def test_requests_are_recorded(session: aiohttp.ClientSession) -> None:
    async with serve(tasks=5) as sim:
        await get_json(session, tasks_url(sim), page=2, page_size=3, status="completed")
        rec = sim.requests[-1]
        assert isinstance(rec, RequestRecord)
        assert rec.method == "GET"
        assert rec.path == f"/api/v2/platform/spaces/{sim.space_token}/tasks/"
        assert rec.query == {"page": "2", "page_size": "3", "status": "completed"}
        assert rec.headers["Authorization"] == "Token test-token"
        assert (rec.status, rec.page) == (200, 2)


async def test_start_close_and_base_url(session: aiohttp.ClientSession) -> None:
    sim = Simulator(3)
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    await sim.start()
    try:
        assert sim.base_url == f"http://127.0.0.1:{sim.port}"
        status, body = await get_json(session, tasks_url(sim))
        assert (status, len(body["data"])) == (200, 3)
    finally:
        await sim.close()
    await sim.close()  # idempotent
    async with sim:  # can be restarted
        status, _ = await get_json(session, tasks_url(sim))
        assert status == 200


# ------------------------------------------------------------------------- content


def test_determinism() -> None:
    a, b = Simulator(300, seed=7), Simulator(300, seed=7)
    assert a.tasks_json() == b.tasks_json()
    assert a.insert(4) == b.insert(4)
    assert a.tasks_json() == b.tasks_json()
    assert Simulator(300, seed=8).tasks_json() != a.tasks_json()[4:]
    # content does not depend on the order in which tasks are rendered
    c = Simulator(300, seed=7)
    c.insert(4)
    lazily = [c.tasks_json()[i] for i in (100, 3, 250)]
    assert lazily == [a.tasks_json()[i] for i in (100, 3, 250)]


def test_task_shape_and_size() -> None:
    sim = Simulator(2000, seed=0, legacy_shapes=True)
    raws = sim.tasks_json()
    average = sum(map(len, raws)) / len(raws)
    assert 1800 <= average <= 3200
    tasks = [msgspec.json.decode(raw) for raw in raws]
    statuses = {t["status"] for t in tasks}
    assert statuses == {
        "pending",
        "in_progress",
        "completed",
        "hold",
        "failed",
        "partially_completed",
    }
    assert {t["run_mode"] for t in tasks} == {"prod", "test", "dev", "prefect", "default"}
    assert any(t["output"] == {} and t["status"] == "pending" for t in tasks)
    assert any(t["output"] == {} and t["status"] == "in_progress" for t in tasks)
    assert all(t["output"] for t in tasks if t["status"] == "completed")
    for t in tasks[:200]:
        assert len(t["task_id"]) == len(t["run_id"]) == 33
        assert (t["task_id"][0], t["run_id"][0]) == ("T", "R")
        assert t["scheduled_timestamp"] is None
        assert {"space_id", "user", "user_org_id", "collection_ref", "ref_id"} <= set(t)
        if t["output"]:
            turns = t["output"]["transcript"]
            assert 4 <= len(turns) <= 16
            assert [x["role"] for x in turns] == ["agent", "user"] * (len(turns) // 2) + [
                "agent"
            ] * (len(turns) % 2)
            assert t["output"]["call_type"] in ("inbound", "outbound")
            assert t["output"]["post_call_data"]["outcome"] in (
                "interested",
                "not_interested",
                "callback",
                "voicemail",
            )
    blob = b"".join(raws).decode()
    for needle in ("José", "Zoë", "北京", "👍", "\\n", '\\"', ","):
        assert needle in blob


def test_generation_is_fast() -> None:
    started = time.perf_counter()
    sim = Simulator(20_000)
    assert len(sim) == 20_000
    assert time.perf_counter() - started < 2.0
