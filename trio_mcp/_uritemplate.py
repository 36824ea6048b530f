"""RFC 6570 URI templates, for resource templates: expansion and matching.

Matching is the direction MCP needs (a client reads ``test://items/42`` and the server
finds ``test://items/{id}`` with ``id="42"``). Supported expressions: ``{var}`` (simple,
stops at ``/``, ``?``, ``#`` and ``,``), ``{+var}`` (reserved, may span ``/``), ``{#var}``
(fragment), ``{/var}`` (path segment) and ``{?a,b}`` / ``{&a,b}`` (query parameters, each
optional). That covers what resource templates use in practice; an expression outside
it is refused when the template is registered.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote

_EXPRESSION = re.compile(r"\{([+#/?&]?)([A-Za-z0-9_.,]+)\}")


class UriTemplate:
    def __init__(self, template: str) -> None:
        self.template = template
        self.variables: list[str] = []
        self._query_variables: list[str] = []
        pattern = ["^"]
        position = 0
        for match in _EXPRESSION.finditer(template):
            literal = template[position : match.start()]
            if "{" in literal or "}" in literal:
                raise ValueError(f"unsupported expression in URI template {template!r}")
            pattern.append(re.escape(literal))
            operator, names = match.group(1), match.group(2).split(",")
            for name in names:
                # Each variable becomes an argument of the handler (and a regex group).
                if not name.isidentifier():
                    raise ValueError(
                        f"URI template {template!r}: variable {name!r} must be a Python "
                        "identifier, since it is passed to the handler by name"
                    )
                if name in self.variables:
                    raise ValueError(f"URI template {template!r}: {name!r} appears twice")
            if operator in ("?", "&"):
                if template[match.end() :].strip():
                    raise ValueError(f"a query expression must end the template: {template!r}")
                self._query_variables.extend(names)
                self.variables.extend(names)
                pattern.append(r"(?:[?&](?P<__query>.*))?")
            else:
                if len(names) != 1:
                    raise ValueError(f"one variable per expression, please: {match.group(0)!r}")
                name = names[0]
                self.variables.append(name)
                value = {"": r"[^/?#,]+", "+": r"[^?#]+", "#": r".+", "/": r"[^/?#]+"}[operator]
                prefix = {"#": "#", "/": "/"}.get(operator, "")
                pattern.append(f"{re.escape(prefix)}(?P<{name}>{value})")
            position = match.end()
        tail = template[position:]
        if "{" in tail or "}" in tail:
            raise ValueError(f"unsupported expression in URI template {template!r}")
        pattern.append(re.escape(tail) + "$")
        self._regex = re.compile("".join(pattern))

    @staticmethod
    def is_template(uri: str) -> bool:
        return "{" in uri

    def match(self, uri: str) -> dict[str, str] | None:
        """The variables of ``uri`` if it matches the template, else None."""
        found = self._regex.match(uri)
        if found is None:
            return None
        values = {
            name: unquote(value)
            for name, value in found.groupdict().items()
            if name != "__query" and value is not None
        }
        query = found.groupdict().get("__query")
        if query:
            for name, value in parse_qsl(query, keep_blank_values=True):
                if name in self._query_variables:
                    values[name] = value
        return values

    def expand(self, values: dict[str, str]) -> str:
        def replace(match: re.Match[str]) -> str:
            operator, names = match.group(1), match.group(2).split(",")
            if operator in ("?", "&"):
                pairs = [f"{n}={quote(values[n], safe='')}" for n in names if n in values]
                return (operator + "&".join(pairs)) if pairs else ""
            value = values.get(names[0], "")
            # RFC 6570: only {+var} and {#var} pass reserved characters through; the
            # others escape all but the unreserved ones, so matching reads them back.
            safe = ":/?#[]@!$&'()*+,;=" if operator in ("+", "#") else ""
            prefix = {"#": "#", "/": "/"}.get(operator, "")
            return prefix + quote(value, safe=safe)

        return _EXPRESSION.sub(replace, self.template)
