"""Fuzz: resource YAML/JSON as `tctl create` and the auth API read it (role, user, token, node)."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.rbac.presets import preset_roles
from teleport.types.resources import (
    Metadata,
    ProvisionToken,
    ProxyServer,
    Resource,
    Server,
    User,
    parse_time,
)
from teleport.types.role import Role
from tests.fuzz.strategies import expect_ok_or_error, json_like, mutated, nasty_numbers

VALID_ROLE: dict[str, Any] = {
    "kind": "role",
    "version": "v3",
    "metadata": {"name": "dev", "description": "d", "labels": {"team": "x"},
                 "expires": "2030-01-02T03:04:05Z"},
    "spec": {
        "options": {"max_session_ttl": "8h", "forward_agent": True, "client_idle_timeout": "90s",
                    "cert_format": "standard", "max_connections": 3, "max_sessions": 2},
        "allow": {
            "logins": ["{{internal.logins}}", "root"],
            "node_labels": {"env": ["prod", "stag*"], "name": "^db-[0-9]+$"},
            "rules": [{"resources": ["session"], "verbs": ["list", "read"]}],
        },
        "deny": {"logins": ["nobody"], "node_labels": {"secret": "*"},
                 "rules": [{"resources": ["*"], "verbs": ["delete"], "where": "x"}]},
    },
}
VALID_USER: dict[str, Any] = {
    "kind": "user", "version": "v2",
    "metadata": {"name": "alice", "labels": {"a": "b"}},
    "spec": {"roles": ["admin", "dev"], "traits": {"logins": ["alice", "root"]},
             "created_at": "2026-01-01T00:00:00Z"},
}
VALID_TOKEN: dict[str, Any] = {
    "kind": "token", "version": "v2",
    "metadata": {"name": "abcdef0123456789", "expires": "2030-01-01T00:00:00Z"},
    "spec": {"roles": ["node", "proxy"]},
}
VALID_NODE: dict[str, Any] = {
    "kind": "node", "version": "v2",
    "metadata": {"name": "6a8c0e4e-uuid", "labels": {"env": "prod"}},
    "spec": {"addr": "10.0.0.5:3022", "hostname": "node-1",
             "cmd_labels": {"arch": {"period": 60, "command": ["uname", "-m"], "result": "x86"}}},
}

# Values the review named: huge and NaN times, "nan" TTLs, non-string logins and roles.
_REVIEW_VALUES = [1e20, -1e20, float("nan"), float("inf"), "nan", True, 10**400, [1, 2],
                  {"a": 1}, "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", ""]


def _exercise(res: Resource) -> None:
    """Everything a server reads from an accepted resource works and has the documented types."""
    assert isinstance(res.name, str) and res.name.strip()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in res.metadata.labels.items())
    d = res.to_dict()
    assert type(res).from_dict(copy.deepcopy(d)) == res
    assert type(res).from_json(res.to_json()) == res
    if isinstance(res, User):
        assert all(isinstance(r, str) for r in res.roles)
        assert all(isinstance(x, str) for v in res.traits.values() for x in v)
        assert all(isinstance(x, str) for x in res.logins)
    if isinstance(res, ProvisionToken):
        assert all(isinstance(r, str) for r in res.roles)


_KINDS: list[tuple[type[Resource], dict[str, Any]]] = [
    (User, VALID_USER), (ProvisionToken, VALID_TOKEN), (Server, VALID_NODE),
]


@given(st.sampled_from(_KINDS).flatmap(lambda kv: st.tuples(st.just(kv[0]), mutated(kv[1]))))
def test_mutated_resources(case: tuple[type[Resource], Any]) -> None:
    """A valid user/token/node with one value replaced by junk parses (and then works fully)
    or raises BadParameter."""
    cls, data = case
    res = expect_ok_or_error(cls.from_dict, data, errors=(BadParameter,))
    if res is not None:
        _exercise(res)


@given(st.sampled_from([User, ProvisionToken, Server, ProxyServer, Role]), json_like)
def test_random_trees(cls: type[Resource], data: Any) -> None:
    """A random JSON-like tree is a resource or a BadParameter."""
    res = expect_ok_or_error(cls.from_dict, data, errors=(BadParameter,))
    if res is not None:
        _exercise(res)


@given(st.sampled_from([User, ProvisionToken, Server, Role]), st.binary(max_size=100))
@example(User, b"[" * 100000)
@example(Role, b'{"kind": "role", "metadata": {"name": "x", "expires": 1e400}}')
@example(User, b"\xff\xfe")
def test_from_json_bytes(cls: type[Resource], raw: bytes) -> None:
    """Arbitrary bytes (what a request body or a damaged backend row holds) never crash from_json."""
    res = expect_ok_or_error(cls.from_json, raw, errors=(BadParameter,))
    if res is not None:
        _exercise(res)


@given(st.sampled_from(["metadata.expires", "spec.roles", "spec.traits", "spec.traits.logins",
                        "metadata.name", "metadata.labels.env", "spec.cmd_labels"]),
       st.sampled_from(_REVIEW_VALUES))
def test_review_values(path: str, value: Any) -> None:
    """The values of the outside review, at the paths that read them, never get past from_dict
    as something a server cannot use."""
    for cls, valid in _KINDS:
        data = copy.deepcopy(valid)
        node = data
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node[last] = value
        res = expect_ok_or_error(cls.from_dict, data, errors=(BadParameter,))
        if res is not None:
            _exercise(res)


@given(st.one_of(nasty_numbers, json_like,
                 st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())))
@example(1e20)
@example(float("nan"))
@example(True)
@example("9999-12-31T23:59:59-01:00")
def test_parse_time(value: Any) -> None:
    """parse_time gives an aware UTC datetime to the second, or BadParameter."""
    dt = expect_ok_or_error(parse_time, value, errors=(BadParameter,))
    if dt is not None:
        assert dt.utcoffset() is not None and dt.utcoffset().total_seconds() == 0
        assert dt.microsecond == 0
        assert parse_time(Metadata("x", expires=dt).to_dict()["expires"]) == dt


def test_expires_1e20_is_bad_parameter() -> None:
    """The review's 500: metadata.expires 1e20."""
    for cls in (User, Role):
        data = copy.deepcopy(VALID_USER if cls is User else VALID_ROLE)
        data["metadata"]["expires"] = 1e20
        try:
            cls.from_dict(data)
        except BadParameter as exc:
            assert "metadata.expires" in exc.message
        else:
            raise AssertionError("expires 1e20 accepted")


