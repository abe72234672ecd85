"""The CA rotation phase machine (auth/rotation.py): keys trusted and signing in each phase."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from teleport.auth import rotation as r
from teleport.errors import BadParameter

_n = itertools.count(1)


def new_keys() -> tuple[str, str]:
    i = next(_n)
    return f"pub{i}", f"priv{i}"


def standby() -> dict[str, Any]:
    return {"type": "user", "cluster_name": "c", "checking_keys": ["pub0"], "signing_keys": ["priv0"]}


def walk(spec: dict[str, Any], *phases: str) -> dict[str, Any]:
    for p in phases:
        spec = r.transition(spec, p, 100.0, new_keys)
    return spec


def test_full_rotation_trusts_both_then_only_new() -> None:
    s0 = standby()
    init = walk(s0, r.INIT)
    new_pub = init["checking_keys"][1]
    assert init["checking_keys"] == ["pub0", new_pub] and init["signing_keys"][0] == "priv0"
    assert r.rotation_of(init)["state"] == "in_progress"
    clients = walk(init, r.UPDATE_CLIENTS)
    assert clients["checking_keys"] == [new_pub, "pub0"]  # new signs, old trusted
    servers = walk(clients, r.UPDATE_SERVERS)
    assert servers["checking_keys"] == clients["checking_keys"]
    done = walk(servers, r.STANDBY)
    assert done["checking_keys"] == [new_pub] and len(done["signing_keys"]) == 1
    assert done["signing_keys"][0] != "priv0"
    assert r.rotation_of(done)["state"] == "standby" and r.rotation_of(done)["last_rotated"] == 100.0
    assert s0 == standby()  # inputs are never modified


@pytest.mark.parametrize("at", [r.INIT, r.UPDATE_CLIENTS, r.UPDATE_SERVERS])
def test_rollback_from_any_phase_restores_the_old_keys(at: str) -> None:
    phases = [r.INIT, r.UPDATE_CLIENTS, r.UPDATE_SERVERS]
    spec = walk(standby(), *phases[: phases.index(at) + 1])
    back = walk(spec, r.ROLLBACK)
    assert back["checking_keys"][0] == "pub0" and back["signing_keys"][0] == "priv0"
    assert len(back["checking_keys"]) == 2  # the new keys stay trusted until servers moved back
    done = walk(back, r.STANDBY)
    assert done["checking_keys"] == ["pub0"] and done["signing_keys"] == ["priv0"]
    assert r.rotation_of(done)["last_rotated"] == 0.0


@pytest.mark.parametrize(
    "path,bad",
    [([], r.UPDATE_CLIENTS), ([], r.ROLLBACK), ([], r.STANDBY), ([r.INIT], r.UPDATE_SERVERS),
     ([r.INIT], r.INIT), ([r.INIT, r.ROLLBACK], r.UPDATE_CLIENTS), ([], "bogus")],
)
def test_illegal_moves_are_refused(path: list[str], bad: str) -> None:
    spec = walk(standby(), *path)
    with pytest.raises(BadParameter):
        r.transition(spec, bad, 1.0, new_keys)


def test_auto_schedule_moves_at_thirds_of_the_grace_period() -> None:
    spec = r.start_auto(standby(), 0.0, new_keys, 30.0)
    assert r.phase_of(spec) == r.INIT
    assert r.due_phase(spec, 9.9) is None
    assert r.due_phase(spec, 10.0) == r.UPDATE_CLIENTS
    spec = r.transition(spec, r.UPDATE_CLIENTS, 10.0)
    assert r.due_phase(spec, 19.0) is None and r.due_phase(spec, 20.0) == r.UPDATE_SERVERS
    spec = r.transition(spec, r.UPDATE_SERVERS, 20.0)
    assert r.due_phase(spec, 30.0) == r.STANDBY
    spec = r.transition(spec, r.STANDBY, 30.0)
    assert r.due_phase(spec, 1e9) is None and len(spec["checking_keys"]) == 1


def test_grace_period_zero_replaces_at_once() -> None:
    spec = r.start_auto(standby(), 5.0, new_keys, 0.0)
    assert r.phase_of(spec) == r.STANDBY and spec["checking_keys"] != ["pub0"]
    assert len(spec["checking_keys"]) == 1


def test_manual_rotation_is_never_moved_by_the_clock() -> None:
    spec = walk(standby(), r.INIT)
    assert r.due_phase(spec, 1e12) is None
    assert "--phase=update_clients|rollback" in r.status_line("user", spec, 0.0)


def test_status_line_says_when_an_auto_rotation_moves_on() -> None:
    spec = r.start_auto(standby(), 0.0, new_keys, 300.0)
    line = r.status_line("host", spec, 0.0)
    assert "phase: init" in line and "moves to update_clients" in line and "in 100s" in line
    assert "never" in r.status_line("user", standby(), 0.0)
