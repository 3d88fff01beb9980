"""The simulator in its default, real-server mode, over real loopback HTTP."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import aiohttp
import pytest

from unpod_async import BusinessLogicError
from unpod_async.testing import Simulator, serve
from unpod_async.testing._data import OUTCOME_LABELS

from .helpers import ORG, SPACE, TOKEN, docs, make_client, tasks_url
from .helpers import get_json as get

ZONELESS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?")


async def all_ids(session: aiohttp.ClientSession, sim: Simulator, **params: Any) -> list[str]:
    status, body = await get(session, tasks_url(sim), page_size=0, **params)
    assert status == 200, body
    assert body["count"] == len(body["data"])
    return [t["task_id"] for t in body["data"]]


# --------------------------------------------------------------------------- task shapes


def test_real_shapes() -> None:
    tasks = docs(Simulator(2000, seed=0))
    response_model = {
        "space_id", "thread_id", "user", "user_org_id", "user_info", "run_id", "task_id",
        "collection_ref", "execution_type", "task", "input", "output", "attachments", "ref_id",
        "assignee", "run_mode", "status", "created", "modified",
    }  # fmt: skip
    for t in tasks:
        assert response_model <= set(t) <= response_model | {"id", "_id"}
        assert not ("id" in t and "_id" in t)
        assert set(t["user_info"]) == {"id", "email", "full_name", "user_token", "location"}
        assert t["user"] == t["user_info"]["id"]
        assert ZONELESS.fullmatch(t["created"]), t["created"]
        assert ZONELESS.fullmatch(t["modified"]), t["modified"]
        assert {"name", "phone"} <= set(t["input"])
    ids = Counter("id" if "id" in t else "_id" if "_id" in t else "none" for t in tasks)
    assert set(ids) == {"id", "_id", "none"}
    assert any(t["thread_id"] is None for t in tasks)
    assert len({t["thread_id"] for t in tasks}) > 500
    outputs = [t["output"] for t in tasks]
    assert any(o == {} for o in outputs)
    native = [o for o in outputs if "call_id" in o]
    provider = [o for o in outputs if "type" in o]
    assert native
    assert provider
    for o in provider:
        assert isinstance(o["transcript"], str)
        assert o["type"] in ("outboundPhoneCall", "inboundPhoneCall")
        assert {"id", "summary", "status"} <= set(o)
    for o in native:
        assert {
            "call_id", "customer", "contact_number", "call_end_reason", "recording_url",
            "transcript", "start_time", "end_time", "assistant_number", "call_summary",
            "duration", "cost", "call_type", "post_call_data", "metadata", "error", "notes",
            "status_update",
        } == set(o)  # fmt: skip
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", o["start_time"])
        for turn in o["transcript"] or []:
            assert set(turn) == {"role", "content", "user_id", "timestamp"}
            assert turn["role"] in ("assistant", "user")
    assert any(o["transcript"] is None for o in native)
    assert any(isinstance(o["duration"], str) for o in native)
    summaries = [o["post_call_data"]["summary"] for o in native if o["post_call_data"]]
    objects = [s for s in summaries if isinstance(s, dict)]
    assert set(objects[0]) == {
        "status", "summary", "name", "contact", "callback_datetime", "hours_from_now"
    }  # fmt: skip
    assert {s["status"] for s in objects} == set(OUTCOME_LABELS[1:])
    assert any(isinstance(s, str) for s in summaries)  # the docs' form too
    size = sum(map(len, Simulator(2000).tasks_json())) / 2000
    assert 1800 <= size <= 3200


def test_ids_option_and_strip_ids() -> None:
    for style, present in (("id", {"id"}), ("_id", {"_id"}), ("none", set())):
        tasks = docs(Simulator(50, ids=style))
        assert all({"id", "_id"} & set(t) == present for t in tasks)
    sim = Simulator(50, strip_ids=True)
    assert all("id" not in t and "_id" not in t for t in docs(sim))
    with pytest.raises(ValueError, match="ids must be one of"):
        Simulator(5, ids="uuid")


def test_both_shapes_share_identity_and_dates() -> None:
    real, legacy = Simulator(100, seed=4), Simulator(100, seed=4, legacy_shapes=True)
    assert real.task_ids() == legacy.task_ids()
    for a, b in zip(docs(real), docs(legacy), strict=True):
        assert a["status"] == b["status"]
        assert a["created"] + "Z" == b["created"]
        assert a["input"]["name"] == b["input"]["name"]


# --------------------------------------------------------------------------- filters


async def test_status_is_the_outcome_label(session: aiohttp.ClientSession) -> None:
    async with serve(400, seed=2) as sim:
        tasks = docs(sim)

        def labelled(*labels: str) -> list[str]:
            out = []
            for t in tasks:
                summary = (t["output"].get("post_call_data") or {}).get("summary")
                if isinstance(summary, dict) and summary["status"] in labels:
                    out.append(t["task_id"])
            return out

        want = labelled("Call Back", "Interested")
        assert want
        assert await all_ids(session, sim, status="Call Back,Interested") == want
        url = tasks_url(sim) + "?page_size=0&status=Call+Back"  # + read as a space
        async with session.get(url) as resp:
            body = await resp.json()
        assert [t["task_id"] for t in body["data"]] == labelled("Call Back")
        assert await all_ids(session, sim, status="completed") == []


async def test_call_type_variants_and_search(session: aiohttp.ClientSession) -> None:
    async with serve(300, seed=5) as sim:
        tasks = docs(sim)

        def kind(t: dict[str, Any]) -> Any:
            return t["output"].get("call_type") or t["output"].get("type")

        assert await all_ids(session, sim, call_type="outbound") == [
            t["task_id"] for t in tasks if kind(t) in ("outbound", "outboundPhoneCall")
        ]
        assert await all_ids(session, sim, call_type="inboundPhoneCall") == [
            t["task_id"] for t in tasks if kind(t) == "inboundPhoneCall"
        ]
        name = tasks[4]["input"]["name"]
        assert await all_ids(session, sim, search=name.lower()) == [
            t["task_id"] for t in tasks if t["input"]["name"] == name
        ]
        phone = tasks[9]["input"]["phone"]
        assert await all_ids(session, sim, search=re.escape(phone)) == [
            t["task_id"] for t in tasks if t["input"]["phone"] == phone
        ]
        assert await all_ids(session, sim, search="^Zo.*") == [
            t["task_id"] for t in tasks if t["input"]["name"].startswith("Zo")
        ]
        status, body = await get(session, tasks_url(sim), search="+1555")  # an invalid regex
        assert status == 206
        assert body["message"] == "Tasks Fetch Failed"
        assert "Regular expression is invalid" in body["errors"]["detail"]


async def test_dates_thread_and_user(session: aiohttp.ClientSession) -> None:
    async with serve(300, seed=6, utc_offset=3600) as sim:
        tasks = docs(sim)
        base = 1_767_225_600
        # The server reads from_ts in its own zone (an hour east): an hour later in UTC.
        got = await all_ids(session, sim, from_ts=base + 100 * 60)
        assert got == [t["task_id"] for t in tasks if t["created"] >= "2026-01-01T02:40:00"]
        assert len(await all_ids(session, sim, from_ts="soon")) == 300  # silently dropped
        thread = tasks[10]["thread_id"] or tasks[11]["thread_id"]
        assert await all_ids(session, sim, thread_id=thread) == [
            t["task_id"] for t in tasks if t["thread_id"] == thread
        ]
        assert await all_ids(session, sim, user_id="42") == [
            t["task_id"] for t in tasks if t["user"] == 42
        ]


# --------------------------------------------------------------------------- paging


async def test_page_parameters_as_the_backend_reads_them(session: aiohttp.ClientSession) -> None:
    async with serve(120) as sim:
        ids = sim.task_ids()

        async def page(**params: Any) -> tuple[int, Any]:
            status, body = await get(session, tasks_url(sim), **params)
            return status, body["data"] if status == 200 else body

        assert await page(page="abc") == (200, (await page(page=1))[1])
        status, data = await page(page_size="lots")
        assert [t["task_id"] for t in data] == ids[:50]  # the default, 50
        status, data = await page(page=2, page_size="x")
        assert [t["task_id"] for t in data] == ids[50:100]
        for bad in (0, -3):
            status, body = await page(page=bad)
            assert status == 206
            assert body["message"] == "Tasks Fetch Failed"
            assert body["errors"] == {"detail": "skip must be >= 0"}
        status, data = await page(page=1, page_size=-7)
        assert [t["task_id"] for t in data] == ids[:7]
        status, body = await page(page=2, page_size=-7)
        assert status == 206
        status, body = await page(page=2**62, page_size=100)
        assert status == 206
        assert body["errors"] == {"detail": "MongoDB can only handle up to 8-byte ints"}
        status, data = await page(page=1, page_size=0)
        assert len(data) == 120
        status, data = await page(page=3, page_size=0)
        assert len(data) == 120  # a skip of 0 whatever the page


async def test_space_id_replaces_the_space(session: aiohttp.ClientSession) -> None:
    async with serve(20) as sim:
        status, body = await get(session, tasks_url(sim), space_id=99)
        assert (status, body["count"], body["data"]) == (200, 0, [])
        status, body = await get(session, tasks_url(sim), space_id=4242)
        assert (status, body["count"]) == (200, 20)
        status, body = await get(session, tasks_url(sim, "nope"))
        assert body == {"status_code": 206, "message": "Invalid Space Token", "data": {}}


# --------------------------------------------------------------------------- poisoned pages


async def test_poisoned_tasks_fail_their_pages_every_time(session: aiohttp.ClientSession) -> None:
    async with serve(100) as sim:
        ids = sim.task_ids()
        sim.poison(ids[23], 5)  # a task_id, and a serial (position 100 - 1 - 5 = 94)
        assert sim.poisoned_task_ids() == [ids[23], ids[94]]
        for _ in range(3):
            status, body = await get(session, tasks_url(sim), page=3, page_size=10)
            assert status == 206
            assert body["message"] == "Tasks Fetch Failed"
            assert body["errors"] == body["data"]["errors"] == "Internal Server Error"
        for page in (1, 2, 4, 5, 6, 7, 8, 9):
            status, body = await get(session, tasks_url(sim), page=page, page_size=10)
            assert status == 200
            assert [t["task_id"] for t in body["data"]] == ids[(page - 1) * 10 : page * 10]
        status, _ = await get(session, tasks_url(sim), page=10, page_size=10)
        assert status == 206
        status, _ = await get(session, tasks_url(sim), page_size=0)
        assert status == 206
        poisoned = json.loads(sim.tasks_json()[23])
        assert poisoned["execution_type"] is None  # what the real response model refuses
    async with serve(50, token=TOKEN, space_token=SPACE, poisoned=[10]) as sim:
        async with make_client(sim, max_retries=2) as client:
            with pytest.raises(BusinessLogicError) as info:
                await client.get_all_tasks(SPACE, page_size=10, strict=True)
            assert info.value.transient
            assert info.value.page == 4  # serial 10 sits at position 39: page 4
            # Without strict, the pull isolates it (tests/test_poisoned_pages.py).
            tasks = client.iter_tasks(SPACE, page_size=10)
            got = [t.task_id async for t in tasks]
        assert tasks.stats.skipped == [39]
        assert got == [t for i, t in enumerate(sim.task_ids()) if i != 39]


# --------------------------------------------------------------------------- other views


async def test_spaces_organizations_and_routes(session: aiohttp.ClientSession) -> None:
    async with serve(5, org_handle=ORG) as sim:
        base = f"{sim.base_url}/api/v2/platform/"
        status, body = await get(session, base + "spaces/")
        assert (status, body) == (
            400,
            {
                "status_code": 400,
                "message": "Organization handle is required in Org-Handle header",
                "data": {},
            },
        )
        async with session.get(base + "spaces/", headers={"Org-Handle": "x"}) as resp:
            assert (resp.status, await resp.json()) == (404, {"message": "Organization not found"})
        async with session.get(base + "spaces/", headers={"Org-Handle": ORG}) as resp:
            body = await resp.json()
        assert "count" not in body
        space = body["data"][0]
        assert space["organization"] == {"name": "Demo Org", "domain_handle": ORG}
        assert {"description", "logo", "content_type", "privacy_type"} <= set(space)
        status, body = await get(session, base + "organizations/")
        assert {"is_private_domain", "role", "domain_handle"} <= set(body["data"][0])
        async with session.get(base + "nothing/") as resp:
            assert resp.status == 404
            assert resp.content_type == "text/html"
            assert "Not Found" in await resp.text()
        url = base + f"spaces/{sim.space_token}/tasks?page=2"
        async with session.get(url, allow_redirects=False) as resp:
            assert resp.status == 301
            assert resp.headers["Location"] == (
                f"/api/v2/platform/spaces/{sim.space_token}/tasks/?page=2"
            )


async def test_spaces_auth_takes_only_the_configured_schemes() -> None:
    async with serve(5, org_handle=ORG, spaces_auth=("JWT", "Bearer")) as sim:
        base = f"{sim.base_url}/api/v2/platform/"
        async with aiohttp.ClientSession() as s:
            for scheme, expected in (("Token", 401), ("JWT", 200), ("bearer", 200)):
                headers = {"Authorization": f"{scheme} {TOKEN}", "Org-Handle": ORG}
                for path in ("spaces/", "organizations/"):
                    async with s.get(base + path, headers=headers) as resp:
                        assert resp.status == expected, (scheme, path)
                        if expected == 401:
                            assert resp.headers["WWW-Authenticate"] == "JWT"
                async with s.get(tasks_url(sim), headers=headers) as resp:
                    assert resp.status == (200 if scheme == "Token" else 401)
    with pytest.raises(ValueError, match="spaces_auth"):
        Simulator(1, spaces_auth=())


def test_simulator_keeps_fast() -> None:
    import time

    started = time.perf_counter()
    sim = Simulator(20_000)
    assert time.perf_counter() - started < 2.0
    started = time.perf_counter()
    sim.tasks_json()[:2000]
    assert time.perf_counter() - started < 5.0
