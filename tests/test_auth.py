"""Bearer-token authentication: 401 with a challenge, sessions bound to their principal,
protected-resource metadata (RFC 9728)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from streamclient import open_client

import trio_mcp

TOKENS = {"alice-token": "alice", "bob-token": "bob"}


async def verify(token: str) -> str | None:
    return TOKENS.get(token)


AUTH = trio_mcp.BearerAuth(
    verify, authorization_servers=["https://auth.example"], scopes_supported=["mcp"]
)


@pytest.fixture
async def url(serve_app: Any) -> AsyncIterator[str]:
    from trio_mcp._demo import demo

    async with serve_app(demo.asgi_app(trio_mcp.Settings(auth=AUTH))) as base:
        yield base


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_a_request_without_a_token_gets_401_and_where_to_learn_more(url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(url + "/sse")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{url}/.well-known/oauth-protected-resource"' in challenge
    assert "error=" not in challenge  # no token is not an invalid token


async def test_an_invalid_token_gets_401_invalid_token(url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(url + "/mcp", json={}, headers=bearer("forged"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_valid_token_is_served(url: str) -> None:
    async with open_client(url) as mcp:
        mcp.http.headers.update(bearer("alice-token"))
        await mcp.initialize()
        assert (await mcp.call("ping"))["result"] == {}


async def test_another_principal_cannot_use_a_streamable_session(url: str) -> None:
    async with open_client(url) as alice, open_client(url) as bob:
        alice.http.headers.update(bearer("alice-token"))
        bob.http.headers.update(bearer("bob-token"))
        await alice.initialize()
        bob.session_id = alice.session_id
        assert (await bob.post(bob.request("tools/list"))).status_code == 404
        deleted = await bob.http.delete(bob.url, headers=bob.headers())
        assert deleted.status_code == 404
        async with bob.get_stream() as (response, _):
            assert response.status_code == 404
        assert (await alice.call("ping"))["result"] == {}


async def test_another_principal_cannot_post_to_or_resume_an_sse_session(url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", url + "/sse", headers=bearer("alice-token")) as stream:
            lines = stream.aiter_lines()
            event_id = (await lines.__anext__()).removeprefix("id: ")
            await lines.__anext__()  # event: endpoint
            await lines.__anext__()  # retry:
            endpoint = (await lines.__anext__()).removeprefix("data: ")
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            stolen = await http.post(url + endpoint, json=ping, headers=bearer("bob-token"))
            assert stolen.status_code == 404
            own = await http.post(url + endpoint, json=ping, headers=bearer("alice-token"))
            assert own.status_code == 202
        headers = {**bearer("bob-token"), "last-event-id": event_id}
        async with http.stream("GET", url + "/sse", headers=headers) as resumed:
            async for line in resumed.aiter_lines():
                if line.startswith("data: "):
                    assert line != "data: " + endpoint  # a new session of bob's own
                    break


async def test_the_protected_resource_metadata_is_served_without_a_token(url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(url + "/.well-known/oauth-protected-resource")
        suffixed = await http.get(url + "/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == suffixed.status_code == 200
    assert response.json() == {
        "resource": url + "/mcp",
        "authorization_servers": ["https://auth.example"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp"],
    }


async def test_without_auth_there_is_no_metadata(demo_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(demo_url + "/.well-known/oauth-protected-resource")
    assert response.status_code == 404


async def test_a_verifier_that_raises_gets_503_and_lets_no_one_in(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    async def broken(token: str) -> str | None:
        raise ConnectionError("the identity provider is down")

    app = demo.asgi_app(trio_mcp.Settings(auth=trio_mcp.BearerAuth(broken)))
    async with serve_app(app) as base, httpx.AsyncClient() as http:
        response = await http.get(base + "/sse", headers=bearer("alice-token"))
    assert response.status_code == 503
    assert "Traceback" not in response.text and "identity provider" not in response.text
    assert int(response.headers["retry-after"]) > 0
