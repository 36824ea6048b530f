"""Fixtures: a real hypercorn trio server on 127.0.0.1, port 0, per test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

import trio_mcp

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))


@asynccontextmanager
async def serving(app: ASGIFramework) -> AsyncIterator[str]:
    """Serve ``app`` (an App, or a test's wrapper around one) on a free loopback port
    for the duration; yields the base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield binds[0]
        finally:
            stop.set()


@pytest.fixture
def demo_app() -> trio_mcp.App:
    from trio_mcp._demo import demo

    return demo.asgi_app()


@pytest.fixture
async def demo_url(demo_app: trio_mcp.App) -> AsyncIterator[str]:
    async with serving(demo_app) as url:
        yield url


@pytest.fixture
async def everything_url() -> AsyncIterator[str]:
    import everything

    async with serving(everything.server.asgi_app()) as url:
        yield url


@pytest.fixture
def serve_app() -> Callable[[ASGIFramework], object]:
    return serving
