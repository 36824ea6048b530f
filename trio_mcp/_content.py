"""Content blocks a tool (or prompt) can return, and how they go on the wire.

Each block renders itself for the session's negotiated revision, leaving out fields the
revision does not define, so a client on 2024-11-05 never sees a 2025-11-25 field.
"""

from __future__ import annotations

import base64
from typing import Any

import attrs

from ._protocol import version_at_least

JSON = dict[str, Any]


def _b64(data: bytes | str) -> str:
    return data if isinstance(data, str) else base64.b64encode(data).decode("ascii")


@attrs.frozen
class Annotations:
    """Hints on a content block: who it is for, how important, when it last changed."""

    audience: list[str] | None = None
    priority: float | None = None
    last_modified: str | None = None

    def to_json(self, version: str) -> JSON:
        out: JSON = {}
        if self.audience is not None:
            out["audience"] = list(self.audience)
        if self.priority is not None:
            out["priority"] = self.priority
        if self.last_modified is not None and version_at_least(version, "2025-06-18"):
            out["lastModified"] = self.last_modified
        return out


def _common(block: JSON, annotations: Annotations | None, meta: JSON | None, version: str) -> JSON:
    if annotations is not None:
        block["annotations"] = annotations.to_json(version)
    if meta is not None and version_at_least(version, "2025-06-18"):
        block["_meta"] = meta
    return block


@attrs.frozen
class TextContent:
    text: str
    annotations: Annotations | None = None
    meta: JSON | None = None

    def to_json(self, version: str) -> JSON:
        return _common({"type": "text", "text": self.text}, self.annotations, self.meta, version)


@attrs.frozen
class ImageContent:
    """An image; ``data`` is raw bytes or already base64-encoded text."""

    data: bytes | str
    mime_type: str
    annotations: Annotations | None = None
    meta: JSON | None = None

    def to_json(self, version: str) -> JSON:
        block = {"type": "image", "data": _b64(self.data), "mimeType": self.mime_type}
        return _common(block, self.annotations, self.meta, version)


@attrs.frozen
class AudioContent:
    """Audio; ``data`` is raw bytes or base64 text. Clients on 2024-11-05, which has no
    audio type, get a text block saying what was left out."""

    data: bytes | str
    mime_type: str
    annotations: Annotations | None = None
    meta: JSON | None = None

    def to_json(self, version: str) -> JSON:
        data = _b64(self.data)
        if not version_at_least(version, "2025-03-26"):
            # 2024-11-05 has no audio block; say what was left out rather than drop it.
            size = len(data) * 3 // 4
            note = f"[{self.mime_type} audio, about {size} bytes: MCP {version} cannot carry audio]"
            return TextContent(note, self.annotations).to_json(version)
        block = {"type": "audio", "data": data, "mimeType": self.mime_type}
        return _common(block, self.annotations, self.meta, version)


@attrs.frozen
class TextResourceContents:
    uri: str
    text: str
    mime_type: str | None = None
    meta: JSON | None = None

    def to_json(self, version: str) -> JSON:
        out: JSON = {"uri": self.uri, "text": self.text}
        if self.mime_type:
            out["mimeType"] = self.mime_type
        if self.meta is not None and version_at_least(version, "2025-06-18"):
            out["_meta"] = self.meta
        return out


@attrs.frozen
class BlobResourceContents:
    """Binary resource contents; ``blob`` is raw bytes or base64 text."""

    uri: str
    blob: bytes | str
    mime_type: str | None = None
    meta: JSON | None = None

    def to_json(self, version: str) -> JSON:
        out: JSON = {"uri": self.uri, "blob": _b64(self.blob)}
        if self.mime_type:
            out["mimeType"] = self.mime_type
        if self.meta is not None and version_at_least(version, "2025-06-18"):
            out["_meta"] = self.meta
        return out


ResourceContents = TextResourceContents | BlobResourceContents


@attrs.frozen
class EmbeddedResource:
    resource: ResourceContents
    annotations: Annotations | None = None
    meta: JSON | None = None

    def to_json(self, version: str) -> JSON:
        block = {"type": "resource", "resource": self.resource.to_json(version)}
        return _common(block, self.annotations, self.meta, version)


@attrs.frozen
class ResourceLink:
    """A link to a resource the client may read (2025-06-18 and later).

    On older revisions it degrades to a text block naming the URI, since they have no
    link type.
    """

    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None
    annotations: Annotations | None = None
    meta: JSON | None = None

    def to_json(self, version: str) -> JSON:
        if not version_at_least(version, "2025-06-18"):
            return TextContent(f"{self.name}: {self.uri}").to_json(version)
        block: JSON = {"type": "resource_link", "uri": self.uri, "name": self.name}
        for key, value in (
            ("title", self.title),
            ("description", self.description),
            ("mimeType", self.mime_type),
            ("size", self.size),
        ):
            if value is not None:
                block[key] = value
        return _common(block, self.annotations, self.meta, version)


Content = TextContent | ImageContent | AudioContent | EmbeddedResource | ResourceLink
CONTENT_TYPES = (TextContent, ImageContent, AudioContent, EmbeddedResource, ResourceLink)
