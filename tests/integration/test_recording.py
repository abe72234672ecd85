"""Session recording on the node: a PTY session through a real auth+proxy+node process is recorded
as asciicast v2 (gzip), uploaded to auth when it ends and deleted locally; `session_recording: off`
records nothing; a node killed with SIGKILL mid-session uploads the part recorded so far when it
starts again. The helpers here (log reading, asyncssh sessions) are shared with test_audit.py and
test_shared_sessions.py."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest

from teleport.recording.asciicast import read_cast
from tests.helpers import Cluster, destroy, new_cluster, wait_port

pytestmark = pytest.mark.integration

TP_USER = "rec-alice"
LOGIN = "root"


# -- helpers shared with the other audit/recording tests ------------------------------------

def node_cluster(recording: str = "node", user: str = TP_USER, logins: str = LOGIN) -> Cluster:
    """An auth+proxy+node process with one logged-in user (stop it with destroy())."""
    c = new_cluster(roles="auth,proxy,node", auth_extra=f"  session_recording: {recording}\n")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        c.add_user(user, logins)
        c.login(user)
    except BaseException:
        destroy(c)
        raise
    return c


def key_path(c: Cluster, user: str = TP_USER) -> str:
    return os.path.join(c.home, "keys", "127.0.0.1", user)


async def connect(c: Cluster, port: int | None = None, login: str = LOGIN, user: str = TP_USER,
                  key: str | None = None) -> asyncssh.SSHClientConnection:
    """An SSH connection straight to the node's port with the user's key and certificate."""
    path = key or key_path(c, user)
    client_key = asyncssh.read_private_key(path)
    cert = asyncssh.read_certificate(path + "-cert.pub")
    return await asyncssh.connect(
        "127.0.0.1", port or c.ports["node"], username=login, client_keys=[(client_key, cert)],
        known_hosts=None, agent_path=None,
    )


class Shell:
    """An interactive PTY shell driven like a terminal."""

    def __init__(self, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self.proc = proc
        self.buf = bytearray()

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection, size: tuple[int, int] = (80, 25),
                   env: dict[str, str] | None = None) -> Shell:
        proc = await conn.create_process(term_type="xterm", term_size=size, env=env or {}, encoding=None)
        return cls(proc)

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())

    async def expect(self, marker: str, timeout: float = 15) -> str:
        """Read until marker appears in the output; return everything read so far."""
        want = marker.encode()
        deadline = time.monotonic() + timeout
        while want not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} not seen; output so far: {bytes(self.buf)[-2000:]!r}")
            try:
                data = await asyncio.wait_for(self.proc.stdout.read(65536), left)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"session ended before {marker!r}: {bytes(self.buf)[-2000:]!r}")
            self.buf += data
        return self.buf.decode("utf-8", "replace")

    async def sid(self) -> str:
        """The session id, as the shell sees it."""
        self.send("echo S''ID=$TELEPORT_SESSION.\n")  # the quotes keep the echoed command apart
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = re.search(r"SID=([0-9a-f-]{36})\.", await self.expect("SID="))
            if m:
                return m.group(1)
            await asyncio.sleep(0.05)
            self.buf += await asyncio.wait_for(self.proc.stdout.read(65536), 5)
        raise AssertionError("no session id printed")

    async def exit(self, code: int = 0) -> int | None:
        self.send(f"exit {code}\n")
        await asyncio.wait_for(self.proc.wait_closed(), 15)
        return self.proc.exit_status


def admin_client(c: Cluster) -> Any:
    """An AuthClient with the cluster's admin identity (what tctl uses)."""
    from teleport.auth.client import AuthClient, client_ssl_context
    from teleport.service.adminid import admin_identity_paths

    paths = admin_identity_paths(c.data_dir)
    with open(paths["ca"], "rb") as f:
        ca = f.read()
    return AuthClient([c.auth_addr], client_ssl_context(ca, paths["cert"], paths["key"]))


