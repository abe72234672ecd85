"""Fuzz: role label selectors (globs and regexes) and role templates."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.rbac.labels import (
    is_regex,
    match_labels,
    parse_selector,
    selector_to_dict,
    value_matches,
)
from teleport.rbac.templates import NAMESPACES, expand_all, parse_template
from tests.fuzz.strategies import expect_ok_or_error, json_like, nasty_strings

# Regex-ish text: the characters that make re.compile fail, recurse or overflow.
_regex_text = st.one_of(
    st.text(alphabet="^$()[]{}*+?|\\.a1,:<>=!P-", max_size=30).map(lambda s: f"^{s}$"),
    st.sampled_from(["^a{99999999999}$", "^" + "(" * 3000 + "$",
                     "^" + "(" * 1000 + "a" + ")" * 1000 + "$", "^(?P<a>x)(?P=b)$", "^[$",
                     "^\\$", "^$", "^(?<=a+)b$", "^\\N{NOPE}$"]),
)
_value = st.one_of(nasty_strings, _regex_text, st.text(alphabet="ab*.?[]{}", max_size=8))
_labels = st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=4)


@given(st.one_of(json_like, st.dictionaries(st.text(max_size=6), st.one_of(
    _value, st.lists(_value, max_size=3)), max_size=3)))
@example({"a": "^a{99999999999}$"})
@example({"a": "^" + "(" * 3000 + "$"})
@example({"a": ["^(db$"]})
def test_parse_selector(data: Any) -> None:
    """node_labels parse to {key: [values]} or BadParameter (never re.error, OverflowError or
    RecursionError); an accepted selector round-trips and matches without raising."""
    sel = expect_ok_or_error(parse_selector, data, "spec.allow.node_labels", errors=(BadParameter,))
    if sel is not None:
        assert all(isinstance(k, str) and all(isinstance(x, str) for x in v)
                   for k, v in sel.items())
        assert parse_selector(selector_to_dict(sel), "again") == sel
        assert match_labels(sel, {}) in (True, False)
        if any(v == [] for v in sel.values()):
            # documented: an empty value list matches nothing
            assert not match_labels(sel, {k: "x" for k in sel})


@given(st.dictionaries(st.text(max_size=5), st.one_of(_value, st.lists(_value, max_size=3)),
                       max_size=3), _labels)
def test_match_labels_total(selector: dict[str, Any], labels: dict[str, str]) -> None:
    """Matching never raises, even for values that are not valid regexes (as a template may
    expand to): those fail closed."""
    sel = {k: v if isinstance(v, list) else [v] for k, v in selector.items()}
    result = match_labels(sel, labels)
    assert isinstance(result, bool)
    if not sel:
        assert result is False


@given(_value, st.text(max_size=10))
def test_value_matches_total(value: str, target: str) -> None:
    """A single value never raises; a literal value without '*' matches only itself."""
    result = value_matches(value, target)
    assert isinstance(result, bool)
    if "*" not in value and not is_regex(value):
        assert result == (value == target)
        assert value_matches(value, value)


@given(st.text(alphabet="abc.*-", max_size=8), st.text(alphabet="abc.-", max_size=8))
def test_glob_semantics(glob: str, target: str) -> None:
    """A glob is anchored and '*' is its only wildcard: fnmatch-free reference check."""
    parts = glob.split("*")
    if len(parts) == 1:
        expected = glob == target
    else:
        expected = (target.startswith(parts[0]) and target[len(parts[0]):].endswith(parts[-1])
                    and len(target) >= len(parts[0]) + len(parts[-1]))
        if expected:
            rest = target[len(parts[0]):len(target) - len(parts[-1]) or None]
            for middle in parts[1:-1]:
                i = rest.find(middle)
                if i < 0:
                    expected = False
                    break
                rest = rest[i + len(middle):]
    if glob == "*" or is_regex(glob):
        return
    assert value_matches(glob, target) == expected


# --- templates ---------------------------------------------------------------------------------

_template_text = st.one_of(
    nasty_strings,
    st.text(alphabet="{}()[]\"'.internalexterngmail_ -@", max_size=40),
    st.builds(lambda p, b, s: f"{p}{{{{{b}}}}}{s}", st.text(max_size=4),
              st.text(alphabet="internalexterngmail._()[]\"' ", max_size=30), st.text(max_size=4)),
)
_traits = st.dictionaries(st.text(max_size=6), st.lists(st.text(max_size=8), max_size=3), max_size=3)


@given(st.one_of(_template_text, json_like), _traits)
@example("{{internal.logins}}", {"logins": ["a@b", ""]})
@example('{{email.local(external["http://x/claims/mail"])}}', {"http://x/claims/mail": ["a@b"]})
@example("{{}}", {})
@example("}}{{", {})
def test_parse_template(text: Any, traits: dict[str, list[str]]) -> None:
    """A template parses or raises BadParameter; a parsed one expands to strings with its
    prefix and suffix, and a literal expands to itself."""
    tpl = expect_ok_or_error(parse_template, text, "spec.allow.logins[0]", errors=(BadParameter,))
    if tpl is None:
        return
    out = tpl.expand(traits)
    assert all(isinstance(v, str) for v in out)
    if tpl.is_literal:
        assert out == [text]
    else:
        assert tpl.namespace in NAMESPACES
        assert all(v.startswith(tpl.prefix) and v.endswith(tpl.suffix) for v in out)
        assert len(out) <= len(traits.get(tpl.trait, []))


_ident = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,8}\Z")
_plain = st.text(alphabet="abc-_.@", max_size=5)


@given(_plain, st.sampled_from(NAMESPACES), _ident, _plain, st.booleans(),
       st.lists(st.text(alphabet="xyz@", min_size=1, max_size=6), max_size=3))
def test_template_round_trip(prefix: str, ns: str, trait: str, suffix: str, email: bool,
                             values: list[str]) -> None:
    """prefix{{ns.trait}}suffix parses to exactly those parts and expands value by value."""
    expr = f"{ns}.{trait}"
    if email:
        expr = f"email.local({expr})"
    tpl = parse_template(f"{prefix}{{{{ {expr} }}}}{suffix}")
    assert (tpl.prefix, tpl.namespace, tpl.trait, tpl.suffix) == (prefix, ns, trait, suffix)
    local = [v.split("@", 1)[0] if email else v for v in values]
    assert tpl.expand({trait: values}) == [f"{prefix}{v}{suffix}" for v in local if v]


@given(st.lists(st.one_of(_template_text, st.text(max_size=6)), max_size=4), _traits)
def test_expand_all(values: list[str], traits: dict[str, list[str]]) -> None:
    """expand_all yields distinct strings or BadParameter for a bad template."""
    out = expect_ok_or_error(expand_all, values, traits, errors=(BadParameter,))
    if out is not None:
        assert len(out) == len(set(out)) and all(isinstance(v, str) for v in out)
