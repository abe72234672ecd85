"""The cache's pure core: a snapshot checked and decided on with auth's own rbac code (the same
answers auth gives), and the local cache failing closed when it was never filled."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest

from teleport import defaults
from teleport.auth.api_cache import snapshot_version
from teleport.auth.client import AuthClient
from teleport.errors import AccessDenied, BadParameter, ConnectionProblem
from teleport.rbac import access
from teleport.service.cache import LocalCache, cache_path
from teleport.service.cachedata import CacheData, labels_of
from teleport.types.role import Role
from tests.helpers import free_port


def role(name: str, allow: dict[str, Any], deny: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"allow": allow}
    if deny:
        spec["deny"] = deny
    return Role.from_dict({"kind": "role", "version": "v3", "metadata": {"name": name},
                           "spec": spec}).to_dict()


def node(name: str, labels: dict[str, str], cmd: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "node", "version": "v2", "metadata": {"name": name, "labels": labels},
            "spec": {"hostname": name, "addr": "127.0.0.1:3022",
                     "cmd_labels": {k: {"command": ["x"], "result": v} for k, v in (cmd or {}).items()}}}


def snapshot(**over: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "cluster_name": "c1",
        "session_recording": "proxy",
        "authorities": [{"kind": "cert_authority", "spec": {"type": "user", "checking_keys": []}}],
        "roles": [
            role("dev", {"logins": ["{{internal.logins}}", "dev"], "node_labels": {"env": "dev"}}),
            role("no-root", {}, {"logins": ["root"]}),
            role("uptime", {"logins": ["ops"], "node_labels": {"uptime": "up"}}),
        ],
        "users": [
            {"name": "alice", "roles": ["dev"], "traits": {"logins": ["alice", "root"]}},
            {"name": "bob", "roles": ["dev", "no-root", "gone"], "traits": {"logins": ["root"]}},
            {"name": "carol", "roles": ["uptime"], "traits": {}},
        ],
        "nodes": [node("n-dev", {"env": "dev"}), node("n-prod", {"env": "prod"}),
                  node("n-up", {}, {"uptime": " up\n"})],
    }
    snap.update(over)
    snap["version"] = snapshot_version(snap)
    return snap


def test_decisions_are_auths_decisions() -> None:
    data = CacheData.parse(snapshot(), "c1")
    assert data.session_recording == "proxy"
    opts = data.check_ssh_access("alice", "root", {"env": "dev"})
    assert opts["login"] == "root" and opts["roles"] == ["dev"]
    roles = {r["metadata"]["name"]: Role.from_dict(r) for r in snapshot()["roles"]}
    # the same function auth calls, on the same inputs, gives the same answer
    rs = access.roleset_of(["dev"], {"logins": ["alice", "root"]}, roles)
    assert opts == access.check_ssh_access("alice", ["dev"], rs, "root", {"env": "dev"})
    with pytest.raises(AccessDenied, match="role 'no-root' denies login 'root'"):
        data.check_ssh_access("bob", "root", {"env": "dev"})  # deny wins; a missing role is skipped
    with pytest.raises(AccessDenied):
        data.check_ssh_access("alice", "root", {"env": "prod"})
    with pytest.raises(AccessDenied, match="does not exist"):
        data.check_ssh_access("mallory", "root", {"env": "dev"})
    assert data.session_options("bob")["roles"] == ["dev", "no-root", "gone"]


def test_visible_nodes_use_static_and_command_labels() -> None:
    data = CacheData.parse(snapshot(), "c1")
    assert [n["metadata"]["name"] for n in data.visible_nodes("alice")] == ["n-dev"]
    assert [n["metadata"]["name"] for n in data.visible_nodes("carol")] == ["n-up"]
    assert labels_of(snapshot()["nodes"][2]) == {"uptime": "up"}
    with pytest.raises(AccessDenied):
        data.visible_nodes("nobody-here")


@pytest.mark.parametrize("change, message", [
    ({"cluster_name": "other"}, "of cluster 'other'"),
    ({"version": ""}, "missing version"),
    ({"roles": "x"}, "roles must be a list"),
    ({"users": [{"name": 3}]}, "needs a name"),
    ({"authorities": {}}, "authorities"),
    ({"nodes": [1]}, "nodes must be"),
])
def test_a_bad_snapshot_is_refused(change: dict[str, Any], message: str) -> None:
    snap = snapshot()
    snap.update(change)
    with pytest.raises(BadParameter, match=message):
        CacheData.parse(snap, "c1")


def test_version_follows_content_only() -> None:
    a, b = snapshot(), snapshot()
    assert a["version"] == b["version"]
    assert snapshot(session_recording="node")["version"] != a["version"]


def _client() -> AuthClient:
    # nothing listens there: every call fails as with every auth server down
    return AuthClient([f"127.0.0.1:{free_port()}"], ssl.create_default_context(), retry_rounds=1)


def test_never_filled_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "CACHE_FIRST_FILL_TIMEOUT", 0.2)

    async def go() -> None:
        client = _client()
        cache = LocalCache(client, str(tmp_path), "node", "c1")
        assert not cache.load()
        with pytest.raises(ConnectionProblem):
            await cache.poll_once(0)
        with pytest.raises(AccessDenied, match="no cached copy of the cluster's roles"):
            await cache.get("node")
        await client.close()

    asyncio.run(go())


def test_starts_from_the_file_and_ignores_a_bad_one(tmp_path: Path) -> None:
    path = cache_path(str(tmp_path), "proxy")
    os.makedirs(os.path.dirname(path))
    seen: list[str] = []

    async def go(expect: bool) -> None:
        client = _client()
        cache = LocalCache(client, str(tmp_path), "proxy", "c1")
        cache.on_update(lambda d: seen.append(d.version))
        assert cache.load() is expect
        if expect:
            assert (await cache.get("proxy")).visible_nodes("alice")
        await client.close()

    with open(path, "w") as f:
        json.dump(snapshot(), f)
    os.chmod(path, 0o600)
    asyncio.run(go(True))
    assert seen == [snapshot()["version"]]
    with open(path, "w") as f:
        json.dump(snapshot(cluster_name="other"), f)  # another cluster's file is not ours
    asyncio.run(go(False))
    with open(path, "w") as f:
        f.write("{not json")
    asyncio.run(go(False))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
