"""Serving starts with the garbage collector tuned for a server, unless told not to."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import trio_mcp
from trio_mcp._collector import tune_for_serving


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as each test found it, put back afterwards."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tuning_freezes_the_survivors_and_raises_the_young_threshold(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    tune_for_serving(10_000)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (10_000, 10, 10)


def test_tuning_never_makes_collections_more_frequent(collector: None) -> None:
    gc.set_threshold(50_000, 10, 10)
    tune_for_serving(10_000)
    assert gc.get_threshold() == (50_000, 10, 10)


def test_tuning_leaves_a_disabled_threshold_alone(collector: None) -> None:
    gc.set_threshold(0, 10, 10)
    tune_for_serving(10_000)
    assert gc.get_threshold() == (0, 10, 10)


async def ping_after_serving_starts(serve_app: Any, settings: trio_mcp.Settings) -> None:
    app = trio_mcp.Server("collector-test").asgi_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient() as client:
        # Any answer means the lifespan's startup (where the tuning happens) is done.
        assert (await client.get(url + "/no-such-page")).status_code == 404


async def test_serving_tunes_the_collector_by_default(serve_app: Any, collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    await ping_after_serving_starts(serve_app, trio_mcp.Settings())
    assert gc.get_threshold()[0] == 10_000
    assert gc.get_freeze_count() > 0


async def test_serving_with_no_young_threshold_leaves_the_collector_alone(
    serve_app: Any, collector: None
) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    await ping_after_serving_starts(serve_app, trio_mcp.Settings(gc_young_threshold=None))
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
