"""AuthServer role/user resource methods and node visibility, on a real SQLite backend."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest

from teleport.auth.server import AuthServer, check_traits, server_labels
from teleport.auth.store import ClusterStore
from teleport.backend.sqlite import SQLiteBackend
from teleport.errors import AccessDenied, AlreadyExists, BadParameter, NotFound
from teleport.types.resources import Metadata, Server, User
from teleport.types.role import Role


@pytest.fixture
async def auth() -> AsyncIterator[AuthServer]:
    with tempfile.TemporaryDirectory() as d:
        backend = await SQLiteBackend.open(os.path.join(d, "state.db"))
        try:
            yield await AuthServer.init(ClusterStore(backend), "unit", second_factor="off")
        finally:
            await backend.close()


def role(name: str, **allow: object) -> Role:
    return Role.from_dict({"kind": "role", "version": "v3", "metadata": {"name": name},
                           "spec": {"allow": allow}})


async def add_user(auth: AuthServer, name: str, roles: list[str], **traits: list[str]) -> None:
    user = User(metadata=Metadata(name=name), spec={"roles": roles, "traits": traits})
    assert await auth.put_user(user, replace=False) is True


def node(name: str, labels: dict[str, str], arch: str = "x86") -> Server:
    return Server(metadata=Metadata(name=name, labels=labels),
                  spec={"hostname": name, "addr": "127.0.0.1:3022",
                        "cmd_labels": {"arch": {"period": "1m", "command": ["uname"], "result": arch + "\n"}}})


async def test_presets_exist_and_put_role_create_vs_replace(auth: AuthServer) -> None:
    names = {r.name for r in await auth.store.list_roles()}
    assert {"admin", "access", "auditor", "editor"} <= names
    assert await auth.put_role(role("dev", logins=["dev"]), replace=False) is True
    with pytest.raises(AlreadyExists, match="tctl create -f"):
        await auth.put_role(role("dev", logins=["other"]), replace=False)
    assert (await auth.store.get_role("dev")).allow.logins == ["dev"]
    assert await auth.put_role(role("dev", logins=["other"]), replace=True) is False
    assert (await auth.store.get_role("dev")).allow.logins == ["other"]
    assert await auth.put_role(role("new", logins=["n"]), replace=True) is True


async def test_delete_role_in_use_names_the_users(auth: AuthServer) -> None:
    await auth.put_role(role("dev", logins=["dev"]), replace=False)
    await add_user(auth, "zed", ["dev"])
    await add_user(auth, "amy", ["access", "dev"])
    with pytest.raises(BadParameter, match=r"in use by user\(s\) amy, zed"):
        await auth.delete_role("dev")
    await auth.update_user("zed", roles=["access"])
    await auth.update_user("amy", roles=["access"])
    await auth.delete_role("dev")
    with pytest.raises(NotFound):
        await auth.store.get_role("dev")
    with pytest.raises(NotFound):
        await auth.delete_role("dev")


async def test_update_user_checks_roles_and_traits(auth: AuthServer) -> None:
    await add_user(auth, "amy", ["access"], logins=["amy"])
    with pytest.raises(BadParameter, match=r"unknown role\(s\) 'nope'.*existing roles: access, admin"):
        await auth.update_user("amy", roles=["access", "nope"])
    with pytest.raises(BadParameter, match="at least one role"):
        await auth.update_user("amy", roles=[])
    with pytest.raises(BadParameter, match="list of strings"):
        await auth.update_user("amy", traits={"logins": [1]})  # type: ignore[list-item]
    user = await auth.update_user("amy", roles=["auditor"], traits={"logins": ["a"], "team": "x"})  # type: ignore[dict-item]
    assert user.roles == ["auditor"] and user.traits == {"logins": ["a"], "team": ["x"]}
    assert (await auth.store.get_user("amy")).traits == {"logins": ["a"], "team": ["x"]}
    with pytest.raises(NotFound):
        await auth.update_user("ghost", roles=["access"])


async def test_put_user_create_replace_and_refusals(auth: AuthServer) -> None:
    await add_user(auth, "amy", ["access"], logins=["amy"])
    created = (await auth.store.get_user("amy")).spec["created_at"]
    with pytest.raises(AlreadyExists, match="tctl create -f"):
        await add_user(auth, "amy", ["access"])
    again = User(metadata=Metadata(name="amy"), spec={"roles": ["editor"], "traits": {"logins": ["x"]}})
    assert await auth.put_user(again, replace=True) is False
    stored = await auth.store.get_user("amy")
    assert stored.roles == ["editor"] and stored.logins == ["x"] and stored.spec["created_at"] == created
    for spec, msg in (({"roles": ["access"], "password": "x"}, "password"),
                      ({"roles": []}, "at least one role"),
                      ({"roles": ["ghost"]}, "unknown role")):
        with pytest.raises(BadParameter, match=msg):
            await auth.put_user(User(metadata=Metadata(name="bob"), spec=spec), replace=True)


async def test_visible_nodes_follow_current_roles_and_command_labels(auth: AuthServer) -> None:
    await auth.store.upsert_node(node("prod1", {"env": "prod"}), 60)
    await auth.store.upsert_node(node("dev1", {"env": "dev"}, arch="arm"), 60)
    await auth.put_role(role("devs", logins=["root"], node_labels={"env": "dev"}), replace=False)
    await add_user(auth, "amy", ["devs"])
    assert [n.name for n in await auth.visible_nodes("amy")] == ["dev1"]
    await auth.put_role(role("devs", logins=["root"], node_labels={"arch": "x86"}), replace=True)
    assert [n.name for n in await auth.visible_nodes("amy")] == ["prod1"]
    await auth.update_user("amy", roles=["access"])  # internal.logins with no logins: nothing
    assert await auth.visible_nodes("amy") == []
    await auth.update_user("amy", traits={"logins": ["amy"]})
    assert sorted(n.name for n in await auth.visible_nodes("amy")) == ["dev1", "prod1"]
    with pytest.raises(AccessDenied, match="does not exist"):
        await auth.visible_nodes("ghost")


def test_server_labels_and_check_traits() -> None:
    assert server_labels(node("n", {"env": "prod"})) == {"env": "prod", "arch": "x86"}
    assert check_traits({"a": "b", "c": ["d", "e"]}) == {"a": ["b"], "c": ["d", "e"]}
    with pytest.raises(BadParameter):
        check_traits(["not", "a", "map"])