def test_non_string_roles_are_refused() -> None:
    """`roles: 5` and `roles: [1]` are refused; one string is a list of one."""
    for bad in (5, [1], {"admin": 1}, [""]):
        data = copy.deepcopy(VALID_USER)
        data["spec"]["roles"] = bad
        assert expect_ok_or_error(User.from_dict, data, errors=(BadParameter,)) is None
    data = copy.deepcopy(VALID_USER)
    data["spec"]["roles"] = "admin"
    assert User.from_dict(data).roles == ["admin"]
    assert data["spec"]["roles"] == "admin"  # the caller's dict is left alone


# --- roles -------------------------------------------------------------------------------------


def test_valid_role_parses() -> None:
    """The base of the role mutations is valid and round-trips."""
    role = Role.from_dict(copy.deepcopy(VALID_ROLE))
    assert role.allow.logins == ["{{internal.logins}}", "root"]
    _exercise(role)


@given(mutated(VALID_ROLE))
@example({**VALID_ROLE, "spec": {"options": {"max_session_ttl": "9" * 400}}})
@example({**VALID_ROLE, "spec": {"options": {"client_idle_timeout": float("nan")}}})
@example({**VALID_ROLE, "spec": {"allow": {"node_labels": {"a": "^a{99999999999}$"}}}})
@example({**VALID_ROLE, "spec": {"allow": {"node_labels": {"a": "^" + "(" * 3000 + "$"}}}})
@example({**VALID_ROLE, "spec": {"allow": {"node_labels": {"a": "^" + "(" * 1000 + ")" * 1000 + "$"}}}})
@example({**VALID_ROLE, "metadata": {"name": "x", "expires": 1e20}})
def test_mutated_role(data: Any) -> None:
    """A valid role with one value replaced by junk parses and round-trips, or raises BadParameter."""
    role = expect_ok_or_error(Role.from_dict, data, errors=(BadParameter,))
    if role is not None:
        _exercise(role)
        assert math.isfinite(role.options.max_session_ttl)
        assert math.isfinite(role.options.client_idle_timeout)


