"""The official TypeScript SDK's own environment, made by the benchmark itself.

``benchmarks/.node-sdk`` (gitignored) holds the SDK, express and zod, installed from the
npm registry on the first run that measures ``ts-sdk`` and reused after. Node.js is the
machine's own when it is 20 or later: the SDK says 18, but its Streamable HTTP transport
runs on ``@hono/node-server`` 2, which needs 20. On an older one (Debian 12's nodejs is
18) Node 22 comes from the npm registry into the same environment, as the conformance
test gets its Node (``tests/test_conformance.py``).

npm runs *inside* the directory, which has a ``package.json`` of its own, rather than
with ``--prefix``: that flag also moves npm's global config to ``PREFIX/etc/npmrc`` and
drops the machine's (where its CA file may be set), and then every fetch fails and
retries for minutes. A CA file named in the environment is passed on to npm explicitly,
for the same reason.

Node resolves a module's imports from the module's own directory upwards, so the
server script (``servers/ts_sdk_server.mjs``) is copied into the environment before
each run and started from there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

ENV = Path(__file__).parent / ".node-sdk"
SCRIPT = Path(__file__).parent / "servers" / "ts_sdk_server.mjs"
#: The SDK's 1.32 line (as sdkenv pins the Python SDK's release line), and the express
#: and zod majors it supports.
REQUIREMENTS = ["@modelcontextprotocol/sdk@~1.32.0", "express@^5", "zod@^4"]
PACKAGES = ["@modelcontextprotocol/sdk", "express", "zod"]
MIN_NODE = 20
#: Installed into the environment when the machine's Node is older than MIN_NODE.
NODE_PACKAGE = "node@22"
INSTALL_TIMEOUT = 300.0
#: Variables that may name a CA bundle, in the order npm's ``cafile`` is taken from.
CA_VARIABLES = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
#: What the probe imports: the modules the server script uses.
PROBE = (
    "await import('@modelcontextprotocol/sdk/server/sse.js');"
    "await import('@modelcontextprotocol/sdk/server/streamableHttp.js');"
    "await import('@modelcontextprotocol/sdk/server/express.js');"
    "await import('express'); await import('zod');"
)


class TsSdkUnavailable(RuntimeError):
    pass


def node_version(node: str) -> str:
    """``node --version`` without its ``v``; empty if it does not run."""
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip().lstrip("v") if done.returncode == 0 else ""


def _recent_enough(node: str | None, min_node: int) -> bool:
    if node is None:
        return False
    match = re.match(r"(\d+)\.", node_version(node))
    return match is not None and int(match[1]) >= min_node


def _env_node(env: Path) -> str:
    return str(env / "node_modules" / "node" / "bin" / "node")


def node_program(env: Path = ENV, min_node: int = MIN_NODE) -> str | None:
    """The Node that runs the SDK: the machine's if it is recent enough, else the one
    installed into ``env``; None when neither is there yet."""
    machine = shutil.which("node")
    if _recent_enough(machine, min_node):
        return machine
    installed = _env_node(env)
    return installed if _recent_enough(installed, min_node) else None


def _importable(node: str, env: Path) -> bool:
    if not (env / "node_modules").is_dir():
        return False
    # An --eval module resolves its imports from the working directory.
    probe = subprocess.run(
        [node, "--input-type=module", "--eval", PROBE], cwd=env, capture_output=True, timeout=60
    )
    return probe.returncode == 0


def _npm_environment() -> dict[str, str]:
    environment = dict(os.environ)
    if "npm_config_cafile" not in environment:
        for name in CA_VARIABLES:
            if environment.get(name):
                environment["npm_config_cafile"] = environment[name]
                break
    return environment


def _npm_install(env: Path, packages: list[str]) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise TsSdkUnavailable("npm is not installed")
    env.mkdir(parents=True, exist_ok=True)
    manifest = env / "package.json"
    if not manifest.exists():
        # Without one, npm would climb to a parent directory's package.json.
        manifest.write_text('{"private": true}\n')
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", *packages],
            cwd=env,
            env=_npm_environment(),
            check=True,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.CalledProcessError as error:
        printed = (error.stdout or "") + (error.stderr or "")
        raise TsSdkUnavailable(
            f"npm install {' '.join(packages)} failed:\n{printed[-3000:]}"
        ) from None
    except subprocess.TimeoutExpired:
        raise TsSdkUnavailable(f"npm install took over {INSTALL_TIMEOUT:g} s") from None


def ensure(env: Path = ENV, min_node: int = MIN_NODE) -> str:
    """The ``node`` program that runs the SDK, with the SDK installed into ``env``
    (first, if needed; and Node itself, if the machine's is too old) and the server
    script copied there."""
    node = node_program(env, min_node)
    if node is None or not _importable(node, env):
        packages = list(REQUIREMENTS)
        if node is None:
            packages.append(NODE_PACKAGE)
        _npm_install(env, packages)
        node = node_program(env, min_node)
        if node is None:
            raise TsSdkUnavailable(f"no Node.js {min_node} or later, even from {env}")
        if not _importable(node, env):
            raise TsSdkUnavailable(f"the SDK is not importable from {env}")
    shutil.copyfile(SCRIPT, env / SCRIPT.name)
    return node


#: Prints the installed SDK's SUPPORTED_PROTOCOL_VERSIONS as JSON.
VERSIONS_PROBE = (
    "const t = await import('@modelcontextprotocol/sdk/types.js');"
    "console.log(JSON.stringify(t.SUPPORTED_PROTOCOL_VERSIONS));"
)


def protocol_versions(node: str, env: Path = ENV) -> list[str]:
    """The protocol revisions the installed SDK serves (its ``SUPPORTED_PROTOCOL_VERSIONS``;
    its Streamable HTTP transport answers any other ``MCP-Protocol-Version`` with 400),
    or an empty list if the probe fails. The run's notes say from this whether the SDK
    could be measured on MCP 2026-07-28's stateless wire."""
    try:
        done = subprocess.run(
            [node, "--input-type=module", "--eval", VERSIONS_PROBE],
            cwd=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        found = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return [str(version) for version in found] if isinstance(found, list) else []


def versions(node: str, env: Path = ENV) -> dict[str, str]:
    """Node's version and the installed packages' (from their package.json files)."""
    found = {"node": node_version(node)}
    for name in PACKAGES:
        manifest = env / "node_modules" / name / "package.json"
        try:
            found[name] = json.loads(manifest.read_text())["version"]
        except (OSError, ValueError, KeyError):
            pass
    return found
