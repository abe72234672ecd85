"""Active-session records: where a session a recording proxy relays is joined."""

from __future__ import annotations

import pytest

from teleport.client.join import session_target
from teleport.errors import NotFound
from teleport.types.session import proxy_target, target_of


def test_a_proxy_session_names_its_host_and_port() -> None:
    rec = {"sid": "s", "login": "root", "server_id": "proxy-uuid",
           "recording_proxy": proxy_target("db-1", 2222)}
    assert target_of(rec) == ("db-1", 2222)
    # tsh join asks the proxy for the host the owner asked for, not for the proxy's host id
    assert session_target(rec, "s") == ("db-1", 2222, "root")


def test_a_node_session_is_joined_on_its_node() -> None:
    rec = {"sid": "s", "login": "root", "server_id": "node-uuid"}
    assert target_of(rec) is None
    assert session_target(rec, "s", 3022) == ("node-uuid", 3022, "root")
    with pytest.raises(NotFound):
        session_target({"sid": "s"}, "s")


@pytest.mark.parametrize("via", [None, "db-1:22", [], {"host": "", "port": 22}, {"host": "h", "port": 0},
                                 {"host": "h", "port": 70000}, {"host": "h", "port": True},
                                 {"host": "h", "port": "22"}, {"host": 5, "port": 22}, {"port": 22}])
def test_malformed_proxy_targets_are_ignored(via: object) -> None:
    assert target_of({"recording_proxy": via}) is None