@given(st.text(max_size=200))
def test_role_yaml_text(text: str) -> None:
    """`tctl create` of any YAML text: whatever safe_load returns is a role or a BadParameter."""
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return
    role = expect_ok_or_error(Role.from_dict, data, errors=(BadParameter,))
    if role is not None:
        _exercise(role)


_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
_login = st.one_of(_name, st.sampled_from(["{{internal.logins}}", "{{external.unix}}",
                                           "pre-{{internal.logins}}-suf",
                                           '{{email.local(external["mail"])}}']))
_label_value = st.one_of(_name, st.sampled_from(["*", "prod*", "^db-[0-9]+$", "{{internal.env}}"]))
_duration = st.one_of(st.sampled_from(["1h", "30m", "90s", "1h30m", "500ms", "0s"]),
                      st.floats(0, 10**6).map(lambda f: round(f, 3)))


@st.composite
def _conditions(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"logins": draw(st.lists(_login, max_size=3))}
    if draw(st.booleans()):
        out["node_labels"] = draw(st.dictionaries(
            _name, st.one_of(_label_value, st.lists(_label_value, min_size=1, max_size=3)),
            max_size=3))
    out["rules"] = draw(st.lists(st.fixed_dictionaries(
        {"resources": st.lists(st.sampled_from(["role", "user", "node", "*"]), min_size=1, max_size=2),
         "verbs": st.lists(st.sampled_from(["list", "read", "create", "*"]), min_size=1, max_size=2)},
        optional={"where": _name}), max_size=2))
    return out


valid_roles = st.builds(
    lambda name, opts, allow, deny, labels: {
        "kind": "role", "version": "v3",
        "metadata": {"name": name, "labels": labels},
        "spec": {"options": opts, "allow": allow, "deny": deny},
    },
    _name.filter(lambda n: n.strip()),
    st.fixed_dictionaries({}, optional={
        "max_session_ttl": _duration, "client_idle_timeout": _duration,
        "forward_agent": st.booleans(), "port_forwarding": st.booleans(),
        "cert_format": st.sampled_from(["standard", "oldssh"]),
        "max_connections": st.integers(0, 10**6), "max_sessions": st.integers(0, 10**6)}),
    _conditions(), _conditions(),
    st.dictionaries(_name, _name, max_size=2),
)


@given(valid_roles)
def test_role_round_trip(data: dict[str, Any]) -> None:
    """Role.from_dict(role.to_dict()) == role, through dicts, JSON and YAML."""
    role = Role.from_dict(data)
    again = Role.from_dict(role.to_dict())
    assert again == role and again.to_dict() == role.to_dict()
    assert Role.from_json(role.to_json()) == role
    assert Role.from_dict(yaml.safe_load(yaml.safe_dump(role.to_dict()))) == role
    assert json.loads(role.to_json())["spec"] == role.to_dict()["spec"]


def test_presets_round_trip() -> None:
    """The preset roles are inside the grammar the fuzzer explores."""
    for role in preset_roles():
        assert Role.from_dict(copy.deepcopy(role.to_dict())) == role
