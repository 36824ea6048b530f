"""The layers import only downwards: the protocol core is sans-io, the session core
knows no HTTP and no stdio, the tools know no transport, and the two kinds of transport
know nothing of each other. Checked on the source, so a stray import fails here rather
than in a design review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_mcp"

HTTP = {
    "_app",
    "_http",
    "_sse",
    "_streamable",
    "_streaming",
    "_cutoff",
    "_auth",
    "_security",
    "_run",
    "_run_uvicorn",
    "_stateless_http",
    "_listen",
    "_redis_http",
}
STDIO = {"_stdio", "_stdfds", "_run_stdio"}
SESSIONS = {
    "_session",
    "_supervisor",
    "_stream",
    "_registry",
    "_heartbeat",
    "_pacing",
    "_stateless_call",
    "_task_runner",
    "_redis_client",
    "_redis_line",
    "_redis_tasks",
    "_redis_worker",
    "_redis_sessions",
    "_redis_takeover",
    "_redis_guests",
}
TOOLS = {"_server", "_tools", "_resources", "_prompts", "_context", "_content", "_input"}
TRANSPORTS = HTTP | STDIO
#: What only the HTTP side may import: a stdio server never loads it.
HTTP_LIBRARIES = {"hypercorn", "quart", "quart_trio"}

#: module -> what it must not import at module level (imports that only serve type
#: checking are not imports at run time, and are not counted).
FORBIDDEN = {
    **dict.fromkeys(
        [
            "_jsonrpc",
            "_protocol",
            "_budget",
            "_eventstream",
            "_eventlog",
            "_schema",
            "_converter",
            "_caching",
            "_stateless",
            "_sealing",
            "_tasks",
            "_task_store",
        ],
        TRANSPORTS | SESSIONS | {"trio"},
    ),
    "_uritemplate": TRANSPORTS | SESSIONS | {"trio"},
    **dict.fromkeys(sorted(TOOLS), TRANSPORTS | SESSIONS),
    **dict.fromkeys(sorted(SESSIONS), TRANSPORTS),
    "_config": TRANSPORTS,
    "_collector": TRANSPORTS | SESSIONS | {"trio"},
    # The stdio transport serves sessions: it knows neither HTTP nor what is registered.
    **dict.fromkeys(
        sorted(STDIO), HTTP | HTTP_LIBRARIES | {"_tools", "_resources", "_prompts", "_demo"}
    ),
    "_stdfds": (TRANSPORTS - {"_stdfds"}) | SESSIONS | HTTP_LIBRARIES | {"trio"},
    **dict.fromkeys(sorted(HTTP), STDIO),
    # Hosting trio on another loop, and hearing the host's signals: no MCP at all.
    **dict.fromkeys(["_guest", "_signals", "_lifespan"], TRANSPORTS | SESSIONS | TOOLS),
}


def runtime_imports(module: str) -> set[str]:
    """What a module imports when it is loaded: sibling modules as ``_name``, others by
    their top-level name. Imports inside functions run late, by choice (Server.asgi_app
    builds an App on request), and those under ``if TYPE_CHECKING`` never run."""
    return _imports(ast.parse((PACKAGE / f"{module}.py").read_text()).body)


def _imports(statements: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in statements:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            names |= _imports(node.body) | _imports(node.orelse)
        elif isinstance(node, ast.Try):
            names |= _imports(node.body) | _imports(node.orelse) | _imports(node.finalbody)
            for handler in node.handlers:
                names |= _imports(handler.body)
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(module: str) -> None:
    assert runtime_imports(module) & FORBIDDEN[module] == set()


def test_every_private_module_has_its_place_in_the_layers() -> None:
    modules = {path.stem for path in PACKAGE.glob("_*.py") if path.stem != "__init__"}
    placed = set(FORBIDDEN) | {"__main__", "_demo"}
    assert modules - placed == set(), "add the new module to a layer in this test"
