"""trio-mcp: serve the Model Context Protocol over HTTP (or stdio) with trio.

The public API is what this module exports; everything in ``trio_mcp._*`` is private.
"""

from ._app import App
from ._auth import BearerAuth
from ._caching import CacheHint
from ._config import Settings
from ._content import (
    Annotations,
    AudioContent,
    BlobResourceContents,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)
from ._context import ClientError, Context, MissingCapability
from ._input import InputRequired
from ._jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_BUSY,
    JSONRPCError,
)
from ._prompts import Prompt, PromptArgument, PromptMessage
from ._protocol import LATEST_VERSION, SUPPORTED_VERSIONS
from ._registry import InMemorySessionStore, SessionStore
from ._resources import Resource, ResourceTemplate
from ._run import run
from ._run_stdio import run_stdio
from ._sealing import generate_key as generate_state_key
from ._server import Server
from ._tools import Icon, Tool, ToolAnnotations, ToolError

__version__ = "0.1.0"

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LATEST_VERSION",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SERVER_BUSY",
    "SUPPORTED_VERSIONS",
    "Annotations",
    "App",
    "AudioContent",
    "BearerAuth",
    "BlobResourceContents",
    "CacheHint",
    "ClientError",
    "Context",
    "EmbeddedResource",
    "Icon",
    "ImageContent",
    "InMemorySessionStore",
    "InputRequired",
    "JSONRPCError",
    "MissingCapability",
    "Prompt",
    "PromptArgument",
    "PromptMessage",
    "Resource",
    "ResourceLink",
    "ResourceTemplate",
    "Server",
    "SessionStore",
    "Settings",
    "TextContent",
    "TextResourceContents",
    "Tool",
    "ToolAnnotations",
    "ToolError",
    "generate_state_key",
    "run",
    "run_stdio",
]
