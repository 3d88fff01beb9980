"""The Authorization scheme (Token, Bearer, JWT) and the headers every request carries."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aioresponses import aioresponses

from unpod_async import AuthenticationError, UnpodClient
from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, cli_env, make_client, run_here

ANY_URL = re.compile(r"^https://unpod\.ai/.*$")


def sent_headers(m: aioresponses) -> list[dict[str, str]]:
    return [dict(call.kwargs["headers"]) for calls in m.requests.values() for call in calls]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [(None, "Token"), ("token", "Token"), ("BEARER", "Bearer"), (" jwt ", "JWT"), ("Jwt", "JWT")],
)
def test_scheme_is_validated_and_spelled_canonically(
    given: str | None, canonical: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNPOD_AUTH_SCHEME", raising=False)
    client = UnpodClient(TOKEN, auth_scheme=given)
    assert client.auth_scheme == canonical
    assert f"auth_scheme={canonical!r}" in repr(client)
    assert TOKEN not in repr(client)


def test_scheme_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNPOD_AUTH_SCHEME", "bearer")
    assert UnpodClient(TOKEN).auth_scheme == "Bearer"
    assert UnpodClient(TOKEN, auth_scheme="Token").auth_scheme == "Token"  # argument first
    monkeypatch.setenv("UNPOD_AUTH_SCHEME", "  ")
    assert UnpodClient(TOKEN).auth_scheme == "Token"
    monkeypatch.setenv("UNPOD_AUTH_SCHEME", "Basic")
    with pytest.raises(ValueError, match="UNPOD_AUTH_SCHEME must be one of Token, Bearer, JWT"):
        UnpodClient(TOKEN)
    with pytest.raises(ValueError, match="auth_scheme must be one of"):
        UnpodClient(TOKEN, auth_scheme="Basic")
    with pytest.raises(TypeError):
        UnpodClient(TOKEN, auth_scheme=1)  # type: ignore[arg-type]


async def test_every_request_carries_the_scheme_and_json_content_type(
    mocked: aioresponses,
) -> None:
    mocked.get(ANY_URL, payload={"count": 0, "status_code": 200, "data": []}, repeat=True)
    async with UnpodClient(TOKEN, ORG, auth_scheme="jwt") as client:
        await client.get_tasks(SPACE)
        await client.get_all_tasks(SPACE)
        await client.list_spaces()
        await client.list_organizations()
    headers = sent_headers(mocked)
    assert len(headers) >= 4
    for h in headers:
        assert h["Authorization"] == f"JWT {TOKEN}"
        assert h["Content-Type"] == "application/json"
        assert "json" in h["Accept"]


async def test_a_401_from_spaces_or_organizations_names_the_scheme_option() -> None:
    async with serve(5, token=TOKEN, org_handle=ORG, spaces_auth=("JWT", "Bearer")) as sim:
        async with make_client(sim) as client:
            for call in (client.list_spaces, client.list_organizations):
                with pytest.raises(AuthenticationError) as info:
                    await call()
                exc = info.value
                assert exc.status_code == 401
                assert "Authentication credentials were not provided." in exc.message
                assert "auth_scheme=" in exc.message
                assert "UNPOD_AUTH_SCHEME" in exc.message
                assert "'Authorization: Token ...'" in exc.message
                assert TOKEN not in str(exc)
            assert len(await client.get_all_tasks(sim.space_token)) == 5  # tasks take Token
        for scheme in ("Bearer", "jwt"):
            async with make_client(sim, auth_scheme=scheme) as client:
                assert [s.token for s in await client.list_spaces()] == [sim.space_token]
                assert [o.domain_handle for o in await client.list_organizations()] == [ORG]
                with pytest.raises(AuthenticationError) as info:
                    await client.get_tasks(sim.space_token)  # the tasks view takes Token only
                assert "auth_scheme" not in info.value.message


async def test_the_default_simulator_takes_token_everywhere(sim: Simulator) -> None:
    async with make_client(sim) as client:
        assert await client.list_spaces()
        assert await client.list_organizations()


async def test_strict_simulator_accepts_the_client_and_refuses_a_bare_get() -> None:
    async with serve(30, token=TOKEN, org_handle=ORG, space_token=SPACE, strict=True) as sim:
        async with make_client(sim) as client:
            assert len(await client.get_all_tasks(SPACE, page_size=7)) == 30
            assert await client.list_spaces()
        url = f"{sim.base_url}/api/v2/platform/spaces/{SPACE}/tasks/"
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Token {TOKEN}"}
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 415
                body = await resp.json()
            assert body["message"] == 'Unsupported media type "" in request.'
            headers["Content-Type"] = "application/json; charset=utf-8"
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 200
    assert all(r.headers.get("Content-Type") == "application/json" for r in sim.requests[:-2])


async def test_cli_auth_scheme() -> None:
    async with serve(5, spaces_auth=("JWT",)) as sim:
        env = cli_env(sim)
        code, out, err = await run_here("spaces", "list", "--auth-scheme", "jwt", env=env)
        assert code == 0, err
        assert sim.space_token in out
        code, out, err = await run_here("orgs", "list", env={**env, "UNPOD_AUTH_SCHEME": "JWT"})
        assert code == 0, err
        code, _, err = await run_here("orgs", "list", env=env)
        assert code == 1
        assert "UNPOD_AUTH_SCHEME" in err
        assert "auth_scheme=" in err
        code, _, err = await run_here("orgs", "list", "--auth-scheme", "Basic", env=env)
        assert code == 2
        assert "auth_scheme must be one of Token, Bearer, JWT" in err
