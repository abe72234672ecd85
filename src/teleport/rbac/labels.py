"""Label selectors (a role's node_labels) and how they match a node's labels. Pure module.

Rules (as in the original product):
- `{'*': '*'}` matches every node, even one without labels;
- every key of the selector must be present on the node and match (AND);
- a list of values is OR; a value `'*'` accepts any value of a present key;
- a value `^...$` is a regular expression (full match); anything else is an anchored glob where
  `*` is the only wildcard;
- an empty selector matches nothing.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from teleport.errors import BadParameter
from teleport.rbac.templates import parse_template

WILDCARD = "*"

Selector = dict[str, list[str]]


def wildcard_selector() -> Selector:
    """The selector that matches every node."""
    return {WILDCARD: [WILDCARD]}


def is_regex(value: str) -> bool:
    """True when a selector value is a regular expression rather than a glob."""
    return len(value) >= 2 and value.startswith("^") and value.endswith("$")


@functools.lru_cache(maxsize=4096)
def compile_value(value: str) -> re.Pattern[str]:
    """Compile one selector value (regex or glob) to a pattern used with fullmatch.

    Every way a regex can fail to compile raises re.error: the re module itself raises
    OverflowError for `a{99999999999}` and RecursionError for thousands of nested groups.
    """
    if is_regex(value):
        try:
            return re.compile(value)
        except OverflowError as exc:
            raise re.error(str(exc)) from None
        except RecursionError:
            raise re.error("groups nested too deeply") from None
    # Only '*' is special in a glob; everything else, dots included, is literal.
    return re.compile(".*".join(re.escape(part) for part in value.split(WILDCARD)), re.DOTALL)


def value_matches(value: str, target: str) -> bool:
    """Whether one selector value accepts a node's label value."""
    if value == WILDCARD:
        return True
    try:
        pattern = compile_value(value)
    except re.error:
        # Only reachable for values produced by template expansion; fail closed.
        return False
    return pattern.fullmatch(target) is not None


def matches_all(selector: Selector) -> bool:
    """True when the selector holds `'*': '*'` and so matches every node."""
    return selector.get(WILDCARD) == [WILDCARD]


def match_labels(selector: Selector, labels: dict[str, str]) -> bool:
    """Whether a node with `labels` is selected."""
    if not selector:
        return False
    if matches_all(selector):
        return True
    for key, values in selector.items():
        if key not in labels:
            return False
        target = labels[key]
        if not any(value_matches(value, target) for value in values):
            return False
    return True


def parse_selector(data: Any, where: str) -> Selector:
    """Validate a node_labels mapping (values: a string or a list of strings) and normalize it
    to {key: [values]}; BadParameter names `where` and the offending key."""
    if not isinstance(data, dict):
        raise BadParameter(
            f"{where}: expected a mapping of label name to value(s) such as "
            f"{{'env': ['prod', 'stag*']}}, got {type(data).__name__}"
        )
    out: Selector = {}
    for key, raw in data.items():
        path = f"{where}.{key}"
        if not isinstance(key, str) or not key:
            raise BadParameter(f"{where}: label names must be non-empty strings, got {key!r}")
        if "{{" in key or "}}" in key:
            raise BadParameter(f"{path}: templates are supported in label values, not label names")
        if isinstance(raw, str):
            values = [raw]
        elif isinstance(raw, list):
            values = raw
        else:
            raise BadParameter(
                f"{path}: expected a string or a list of strings, got {type(raw).__name__} "
                f"{raw!r} (quote numbers and booleans in YAML)"
            )
        for i, value in enumerate(values):
            vpath = f"{path}[{i}]" if isinstance(raw, list) else path
            if not isinstance(value, str):
                raise BadParameter(
                    f"{vpath}: expected a string, got {type(value).__name__} {value!r} "
                    "(quote numbers and booleans in YAML)"
                )
            template = parse_template(value, vpath)
            if template.is_literal and is_regex(value):
                try:
                    compile_value(value)
                except re.error as exc:
                    raise BadParameter(f"{vpath}: bad regular expression {value!r}: {exc}") from None
        if key == WILDCARD and values != [WILDCARD]:
            raise BadParameter(
                f"{path}: the label name '*' may only be used as '*': '*' (match every node), "
                f"got {raw!r}"
            )
        out[key] = list(values)
    return out


def selector_to_dict(selector: Selector) -> dict[str, str | list[str]]:
    """The YAML/JSON form: single values as a plain string, several as a list."""
    return {k: (v[0] if len(v) == 1 else list(v)) for k, v in selector.items()}


def format_labels(labels: dict[str, str]) -> str:
    """Node labels for error messages: `env=prod,name=db-1` (or `<no labels>`)."""
    if not labels:
        return "<no labels>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
