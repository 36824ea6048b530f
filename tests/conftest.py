"""Fixtures: a real server on 127.0.0.1, port 0, per test: hypercorn's trio worker, or
under ``every_host`` each supported ASGI server in turn (tests/hosts.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from hypercorn.typing import ASGIFramework

import trio_mcp

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))

from hosts import HOSTS, serving
from redispeer import RedisPeer, redis_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "every_host: run the test under every ASGI server trio-mcp supports (tests/hosts.py)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "host" in metafunc.fixturenames and metafunc.definition.get_closest_marker("every_host"):
        metafunc.parametrize("host", HOSTS, indirect=True)


@pytest.fixture
def host(request: pytest.FixtureRequest) -> str:
    """The ASGI server the test's apps are served by: hypercorn's trio worker, unless the
    test is marked ``every_host``."""
    return getattr(request, "param", HOSTS[0])


@pytest.fixture
def demo_app() -> trio_mcp.App:
    from trio_mcp._demo import demo

    return demo.asgi_app()


@pytest.fixture
async def demo_url(demo_app: trio_mcp.App, host: str) -> AsyncIterator[str]:
    async with serving(demo_app, host) as url:
        yield url


@pytest.fixture
async def everything_url(host: str) -> AsyncIterator[str]:
    import everything

    async with serving(everything.server.asgi_app(), host) as url:
        yield url


@pytest.fixture
def serve_app(host: str) -> Callable[[ASGIFramework], object]:
    """``serve_app(app)``: an async context manager serving ``app`` under the test's host."""
    return partial(serving, host=host)


@pytest.fixture
def redis() -> Iterator[RedisPeer]:
    """A real redis-server of this test's own on a free loopback port (tests/redispeer.py)."""
    with redis_server() as peer:
        yield peer