def events(c: Cluster) -> list[dict[str, Any]]:
    """Every event in the auth's day files."""
    out = []
    for path in sorted(glob.glob(os.path.join(c.data_dir, "log", "*.log"))):
        with open(path) as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def wait_for(pred: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def session_events(c: Cluster, sid: str) -> list[dict[str, Any]]:
    return [e for e in events(c) if e.get("sid") == sid]


def stored_recording(c: Cluster, sid: str) -> str:
    return os.path.join(c.data_dir, "log", "sessions", "default", f"{sid}.cast.gz")


def local_uploads(c: Cluster) -> list[str]:
    return sorted(os.listdir(os.path.join(c.data_dir, "log", "upload", "sessions")))


# -- tests -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster_rec() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    c = node_cluster()
    try:
        yield c
    finally:
        destroy(c)


async def test_pty_session_is_recorded_uploaded_and_deleted(cluster_rec: Cluster) -> None:
    c = cluster_rec
    async with await connect(c) as conn:
        sh = await Shell.open(conn, size=(100, 30))
        sid = await sh.sid()
        # the recording is being written (and flushed) while the session runs
        path = os.path.join(c.data_dir, "log", "upload", "sessions", f"{sid}.cast.gz")
        sh.send("printf 'hello-%s\\n' recorded\n")
        await sh.expect("hello-recorded")
        sh.proc.change_terminal_size(120, 40)
        sh.send("stty size\n")
        await sh.expect("40 120")
        await asyncio.sleep(1.5)
        header, evs = read_cast(path)
        assert header["width"] == 100 and header["height"] == 30
        assert any("hello-recorded" in d for _, k, d in evs if k == "o")
        assert await sh.exit(3) == 3
    stored = stored_recording(c, sid)
    wait_for(lambda: os.path.exists(stored), what="the uploaded recording")
    header, evs = read_cast(stored)
    output = "".join(d for _, k, d in evs if k == "o")
    assert "hello-recorded" in output and "40 120" in output
    assert (evs[-1][0] >= evs[0][0]) and all(a[0] <= b[0] for a, b in zip(evs, evs[1:], strict=False))
    assert ("r" in {k for _, k, _ in evs}) and any(d == "120x40" for _, k, d in evs if k == "r")
    wait_for(lambda: not any(n.startswith(sid) for n in local_uploads(c)), what="local copy deleted")
    evs_log = wait_for(lambda: [e for e in session_events(c, sid) if e["event"] == "session.upload"],
                       what="session.upload event")
    assert evs_log[0]["code"] == "T2005I"
    kinds = {e["event"] for e in session_events(c, sid)}
    assert {"session.start", "session.end", "resize", "session.upload"} <= kinds


async def test_exec_without_pty_is_not_recorded(cluster_rec: Cluster) -> None:
    c = cluster_rec
    async with await connect(c) as conn:
        res = await conn.run("echo SID=$TELEPORT_SESSION", check=True)
    sid = str(res.stdout).strip().split("SID=")[1]
    ev = wait_for(lambda: [e for e in session_events(c, sid) if e["event"] == "exec"], what="exec event")
    assert ev[0]["command"] == "echo SID=$TELEPORT_SESSION" and ev[0]["exitCode"] == 0
    assert not os.path.exists(stored_recording(c, sid))


async def test_recording_off_records_nothing() -> None:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    c = node_cluster(recording="off")
    try:
        async with await connect(c) as conn:
            sh = await Shell.open(conn)
            sid = await sh.sid()
            sh.send("echo not-recorded\n")
            await sh.expect("not-recorded\r\n")
            await sh.exit()
        wait_for(lambda: [e for e in session_events(c, sid) if e["event"] == "session.end"],
                 what="session.end")
        assert local_uploads(c) == []
        assert not os.path.exists(stored_recording(c, sid))
    finally:
        destroy(c)


async def test_node_killed_mid_session_uploads_on_restart() -> None:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    c = node_cluster()
    try:
        conn = await connect(c)
        sh = await Shell.open(conn)
        sid = await sh.sid()
        sh.send("echo before-the-crash\n")
        await sh.expect("before-the-crash\r\n")
        await asyncio.sleep(2.0)  # past a flush
        assert c.proc is not None
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait(timeout=10)
        c.proc = None
        conn.abort()
        assert any(n.startswith(sid) for n in local_uploads(c))
        # (the shell the dead node started got SIGHUP from the kernel when its PTY master closed)
        c.start()
        stored = stored_recording(c, sid)
        wait_for(lambda: os.path.exists(stored), what="the recovered recording")
        _, evs = read_cast(stored)
        assert "before-the-crash" in "".join(d for _, k, d in evs if k == "o")
        end = wait_for(lambda: [e for e in session_events(c, sid) if e["event"] == "session.end"],
                       what="the recovered session.end")
        assert len(end) == 1 and end[0]["user"] == TP_USER and end[0]["interactive"] is True
        wait_for(lambda: [e for e in session_events(c, sid) if e["event"] == "session.upload"],
                 what="session.upload")
        assert not any(n.startswith(sid) for n in local_uploads(c))
    finally:
        destroy(c)
