"""Floor four: floor one's trio app, unchanged, under uvicorn (uvloop, httptools) with
trio as a guest on its loop through trio-mcp's bridge: against floor three it shows what
trio's scheduling and the bridge cost for the same work; against trio-mcp under uvicorn,
what trio-mcp's own features cost there (issue 12).
"""

from __future__ import annotations

from _floor import parse_floor_args
from _uvicorn import serve_app
from floor_hypercorn import trio_floor

from trio_mcp._guest import GuestHost


def main() -> None:
    args = parse_floor_args(__doc__ or "")
    serve_app(GuestHost(trio_floor(args.heartbeat)), args.port, args.keep_alive_timeout)


if __name__ == "__main__":
    main()
