"""The demo server's ASGI app: ``hypercorn -k trio --backlog 4096 trio_mcp.app``.

Hypercorn loads ``trio_mcp.app`` as this module and serves its ``app`` attribute.
"""

from ._demo import demo

app = demo.asgi_app()
