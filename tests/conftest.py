"""Shared fixtures: a simulator over real loopback sockets and a client pointed at it, and a
plain aiohttp session that sends the simulator's token."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest import mock

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aioresponses import aioresponses
from yarl import URL

from unpod_async import UnpodClient
from unpod_async.testing import Simulator, serve

from .helpers import AUTH, ORG, SPACE, TOKEN, make_client, sim_options


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    options = sim_options(request)
    async with serve(
        tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE, **options
    ) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[UnpodClient]:
    async with make_client(sim) as c:
        yield c


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session whose requests carry the simulator's default token (``AUTH``)."""
    async with aiohttp.ClientSession(headers=AUTH) as s:
        yield s


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without ``stream_writer``, which aiohttp 3.14 needs."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
            kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses for request shape and error mapping; any request shows in ``requests``."""
    monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as m:
        yield m
