"""Names in API paths: each kind's syntax, and api_path as the one place that quotes them."""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.types.names import CHECKS, api_path, check_host_id, check_name, check_sid

TEMPLATES = {
    "user": "/v1/users/{user}/certs",
    "role": "/v1/roles/{role}",
    "token": "/v1/invites/{token}/complete",
    "sid": "/v1/sessions/{sid}/recording",
    "host_id": "/v1/hosts/{host_id}",
    "ca_type": "/v1/authorities/{ca_type}",
    "cluster": "/v1/trustedclusters/{cluster}",
}


@pytest.mark.parametrize("kind,value", [
    ("user", "alice"), ("user", "alice@example.com"), ("user", "a.b-c_d+e"),
    ("role", "admin"), ("role", "dev:ops"), ("token", "0f" * 16),
    ("sid", str(uuid.uuid4())), ("host_id", str(uuid.uuid4())), ("ca_type", "host"),
])
def test_valid_names_pass_unchanged(kind: str, value: str) -> None:
    assert check_name(kind, value) == value
    assert api_path(TEMPLATES[kind], **{kind: value}).count("/") == TEMPLATES[kind].count("/")


@pytest.mark.parametrize("kind,value", [
    ("user", ""), ("user", "a/b"), ("user", ".."), ("user", "."), ("user", "a b"), ("user", "a\x00"),
    ("user", "x" * 256), ("role", "../admin"), ("token", "..%2F..%2Fv1%2Fnodes"),
    ("token", "../../v1/nodes"), ("sid", "../../etc/passwd"), ("host_id", "not-a-uuid"),
    ("ca_type", "user/../../x"),
])
def test_invalid_names_are_refused_with_the_kind_named(kind: str, value: str) -> None:
    with pytest.raises(BadParameter) as err:
        check_name(kind, value)
    assert kind.replace("_", " ").split()[0] in err.value.message or "id" in err.value.message


def test_host_id_and_sid_accept_uuids_only() -> None:
    u = str(uuid.uuid4())
    assert check_host_id(u) == u and check_sid(u) == u
    with pytest.raises(BadParameter):
        check_host_id("12345678")


def test_api_path_needs_exactly_the_template_fields() -> None:
    with pytest.raises(KeyError):
        api_path("/v1/users/{user}", role="x")
    with pytest.raises(KeyError):
        api_path("/v1/users/{user}/{sid}", user="x")


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(CHECKS)),
    value=st.one_of(
        st.text(max_size=300),
        st.text(alphabet="ab0./%2F@+=,~:-_\x00 ?#", max_size=20),
        st.uuids().map(str),
    ),
)
def test_api_path_never_changes_the_route(kind: str, value: str) -> None:
    """Whatever a caller sends, the path either keeps its segments or is refused."""
    template = TEMPLATES[kind]
    try:
        path = api_path(template, **{kind: value})
    except BadParameter:
        return
    segments = path.split("/")
    assert len(segments) == len(template.split("/"))
    assert not any(s in (".", "..") for s in segments)
    assert "?" not in path and "#" not in path
    assert value in {unquote(s) for s in segments}


@pytest.mark.parametrize("value", ["root,", "a b", "", "-x", ".x", "a=b", "a~b", "a:b", "x" * 256])
def test_new_user_names_follow_one_rule(value: str) -> None:
    from teleport.types.names import check_new_user_name

    with pytest.raises(BadParameter, match="no commas or spaces"):
        check_new_user_name(value)


@pytest.mark.parametrize("value", ["alice", "alice@example.com", "a.b-c_d+e", "_svc"])
def test_good_new_user_names(value: str) -> None:
    from teleport.types.names import check_new_user_name

    assert check_new_user_name(value) == value


def test_logins_checked_and_deduplicated() -> None:
    from teleport.types.names import check_logins

    assert check_logins(["root", "joe", "root", "joe"]) == ["root", "joe"]
    for bad in ["", "a b", "-oProxyCommand", "a,b", "x" * 33, "a/b", ".hidden"]:
        with pytest.raises(BadParameter, match="invalid login"):
            check_logins(["root", bad])
