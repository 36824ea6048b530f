"""A hypercorn config file whose connections give up on a client that takes nothing.

    hypercorn -k trio -c file:examples/hypercorn_conf.py weather:app

trio-mcp resets the connection of a stream's client that stopped reading by itself
(README, Limits), but only where it finds the socket by the request's addresses, which a
proxy-headers middleware rewrites. This file has the kernel do it regardless: it makes
the listening socket with TCP_USER_TIMEOUT, which every accepted connection inherits,
and hands it to hypercorn as an fd:// bind. It replaces -b: say where to listen here.
``python -m trio_mcp`` does the same by itself.
"""

import os
import socket

HOST = os.environ.get("TRIO_MCP_HOST", "127.0.0.1")
PORT = int(os.environ.get("TRIO_MCP_PORT", "8000"))
# Keep it equal to the app's Settings.stalled_client_timeout.
STALLED_CLIENT_TIMEOUT = float(os.environ.get("TRIO_MCP_STALLED_CLIENT_TIMEOUT", "30"))

_listener = socket.socket(socket.AF_INET6 if ":" in HOST else socket.AF_INET)
_listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
_listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
_listener.setsockopt(
    socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, round(STALLED_CLIENT_TIMEOUT * 1000)
)
# As trio does for its own sockets, and python -m trio_mcp for its listener: the kernel
# holds at most 16 KiB unsent, so a send to a client that stopped reading blocks early
# (under hypercorn's asyncio worker too) and the app's stall timer sees it.
_listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, 16 * 1024)
_listener.bind((HOST, PORT))
bind = [f"fd://{_listener.detach()}"]
# Hypercorn copies every name defined here into its config, which goes to its worker
# process: a socket object left here would go too, and stop the worker from starting.
del _listener
backlog = 4096
