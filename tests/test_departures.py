"""Many clients leaving at once must not stall the clients that stay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import trio
from sseclient import open_sse

import trio_mcp

#: Idle streams whose clients all leave at once. Hypercorn's own part of a departure
#: (reading the connection's end) cannot be paced and costs about 0.1 ms each on this
#: test's shared machine (see trio_mcp/_pacing.py), so the bound holds for a few
#: hundred with room to spare; 1,000 and 10,000 are measured there.
LEAVING = 300
#: The longest a staying client's ping may take meanwhile.
STALL_BOUND = 0.1


async def test_a_mass_departure_stalls_a_staying_client_at_most_100_ms(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    # A short resume grace, so that the departed sessions also end while the staying
    # client is watched: their ends come as close together as their departures.
    app = demo.asgi_app(trio_mcp.Settings(resume_grace=0.5))
    async with serve_app(app) as url:
        child = await trio.lowlevel.open_process(
            [sys.executable, str(Path(__file__).parent / "idle_streams.py"), url, str(LEAVING)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            with trio.fail_after(30):
                ready = b""
                while not ready.endswith(b"\n"):
                    ready += await child.stdout.receive_some(100)
            assert ready.split() == [b"ready", str(LEAVING).encode()]
            async with open_sse(url) as sse:
                await sse.initialize()
                pings: list[float] = []
                left = trio.Event()

                async def ping_until_all_left() -> None:
                    while not left.is_set():
                        start = trio.current_time()
                        await sse.call("ping")
                        pings.append(trio.current_time() - start)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ping_until_all_left)
                    await child.stdin.send_all(b"leave\n")
                    with trio.fail_after(20):
                        while len(app.supervisor.store) > 1:
                            await trio.sleep(0.05)
                    left.set()
        finally:
            child.kill()
            await child.wait()
    print("LONGEST", round(max(pings) * 1000), len(pings))
    assert max(pings) <= STALL_BOUND, f"longest ping {max(pings) * 1000:.0f} ms"
    assert len(pings) >= 5  # the staying client was served throughout
