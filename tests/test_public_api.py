"""The public surface and the client's lifecycle: exports, env defaults, session ownership."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import types

import aiohttp
import pytest

import unpod_async
from unpod_async import UnpodClient
from unpod_async.testing import Simulator

from .helpers import ORG, SPACE, TOKEN, make_client

ENV_VARS = ("UNPOD_API_TOKEN", "UNPOD_ORG_HANDLE", "UNPOD_BASE_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --------------------------------------------------------------------------- exports


def test_all_is_sorted_and_names_exactly_the_public_members() -> None:
    # Like httpx's test_exported_members: __all__ is the public surface, sorted, and nothing
    # public is importable from the package without being listed (submodules aside).
    public = sorted(
        name
        for name, value in vars(unpod_async).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, types.ModuleType)
    )
    assert unpod_async.__all__ == sorted(unpod_async.__all__)
    assert len(set(unpod_async.__all__)) == len(unpod_async.__all__)
    assert unpod_async.__all__ == public


@pytest.mark.parametrize("name", unpod_async.__all__)
def test_every_exported_name_is_importable(name: str) -> None:
    module = importlib.import_module("unpod_async")
    assert hasattr(module, name)
    imported = __import__("unpod_async", fromlist=[name])
    assert getattr(imported, name) is getattr(module, name)


@pytest.mark.parametrize(
    "name", [n for n in unpod_async.__all__ if inspect.isclass(getattr(unpod_async, n))]
)
def test_exported_classes_are_ours_and_documented(name: str) -> None:
    # Nothing of aiohttp or tenacity is part of the public API.
    cls = getattr(unpod_async, name)
    assert cls.__module__.startswith("unpod_async"), cls.__module__
    assert (cls.__doc__ or "").strip(), f"{name} has no docstring"


def test_version_is_a_string() -> None:
    assert isinstance(unpod_async.__version__, str)
    assert unpod_async.__version__


def test_py_typed_is_shipped() -> None:
    marker = importlib.resources.files("unpod_async") / "py.typed"
    assert marker.is_file()


# --------------------------------------------------------------------------- env defaults


async def test_token_org_and_base_url_come_from_the_environment(
    sim: Simulator, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("UNPOD_API_TOKEN", TOKEN)
    clean_env.setenv("UNPOD_ORG_HANDLE", ORG)
    clean_env.setenv("UNPOD_BASE_URL", sim.base_url)
    async with UnpodClient() as client:
        assert client.base_url == sim.base_url
        assert client.org_handle == ORG
        page = await client.get_tasks(SPACE, page_size=5)
    assert page.count == len(sim)
    [request] = sim.requests
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.headers["Org-Handle"] == ORG


async def test_explicit_arguments_beat_the_environment(
    sim: Simulator, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("UNPOD_API_TOKEN", "env-token")
    clean_env.setenv("UNPOD_ORG_HANDLE", "env-org")
    clean_env.setenv("UNPOD_BASE_URL", "https://env.example")
    async with UnpodClient(TOKEN, "arg-org", base_url=sim.base_url) as client:
        assert client.base_url == sim.base_url
        await client.get_tasks(SPACE, page_size=1)
    [request] = sim.requests
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.headers["Org-Handle"] == "arg-org"


def test_base_url_defaults_to_unpod_ai(clean_env: pytest.MonkeyPatch) -> None:
    client = UnpodClient("tok")
    assert client.base_url == "https://unpod.ai"
    assert client.org_handle is None


@pytest.mark.parametrize("token", [None, ""])
async def test_no_token_is_a_clear_error_and_no_request(
    sim: Simulator, clean_env: pytest.MonkeyPatch, token: str | None
) -> None:
    clean_env.setenv("UNPOD_BASE_URL", sim.base_url)
    clean_env.setenv("UNPOD_ORG_HANDLE", ORG)
    with pytest.raises(ValueError, match="UNPOD_API_TOKEN"):
        UnpodClient(token)
    assert sim.requests == []


async def test_empty_env_token_is_no_token(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("UNPOD_API_TOKEN", "")
    with pytest.raises(ValueError, match="token"):
        UnpodClient()


# --------------------------------------------------------------------------- session ownership


async def test_a_callers_session_is_never_closed(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with make_client(sim, session=session) as client:
            await client.get_tasks(SPACE, page_size=3)
        assert not session.closed
        client2 = make_client(sim, session=session)
        await client2.get_tasks(SPACE, page_size=3)
        await client2.aclose()
        assert not session.closed
        # Still usable by its owner.
        async with session.get(f"{sim.base_url}/api/v2/platform/organizations/") as resp:
            assert resp.status == 401  # no token on the caller's own request
    assert len(sim.requests) == 3


async def test_the_clients_own_session_is_closed_on_exit(sim: Simulator) -> None:
    async with make_client(sim) as client:
        await client.get_tasks(SPACE, page_size=3)
        session = client._session
        assert isinstance(session, aiohttp.ClientSession)
        assert not session.closed
    assert session.closed


async def test_aclose_closes_the_clients_own_session(sim: Simulator) -> None:
    client = make_client(sim)
    await client.get_tasks(SPACE, page_size=3)  # no `async with`: the session is made lazily
    session = client._session
    assert isinstance(session, aiohttp.ClientSession)
    await client.aclose()
    assert session.closed
    await client.aclose()  # idempotent


async def test_a_client_that_never_sent_anything_closes_cleanly() -> None:
    async with UnpodClient("tok"):
        pass
    await UnpodClient("tok").aclose()
