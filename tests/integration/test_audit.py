"""Node audit events: field names and codes of the reference, and durable delivery. The node runs
as its own `teleport start` process, joined to an auth+proxy process with the static token; the
auth process is stopped while sessions run and end, then started again: every event the node
logged meanwhile reaches the auth's day file exactly once, and the recordings are uploaded."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest

from tests.helpers import Cluster, destroy, new_cluster
from tests.integration.test_join import NodeProc
from tests.integration.test_recording import (
    LOGIN,
    TP_USER,
    Shell,
    connect,
    events,
    key_path,
    session_events,
    stored_recording,
    wait_for,
)

pytestmark = pytest.mark.integration

COMMON = ("event", "uid", "code", "time", "user", "login", "sid", "namespace", "server_id",
          "server_hostname", "addr.local", "addr.remote")


@pytest.fixture(scope="module")
def split() -> Iterator[tuple[Cluster, NodeProc]]:
    """auth+proxy in one process, the node in another (joined with the static token)."""
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    c = new_cluster()
    node: NodeProc | None = None
    try:
        c.start()
        c.add_user(TP_USER, LOGIN)
        c.login(TP_USER)
        node = NodeProc(c, "auditnode")
        node.start(f"--token={c.static_token}")
        node.wait_listening()
        yield c, node
    finally:
        if node is not None:
            node.destroy()
        destroy(c)


def spool_file(node: NodeProc) -> str:
    return os.path.join(node.root, "data", "log", "upload", "events.spool")


def of(evs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["event"] == kind]


async def test_session_and_exec_events_have_reference_fields(split: tuple[Cluster, NodeProc]) -> None:
    c, node = split
    async with await connect(c, port=node.port) as conn:
        sh = await Shell.open(conn, size=(80, 25))
        sid = await sh.sid()
        sh.proc.change_terminal_size(132, 43)
        sh.send("stty size\n")
        await sh.expect("43 132")
        await sh.exit()
        ok = await conn.run("true")
        bad = await conn.run("exit 5")
        assert ok.exit_status == 0 and bad.exit_status == 5
    evs = wait_for(lambda: (lambda e: e if of(e, "session.end") else None)(session_events(c, sid)),
                   what="session.end")
    start = of(evs, "session.start")[0]
    for f in COMMON:
        assert f in start, f
    assert start["code"] == "T2000I" and start["size"] == "80:25"
    assert start["user"] == TP_USER and start["login"] == LOGIN and start["server_hostname"] == "auditnode"
    assert start["addr.local"].endswith(f":{node.port}") and start["addr.remote"].startswith("127.0.0.1:")
    resize = of(evs, "resize")[0]
    assert resize["code"] == "T2002I" and resize["size"] == "132:43"
    end = of(evs, "session.end")[0]
    assert end["code"] == "T2004I" and end["participants"] == [TP_USER] and end["interactive"] is True
    assert end["session_start"] <= end["session_stop"]
    execs = wait_for(lambda: (lambda x: x if len(x) == 2 else None)(
        [e for e in of(events(c), "exec") if e["command"] in ("true", "exit 5")]), what="exec events")
    by_cmd = {e["command"]: e for e in execs}
    assert by_cmd["true"]["code"] == "T3002I" and by_cmd["true"]["exitCode"] == 0
    assert by_cmd["exit 5"]["code"] == "T3002E" and by_cmd["exit 5"]["exitCode"] == 5


def _ssh_opts(c: Cluster) -> list[str]:
    key = key_path(c)
    return ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-F", "/dev/null",
            "-i", key, "-o", f"CertificateFile={key}-cert.pub"]


@pytest.mark.parametrize("legacy", [True, False], ids=["scp-protocol", "sftp"])
def test_scp_events(split: tuple[Cluster, NodeProc], tmp_path: Any, legacy: bool) -> None:
    c, node = split
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(100_000))
    remote = f"/tmp/tp-audit-{'scp' if legacy else 'sftp'}-{os.getpid()}.bin"
    base = ["scp", *(["-O"] if legacy else []), *_ssh_opts(c), "-P", str(node.port)]
    try:
        subprocess.run([*base, str(src), f"{LOGIN}@127.0.0.1:{remote}"], check=True, timeout=60,
                       capture_output=True)
        subprocess.run([*base, f"{LOGIN}@127.0.0.1:{remote}", str(tmp_path / "down.bin")], check=True,
                       timeout=60, capture_output=True)
    finally:
        if os.path.exists(remote):
            os.remove(remote)
    assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()
    scps = wait_for(lambda: (lambda s: s if len(s) >= 2 else None)(
        [e for e in of(events(c), "scp") if e["path"].endswith(os.path.basename(remote))]), what="scp events")
    up = [e for e in scps if e["action"] == "upload"]
    down = [e for e in scps if e["action"] == "download"]
    assert up and up[0]["code"] == "T3005I" and down and down[0]["code"] == "T3004I"
    assert up[0]["len"] >= 100_000 and down[0]["len"] >= 100_000
    assert up[0]["user"] == TP_USER and up[0]["login"] == LOGIN


async def test_port_forward_and_failed_auth_events(split: tuple[Cluster, NodeProc]) -> None:
    c, node = split
    async with await connect(c, port=node.port) as conn:
        # a direct-tcpip channel to the auth port (any listening port will do)
        reader, writer = await conn.open_connection("127.0.0.1", c.ports["auth"])
        writer.close()
    port = wait_for(lambda: [e for e in of(events(c), "port") if e["addr"] == f"127.0.0.1:{c.ports['auth']}"],
                    what="port event")
    assert port[0]["code"] == "T3003I" and port[0]["user"] == TP_USER
    # "nobody" is not among the certificate's principals: refused and logged
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(c, port=node.port, login="nobody")
    fails = wait_for(lambda: [e for e in of(events(c), "auth") if e.get("login") == "nobody"],
                     what="auth failure event")
    assert fails[0]["code"] == "T3007W" and fails[0]["success"] is False
    assert fails[0]["user"] == TP_USER and "nobody" in fails[0]["error"]
    # the proxy logs a certificate it refuses too
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(c, port=c.ports["ssh"], login="nobody")
    at_proxy = wait_for(lambda: [e for e in of(events(c), "auth")
                                 if e["addr.local"].endswith(f":{c.ports['ssh']}")], what="proxy auth event")
    assert at_proxy[0]["code"] == "T3007W" and at_proxy[0]["user"] == TP_USER


async def test_events_survive_auth_outage_exactly_once(split: tuple[Cluster, NodeProc]) -> None:
    c, node = split
    conns = [await connect(c, port=node.port) for _ in range(2)]
    try:
        shells = [await Shell.open(conn) for conn in conns]
        sids = [await sh.sid() for sh in shells]
        before = len(events(c))
        c.stop()  # auth (and proxy) down: sessions keep running on the node

        for i, sh in enumerate(shells):
            sh.proc.change_terminal_size(100 + i, 40)
            sh.send(f"echo during-outage-{i}\n")
            await sh.expect(f"during-outage-{i}\r\n")
        # a new channel on an authorized connection needs no auth: its exec event is spooled
        res = await conns[0].run("echo exec-during-outage")
        assert "exec-during-outage" in str(res.stdout)
        for sh in shells:
            assert await sh.exit() == 0
        await asyncio.sleep(0.5)
        with open(spool_file(node)) as f:
            spooled = f.read()
        for sid in sids:
            assert f'"sid":"{sid}"' in spooled and '"event":"session.end"' in spooled
        assert len(events(c)) == before
    finally:
        for conn in conns:
            conn.close()

    c.start()
    for sid in sids:
        wait_for(lambda sid=sid: of(session_events(c, sid), "session.upload"), timeout=40,
                 what=f"delivery of {sid}'s events and recording")
        assert os.path.exists(stored_recording(c, sid))
    wait_for(lambda: os.path.getsize(spool_file(node)) == 0, what="an empty spool")
    evs = events(c)
    uids = Counter(e["uid"] for e in evs)
    assert max(uids.values()) == 1, "an event was stored twice"
    for sid in sids:
        kinds = Counter(e["event"] for e in evs if e.get("sid") == sid)
        assert kinds["session.start"] == 1 and kinds["session.end"] == 1 and kinds["resize"] == 1
        assert kinds["session.leave"] == 1 and kinds["session.upload"] == 1
    assert len([e for e in of(evs, "exec") if e["command"] == "echo exec-during-outage"]) == 1
