"""Label selectors and templates, table-driven."""

from __future__ import annotations

import pytest

from teleport.errors import BadParameter
from teleport.rbac.labels import match_labels, parse_selector, selector_to_dict
from teleport.rbac.templates import expand_all, parse_template

NODE = {"env": "prod", "name": "db-12", "region": "eu-west-1", "os": "linux"}

MATCH_CASES = [
    pytest.param({"*": "*"}, NODE, True, id="wildcard-matches-all"),
    pytest.param({"*": "*"}, {}, True, id="wildcard-matches-node-without-labels"),
    pytest.param({}, NODE, False, id="empty-selector-matches-nothing"),
    pytest.param({}, {}, False, id="empty-selector-no-labels"),
    pytest.param({"env": "prod"}, NODE, True, id="exact-value"),
    pytest.param({"env": "pro"}, NODE, False, id="glob-is-anchored-no-prefix-match"),
    pytest.param({"env": "rod"}, NODE, False, id="glob-is-anchored-no-suffix-match"),
    pytest.param({"env": "pr*"}, NODE, True, id="glob-star-suffix"),
    pytest.param({"region": "eu-*-1"}, NODE, True, id="glob-star-middle"),
    pytest.param({"region": "us-*"}, NODE, False, id="glob-no-match"),
    pytest.param({"name": "db.12"}, NODE, False, id="glob-dot-is-literal"),
    pytest.param({"env": "*"}, NODE, True, id="value-wildcard-key-present"),
    pytest.param({"team": "*"}, NODE, False, id="value-wildcard-key-missing"),
    pytest.param({"team": "a"}, NODE, False, id="missing-label-key"),
    pytest.param({"env": ["staging", "prod"]}, NODE, True, id="list-is-or"),
    pytest.param({"env": ["staging", "dev"]}, NODE, False, id="list-none-match"),
    pytest.param({"env": []}, NODE, False, id="empty-value-list-matches-nothing"),
    pytest.param({"env": "prod", "os": "linux"}, NODE, True, id="keys-are-and-all-match"),
    pytest.param({"env": "prod", "os": "windows"}, NODE, False, id="keys-are-and-one-fails"),
    pytest.param({"name": "^db-[0-9]+$"}, NODE, True, id="regex-full-match"),
    pytest.param({"name": "^db-[0-9]$"}, NODE, False, id="regex-must-match-whole-value"),
    pytest.param({"name": "^db|web$"}, NODE, False, id="regex-alternation-still-full-match"),
    pytest.param({"env": ["^stag.*$", "pr*"]}, NODE, True, id="list-mixing-regex-and-glob"),
    pytest.param({"env": "PROD"}, NODE, False, id="case-sensitive"),
]


@pytest.mark.parametrize(("selector", "labels", "expected"), MATCH_CASES)
def test_match_labels(selector: dict, labels: dict[str, str], expected: bool) -> None:
    assert match_labels(parse_selector(selector, "node_labels"), labels) is expected


SELECTOR_ERRORS = [
    pytest.param({"*": "prod"}, "node_labels.*: the label name '*' may only", id="star-key-other-value"),
    pytest.param({"*": ["*", "x"]}, "node_labels.*: the label name '*'", id="star-key-list"),
    pytest.param({"name": "^db-[$"}, "node_labels.name: bad regular expression", id="bad-regex"),
    pytest.param({"env": 3}, "node_labels.env: expected a string or a list", id="int-value"),
    pytest.param({"env": ["a", 3]}, "node_labels.env[1]: expected a string", id="int-in-list"),
    pytest.param(["env"], "node_labels: expected a mapping", id="not-a-mapping"),
    pytest.param({"env": "{{internal.x"}, "node_labels.env: '{{internal.x'", id="bad-template-value"),
    pytest.param({"{{internal.k}}": "x"}, "not label names", id="template-in-key"),
]


@pytest.mark.parametrize(("selector", "message"), SELECTOR_ERRORS)
def test_parse_selector_errors(selector: object, message: str) -> None:
    with pytest.raises(BadParameter) as info:
        parse_selector(selector, "node_labels")
    assert message in str(info.value)


def test_selector_to_dict_round_trip() -> None:
    sel = parse_selector({"env": ["prod"], "os": ["a", "b"], "*": "*"}, "x")
    assert selector_to_dict(sel) == {"env": "prod", "os": ["a", "b"], "*": "*"}
    assert parse_selector(selector_to_dict(sel), "x") == sel


TRAITS = {
    "logins": ["alice", "admin"],
    "groups": ["dev", "ops"],
    "email": ["alice@example.com"],
    "http://schemas/claims/name": ["al"],
    "empty": [],
}

EXPAND_CASES = [
    pytest.param(["{{internal.logins}}"], ["alice", "admin"], id="internal-logins"),
    pytest.param(["{{ internal.logins }}"], ["alice", "admin"], id="spaces-inside-braces"),
    pytest.param(["{{external.groups}}"], ["dev", "ops"], id="external-trait"),
    pytest.param(["{{internal.groups}}"], ["dev", "ops"], id="internal-other-trait"),
    pytest.param(["{{external.missing}}"], [], id="missing-trait-drops"),
    pytest.param(["{{external.empty}}"], [], id="empty-trait-drops"),
    pytest.param(["root"], ["root"], id="literal-passes-through"),
    pytest.param(["root", "{{internal.logins}}", "alice"], ["root", "alice", "admin"], id="dedup-keeps-order"),
    pytest.param(["u-{{external.groups}}-x"], ["u-dev-x", "u-ops-x"], id="prefix-and-suffix"),
    pytest.param(['{{external["http://schemas/claims/name"]}}'], ["al"], id="bracket-trait-name"),
    pytest.param(["{{email.local(external.email)}}"], ["alice"], id="email-local"),
    pytest.param(["{{external.missing}}", "bob"], ["bob"], id="missing-then-literal"),
]


@pytest.mark.parametrize(("values", "expected"), EXPAND_CASES)
def test_expand(values: list[str], expected: list[str]) -> None:
    assert expand_all(values, TRAITS) == expected


TEMPLATE_ERRORS = [
    pytest.param("{{internal.logins", "unbalanced", id="unclosed"),
    pytest.param("internal.logins}}", "unbalanced", id="unopened"),
    pytest.param("{{}}", "empty", id="empty-expression"),
    pytest.param("{{logins}}", "not a valid template", id="no-namespace"),
    pytest.param("{{internal.}}", "not a valid template", id="no-trait-name"),
    pytest.param("{{secret.logins}}", "unknown namespace 'secret'", id="unknown-namespace"),
    pytest.param("{{a.b}}{{c.d}}", "exactly one", id="two-expressions"),
    pytest.param("}}x{{", "closes", id="reversed-braces"),
    pytest.param("{{upper(internal.logins)}}", "unknown function 'upper'", id="unknown-function"),
]


@pytest.mark.parametrize(("text", "message"), TEMPLATE_ERRORS)
def test_template_errors(text: str, message: str) -> None:
    with pytest.raises(BadParameter) as info:
        parse_template(text, "spec.allow.logins[0]")
    assert str(info.value).startswith("spec.allow.logins[0]: ")
    assert message in str(info.value)
