"""Shared fixtures: a simulator over real loopback sockets and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from unpod_async import UnpodClient
from unpod_async.testing import Simulator, serve

TOKEN = "test-token"
ORG = "demo-org"
SPACE = "space-demo"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serve(tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE) as simulator:
        yield simulator


def make_client(sim: Simulator, **kwargs: object) -> UnpodClient:
    """A client for ``sim`` with fast retries (tests should not sleep for backoff)."""
    options: dict[str, object] = {"retry_delay": 0.001, "max_retry_delay": 0.01}
    options.update(kwargs)
    return UnpodClient(TOKEN, ORG, base_url=sim.base_url, **options)  # type: ignore[arg-type]


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[UnpodClient]:
    async with make_client(sim) as c:
        yield c
