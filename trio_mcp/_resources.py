"""Resources: fixed URIs and URI templates, each read by a trio coroutine.

A reader returns ``str`` (text), ``bytes`` (a blob), a dict or list (JSON text), or
explicit :class:`TextResourceContents` / :class:`BlobResourceContents` (one or a list).
Template variables arrive as the reader's keyword arguments, converted to the
parameter's hint when that is ``int`` or ``float`` (a URI only ever carries text).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from ._caching import CacheHint
from ._content import Annotations, BlobResourceContents, ResourceContents, TextResourceContents
from ._context import Context
from ._input import InputRequired
from ._jsonrpc import INVALID_PARAMS, JSON, JSONRPCError
from ._protocol import version_at_least
from ._tools import Icon
from ._uritemplate import UriTemplate

Reader = Callable[..., Awaitable[Any]]


def _describe_common(
    out: JSON,
    version: str,
    *,
    title: str | None,
    description: str | None,
    mime_type: str | None,
    annotations: Annotations | None,
    icons: list[Icon] | None,
    meta: JSON | None,
) -> JSON:
    modern = version_at_least(version, "2025-06-18")
    if title and modern:
        out["title"] = title
    if description:
        out["description"] = description
    if mime_type:
        out["mimeType"] = mime_type
    if annotations is not None:
        out["annotations"] = annotations.to_json(version)
    if icons and version_at_least(version, "2025-11-25"):
        out["icons"] = [icon.to_json() for icon in icons]
    if meta is not None and modern:
        out["_meta"] = meta
    return out


class _ReaderMixin:
    fn: Reader
    mime_type: str | None

    def _setup_reader(self, fn: Reader) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"resource reader {fn.__name__!r} must be an 'async def' function")
        self.fn = fn
        hints = typing.get_type_hints(fn)
        self._context_param: str | None = None
        self._hints: dict[str, Any] = {}
        for param in inspect.signature(fn).parameters.values():
            hint = hints.get(param.name, str)
            if hint is Context:
                self._context_param = param.name
            else:
                self._hints[param.name] = hint

    async def _read(self, uri: str, arguments: dict[str, str], context: Context) -> list[JSON]:
        kwargs: dict[str, Any] = {}
        for name, raw in arguments.items():
            if name in self._hints:
                kwargs[name] = _convert(name, raw, self._hints[name], uri)
        if self._context_param is not None:
            kwargs[self._context_param] = context
        value = await self.fn(**kwargs)
        if isinstance(value, InputRequired):
            raise value
        return [
            c.to_json(context.protocol_version) for c in _as_contents(uri, value, self.mime_type)
        ]


def _convert(name: str, raw: str, hint: Any, uri: str) -> Any:
    try:
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
    except ValueError:
        raise JSONRPCError(
            INVALID_PARAMS,
            f"'{name}' in {uri} must be a {hint.__name__}, got {raw!r}",
            {"uri": uri},
        ) from None
    return raw


def _as_contents(uri: str, value: Any, mime_type: str | None) -> list[ResourceContents]:
    if isinstance(value, TextResourceContents | BlobResourceContents):
        return [value]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, TextResourceContents | BlobResourceContents) for v in value)
    ):
        return list(value)
    if isinstance(value, str):
        return [TextResourceContents(uri, value, mime_type or "text/plain")]
    if isinstance(value, bytes | bytearray):
        return [BlobResourceContents(uri, bytes(value), mime_type or "application/octet-stream")]
    if isinstance(value, dict | list):
        return [TextResourceContents(uri, json.dumps(value), mime_type or "application/json")]
    raise TypeError(f"a resource reader returned {type(value).__name__}; return str or bytes")


class Resource(_ReaderMixin):
    """A resource at a fixed URI."""

    def __init__(
        self,
        uri: str,
        fn: Reader,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
        annotations: Annotations | None = None,
        icons: list[Icon] | None = None,
        meta: JSON | None = None,
        cache: CacheHint | None = None,
    ) -> None:
        self._setup_reader(fn)
        #: Caching hint of a read on the stateless wire (None: the server's default).
        self.cache = cache
        self.uri = uri
        self.name = name or fn.__name__
        self.title = title
        self.description = description if description is not None else inspect.getdoc(fn)
        self.mime_type = mime_type
        self.size = size
        self.annotations = annotations
        self.icons = icons
        self.meta = meta

    def describe(self, version: str) -> JSON:
        out: JSON = {"uri": self.uri, "name": self.name}
        if self.size is not None:
            out["size"] = self.size
        return _describe_common(
            out,
            version,
            title=self.title,
            description=self.description,
            mime_type=self.mime_type,
            annotations=self.annotations,
            icons=self.icons,
            meta=self.meta,
        )

    async def read(self, context: Context) -> list[JSON]:
        return await self._read(self.uri, {}, context)


class ResourceTemplate(_ReaderMixin):
    """A family of resources named by an RFC 6570 URI template."""

    def __init__(
        self,
        uri_template: str,
        fn: Reader,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        annotations: Annotations | None = None,
        icons: list[Icon] | None = None,
        meta: JSON | None = None,
        cache: CacheHint | None = None,
    ) -> None:
        self._setup_reader(fn)
        #: Caching hint of a read on the stateless wire (None: the server's default).
        self.cache = cache
        self.template = UriTemplate(uri_template)
        missing = set(self._hints) - set(self.template.variables)
        if missing:
            raise TypeError(
                f"reader {fn.__name__!r} has parameters {sorted(missing)} that the template "
                f"{uri_template!r} does not provide"
            )
        self.uri_template = uri_template
        self.name = name or fn.__name__
        self.title = title
        self.description = description if description is not None else inspect.getdoc(fn)
        self.mime_type = mime_type
        self.annotations = annotations
        self.icons = icons
        self.meta = meta

    def describe(self, version: str) -> JSON:
        return _describe_common(
            {"uriTemplate": self.uri_template, "name": self.name},
            version,
            title=self.title,
            description=self.description,
            mime_type=self.mime_type,
            annotations=self.annotations,
            icons=self.icons,
            meta=self.meta,
        )

    def match(self, uri: str) -> dict[str, str] | None:
        return self.template.match(uri)

    async def read(self, uri: str, variables: dict[str, str], context: Context) -> list[JSON]:
        return await self._read(uri, variables, context)
