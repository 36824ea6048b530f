"""Floor two: a bare quart-trio SSE route (a streaming response from an async generator).

What a Quart app costs per stream: Quart's request and response objects, its request
context, and the disconnect handling it does for every streaming response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from _common import parse_args
from _floor import close_session, endpoint_event, handle_post, open_session
from _hypercorn import serve_app
from quart import make_response, request
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio

app = QuartTrio(__name__)
# A stream is held open for as long as the client likes: no response timeout.
app.config["RESPONSE_TIMEOUT"] = None
HEARTBEAT = 15.0


@app.get("/sse")
async def stream() -> ResponseReturnValue:
    session_id, session = open_session()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield endpoint_event(session_id)
            while True:
                yield await session.next_chunk(HEARTBEAT)
        finally:
            close_session(session_id)

    response = await make_response(
        events(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    response.timeout = None  # type: ignore[union-attr]
    return response


@app.post("/messages/")
async def messages() -> ResponseReturnValue:
    status = handle_post(request.args.get("session_id"), await request.get_data())
    return "", status


def main() -> None:
    global HEARTBEAT
    args = parse_args(__doc__ or "")
    HEARTBEAT = args.heartbeat
    serve_app(app, args.port)


if __name__ == "__main__":
    main()
