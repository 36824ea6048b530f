"""The layers import only downwards: the protocol core is sans-io, the session core
knows no HTTP, the tools know no transport. Checked on the source, so a stray import
fails here rather than in a design review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_mcp"

HTTP = {"_app", "_http", "_sse", "_streamable", "_streaming", "_auth", "_security", "_run"}
SESSIONS = {"_session", "_supervisor", "_stream", "_registry", "_heartbeat", "_pacing"}

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
        ],
        HTTP | SESSIONS | {"trio"},
    ),
    "_uritemplate": HTTP | SESSIONS | {"trio"},
    **dict.fromkeys(
        ["_server", "_tools", "_resources", "_prompts", "_context", "_content"], HTTP | SESSIONS
    ),
    **dict.fromkeys(sorted(SESSIONS), HTTP),
    "_config": HTTP,
    "_collector": HTTP | SESSIONS | {"trio"},
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
    placed = set(FORBIDDEN) | HTTP | {"__main__", "_demo"}
    assert modules - placed == set(), "add the new module to a layer in this test"
