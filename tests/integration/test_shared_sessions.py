"""Shared sessions: a second user joins a live PTY session by sending TELEPORT_SESSION=<sid> as an
env request before the shell request (the wire contract of `tsh join`), sees the output live, can
type, everyone sees the join/leave notices, the events are logged, the session is listed with its
parties while it runs, one recording covers it all and it ends for everyone with the shell."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from teleport.recording.asciicast import read_cast
from tests.helpers import Cluster, destroy
from tests.integration.test_recording import (
    LOGIN,
    TP_USER,
    Shell,
    admin_client,
    connect,
    node_cluster,
    session_events,
    stored_recording,
    wait_for,
)

pytestmark = pytest.mark.integration

JOINER = "join-bob"
OUTSIDER = "join-carol"


@pytest.fixture(scope="module")
def cluster_shared() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    c = node_cluster()
    try:
        c.add_user(JOINER, LOGIN)
        c.login(JOINER)
        # carol may log in as "nobody" only: she must not join a root session
        c.add_user(OUTSIDER, "nobody")
        c.login(OUTSIDER)
        yield c
    finally:
        destroy(c)


async def test_join_live_session(cluster_shared: Cluster) -> None:
    c = cluster_shared
    auth = admin_client(c)
    try:
        async with await connect(c) as conn_a, await connect(c, user=JOINER) as conn_b:
            alice = await Shell.open(conn_a, size=(90, 30))
            sid = await alice.sid()
            alice.send("echo before-join\n")
            await alice.expect("before-join\r\n")

            # listed as active with its one party
            sessions = await auth.list_sessions()
            mine = [s for s in sessions if s["sid"] == sid]
            assert mine and mine[0]["login"] == LOGIN and mine[0]["user"] == TP_USER
            assert [p["user"] for p in mine[0]["parties"]] == [TP_USER]
            assert mine[0]["terminal"] == {"w": 90, "h": 30}

            bob = await Shell.open(conn_b, env={"TELEPORT_SESSION": sid})
            await bob.expect(f"joined session {sid}")
            await alice.expect(f"{JOINER} joined the session")
            # bob types, the shell runs it, both see the output
            bob.send("echo typed-by-$((40+2))\n")
            await bob.expect("typed-by-42")
            await alice.expect("typed-by-42")
            alice.send("echo from-alice-$((1+1))\n")
            await bob.expect("from-alice-2")
            # the output bob saw starts at the join, not before
            assert "before-join" not in bob.buf.decode()
            sessions = await auth.list_sessions()
            parties = [p["user"] for s in sessions if s["sid"] == sid for p in s["parties"]]
            assert sorted(parties) == sorted([TP_USER, JOINER])

            # bob leaves; alice is told; the shell lives on
            bob.proc.close()
            await alice.expect(f"{JOINER} left the session")
            alice.send("echo still-here\n")
            await alice.expect("still-here\r\n")
            assert await alice.exit(0) == 0
        kinds = wait_for(
            lambda: (lambda ev: ev if "session.end" in ev and "session.upload" in ev else None)(
                [e["event"] for e in session_events(c, sid)]),
            what="session.end and session.upload",
        )
        assert kinds.count("session.join") == 1
        evs = session_events(c, sid)
        join = next(e for e in evs if e["event"] == "session.join")
        assert join["user"] == JOINER and join["code"] == "T2001I"
        leaves = [e["user"] for e in evs if e["event"] == "session.leave"]
        assert sorted(leaves) == sorted([JOINER, TP_USER])
        end = next(e for e in evs if e["event"] == "session.end")
        assert sorted(end["participants"]) == sorted([TP_USER, JOINER])
        # one recording for the whole session, without the join notices
        _, rec = read_cast(stored_recording(c, sid))
        out = "".join(d for _, k, d in rec if k == "o")
        assert "before-join" in out and "typed-by-42" in out and "still-here" in out
        assert "joined the session" not in out
        assert sid not in [s["sid"] for s in await auth.list_sessions()]
    finally:
        await auth.close()


async def test_session_ends_for_every_party(cluster_shared: Cluster) -> None:
    c = cluster_shared
    async with await connect(c) as conn_a, await connect(c, user=JOINER) as conn_b:
        alice = await Shell.open(conn_a)
        sid = await alice.sid()
        bob = await Shell.open(conn_b, env={"TELEPORT_SESSION": sid})
        await bob.expect("joined session")
        bob.send("exit 7\n")
        await asyncio.wait_for(alice.proc.wait_closed(), 15)
        await asyncio.wait_for(bob.proc.wait_closed(), 15)
        assert alice.proc.exit_status == 7 and bob.proc.exit_status == 7


async def test_join_refused_without_access_or_session(cluster_shared: Cluster) -> None:
    c = cluster_shared
    async with await connect(c) as conn_a:
        alice = await Shell.open(conn_a)
        sid = await alice.sid()
        # carol's roles allow only "nobody": joining a root session is refused
        async with await connect(c, login="nobody", user=OUTSIDER) as conn_c:
            carol = await conn_c.create_process(term_type="xterm", env={"TELEPORT_SESSION": sid},
                                                encoding=None)
            err = await asyncio.wait_for(carol.stderr.read(), 15)
            await carol.wait_closed()
            assert carol.exit_status == 255, err
            assert b"access denied to login 'root'" in err, err
        # a session id that is not live on this node
        async with await connect(c, user=JOINER) as conn_b:
            ghost = await conn_b.create_process(
                term_type="xterm", env={"TELEPORT_SESSION": "00000000-0000-4000-8000-000000000000"},
                encoding=None)
            err = await asyncio.wait_for(ghost.stderr.read(), 15)
            await ghost.wait_closed()
            assert ghost.exit_status == 255 and b"not active on this node" in err
        alice.send("echo alone\n")
        await alice.expect("alone\r\n")
        assert await alice.exit() == 0
    assert not any(e["event"] == "session.join" for e in session_events(c, sid))

