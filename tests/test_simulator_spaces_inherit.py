"""The spaces of a simulated organization (``spaces={...}``) share the options it was given."""

from __future__ import annotations

import inspect
from typing import Any

import aiohttp
import pytest

from unpod_async.testing import Fault, Simulator, serve

from .helpers import get_json, tasks_url

# A space's own: its size, seed, token, poisoned tasks and id; the organization's, served by
# the first space: ``spaces`` and ``latency``.
OWN = {"tasks", "seed", "space_token", "poisoned", "_space_id", "spaces", "latency"}
# Every other option, each with a value that is not its default.
SHARED: dict[str, Any] = {
    "token": "tok-2",
    "org_handle": "org-2",
    "page_size_cap": 9,
    "default_page_size": 7,
    "fault_rate": 0.25,
    "fault_kinds": ("502", "truncated"),
    "retry_after": "3",
    "strip_ids": True,
    "count_offset": 11,
    "reset_includes_auto_retry": True,
    "legacy_shapes": True,
    "legacy_filters": True,
    "legacy_params": True,
    "ids": "id",
    "spaces_auth": ("JWT", "Bearer"),
    "strict": True,
    "utc_offset": 3600.0,
}


def test_every_option_is_shared_with_the_spaces_or_a_spaces_own() -> None:
    params = inspect.signature(Simulator).parameters
    assert set(params) == OWN | set(SHARED), "a new option: shared with the spaces, or not?"
    sim = Simulator(10, spaces={"b": 5}, **SHARED)
    child = sim.space("b")
    for name, value in SHARED.items():
        assert getattr(sim, name) == value != params[name].default, name
        assert getattr(child, name) == value, name


async def test_a_space_counts_and_renders_as_the_organization_was_told(
    session: aiohttp.ClientSession,
) -> None:
    async with serve(40, spaces={"b": 30}, strip_ids=True, count_offset=7) as sim:
        for token, n in ((sim.space_token, 40), ("b", 30)):
            status, body = await get_json(session, tasks_url(sim, token), page_size=5)
            assert status == 200
            assert body["count"] == n + 7, token
            assert len(body["data"]) == 5
            assert not any({"_id", "id"} & set(task) for task in body["data"]), token


async def test_a_reset_in_a_space_also_resets_aiohttps_own_retry(
    session: aiohttp.ClientSession,
) -> None:
    async with serve(20, spaces={"b": 30}, reset_includes_auto_retry=True) as sim:
        sim.space("b").faults.append(Fault("reset", page=1))
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(tasks_url(sim, "b"), params={"page": 1}) as resp:
                await resp.read()
        # aiohttp re-sent the GET once by itself; both attempts were reset.
        assert [(r.status, r.fault) for r in sim.requests] == [(0, "reset"), (0, "reset")]
        status, body = await get_json(session, tasks_url(sim, "b"), page=1)
        assert (status, body["count"]) == (200, 30)
