"""The demo server's ASGI app: ``hypercorn -k trio -b 127.0.0.1:8000 trio_mcp.app``.

Hypercorn loads ``trio_mcp.app`` as this module and serves its ``app`` attribute.
"""

from ._demo import demo

app = demo.asgi_app()
