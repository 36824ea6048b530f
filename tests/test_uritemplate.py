"""RFC 6570 URI templates as resource templates use them: matching a URI to its
variables, expanding variables to a URI, and refusing what is not supported."""

from __future__ import annotations

import pytest

from trio_mcp._uritemplate import UriTemplate


@pytest.mark.parametrize(
    ("template", "uri", "variables"),
    [
        ("test://items/{id}", "test://items/42", {"id": "42"}),
        ("test://items/{id}", "test://items/a%20b", {"id": "a b"}),
        ("file:///{+path}", "file:///etc/hosts", {"path": "etc/hosts"}),
        ("doc://page{#section}", "doc://page#intro", {"section": "intro"}),
        ("repo://x{/name}", "repo://x/trio", {"name": "trio"}),
        ("search://q{?term,limit}", "search://q?term=cat&limit=3", {"term": "cat", "limit": "3"}),
        ("search://q{?term,limit}", "search://q?term=cat", {"term": "cat"}),
        ("search://q{?term,limit}", "search://q", {}),
        ("user://{org}/{name}", "user://python/trio", {"org": "python", "name": "trio"}),
    ],
)
def test_a_matching_uri_yields_its_variables(
    template: str, uri: str, variables: dict[str, str]
) -> None:
    assert UriTemplate(template).match(uri) == variables


@pytest.mark.parametrize(
    ("template", "uri"),
    [
        ("test://items/{id}", "test://items/"),
        ("test://items/{id}", "test://items/4/2"),  # a simple variable stops at "/"
        ("test://items/{id}", "test://other/42"),
        ("repo://x{/name}", "repo://x"),
    ],
)
def test_a_uri_outside_the_template_does_not_match(template: str, uri: str) -> None:
    assert UriTemplate(template).match(uri) is None


@pytest.mark.parametrize(
    ("template", "variables", "uri"),
    [
        ("test://items/{id}", {"id": "a b/c"}, "test://items/a%20b%2Fc"),
        ("file:///{+path}", {"path": "etc/hosts"}, "file:///etc/hosts"),
        ("search://q{?term,limit}", {"term": "a&b"}, "search://q?term=a%26b"),
        ("search://q{?term,limit}", {}, "search://q"),
    ],
)
def test_expansion_escapes_each_value_for_its_place(
    template: str, variables: dict[str, str], uri: str
) -> None:
    assert UriTemplate(template).expand(variables) == uri


def test_expanding_then_matching_gives_the_variables_back() -> None:
    template = UriTemplate("user://{org}/{name}{?tab}")
    variables = {"org": "a b", "name": "c,d", "tab": "x=y"}
    assert template.match(template.expand(variables)) == variables


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("x://{a.b}", "identifier"),
        ("x://{a}/{a}", "twice"),
        ("x://{a,b}", "one variable"),
        ("x://{list*}", "unsupported"),
        ("x://{name:3}", "unsupported"),
        ("x://{;params}", "unsupported"),
        ("x://{?q}/more", "end the template"),
        ("x://{open", "unsupported"),
    ],
)
def test_an_unsupported_template_is_refused_with_a_reason(template: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        UriTemplate(template)
