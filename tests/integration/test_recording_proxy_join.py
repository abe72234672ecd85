"""Recording proxy mode, continued, with real processes: `tsh join` of a session the proxy runs
(real pseudo-terminals: what one party types, the others see), `ssh -R` through the proxy (tsh
and OpenSSH), and each audit event stored once when a teleport node sits behind a recording
proxy (the proxy logs it; the node, told so in the proxy's signed header, does not)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Cluster, cli, destroy, env_with, free_port, kill_proc, wait_port
from tests.integration.test_proxy_tsh import Sshd
from tests.integration.test_recording import (
    admin_client,
    session_events,
    stored_recording,
    wait_for,
)
from tests.integration.test_recording_proxy import (
    LOGIN,
    USER,
    block_config,
    events_of,
    key_path,
    no_agent_env,
    proxy_cluster,
    proxy_host_id,
    put_role,
    pytestmark,  # noqa: F401  (the same requirements: sshd, ssh, ssh-agent, root)
    tsh,
)
from tests.integration.test_tsh_habits import Pty as _Pty

JOINER = "recjoin-bob"


class Pty(_Pty):
    """test_tsh_habits' pseudo-terminal, closed at most once."""

    closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            super().close()


@pytest.fixture(scope="module")
def jc() -> Iterator[Cluster]:
    c = proxy_cluster()
    try:
        c.add_user(JOINER, LOGIN)
        wait_for(lambda: "testnode" in tsh(c, "ls").stdout, what="the node to register")
        yield c
    finally:
        destroy(c)


@pytest.fixture(scope="module")
def jsshd(jc: Cluster) -> Iterator[Sshd]:
    s = Sshd(jc)
    try:
        yield s
    finally:
        s.stop()


def home_of(c: Cluster, user: str) -> str:
    """The tsh home a user is logged in to (signup logs a new user in to a home of its own)."""
    return c.home if user == USER else os.path.join(c.root, f"signup-home-{user}")


def pty_tsh(c: Cluster, user: str, *args: str) -> Pty:
    return Pty([*cli("tsh"), *args], env_with(TELEPORT_HOME=home_of(c, user), TERM="xterm"))


def proxy_sessions(c: Cluster) -> list[dict[str, Any]]:
    async def ls() -> list[dict[str, Any]]:
        auth = admin_client(c)
        try:
            return list(await auth.list_sessions())
        finally:
            await auth.close()

    pid = proxy_host_id(c)
    return [s for s in asyncio.run(ls()) if s.get("server_id") == pid]


def typed(p: Pty, text: str, marker: bytes) -> None:
    """Type a line (the shell computes the marker, so the echo of the typing does not match)."""
    p.type(text.encode() + b"\r")
    p.expect(marker)


# -- tsh join ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["sshd", "teleport-node"])
def test_tsh_join_a_session_the_proxy_runs(jc: Cluster, jsshd: Sshd, where: str) -> None:
    host, port = ("127.0.0.1", jsshd.port) if where == "sshd" else ("testnode", jc.ports["node"])
    before = {s["sid"] for s in proxy_sessions(jc)}
    owner = pty_tsh(jc, USER, "ssh", "-t", "-p", str(port), f"{LOGIN}@{host}")
    joiners: list[Pty] = []
    try:
        owner.expect(b"# ")  # root's prompt: the terminal is raw and the shell reads from now on
        typed(owner, "echo owner-$((20+1))", b"owner-21")
        live = wait_for(lambda: [s for s in proxy_sessions(jc) if s["sid"] not in before],
                        what="the proxy's session in auth's registry")
        assert len(live) == 1, live
        sid = live[0]["sid"]
        assert live[0]["recording_proxy"] == {"host": host, "port": port}
        assert live[0]["login"] == LOGIN and live[0]["user"] == USER
        if where == "teleport-node":
            # the shell knows the id to share: the one `tsh join` finds
            typed(owner, "echo S''ID=$TELEPORT_SESSION.", f"SID={sid}.".encode())
        # a second user, then the first user again from another terminal
        for who in (JOINER, USER):
            j = pty_tsh(jc, who, "join", sid)
            joiners.append(j)
            j.expect(f"joined session {sid}".encode())
            owner.expect(f"{who} joined the session".encode())
        bob, again = joiners
        # what each one types, all see
        typed(bob, "echo bob-typed-$((40+2))", b"bob-typed-42")
        owner.expect(b"bob-typed-42")
        again.expect(b"bob-typed-42")
        typed(owner, "echo owner-typed-$((3*3))", b"owner-typed-9")
        bob.expect(b"owner-typed-9")
        again.expect(b"owner-typed-9")
        assert b"owner-21" not in bob.out  # a joiner sees the session from its join on
        wait_for(lambda: sorted(p["user"] for s in proxy_sessions(jc) if s["sid"] == sid
                                for p in s["parties"]) == sorted([USER, JOINER, USER]),
                 what="three parties in the registry")
        # bob leaves with the escape sequence; the others carry on
        bob.type(b"\r~.")
        bob.wait()  # raises if the escape did not end his tsh
        owner.expect(f"{JOINER} left the session".encode())
        typed(again, "echo still-$((5+5))", b"still-10")
        owner.expect(b"still-10")
        # the owner ends the session: it ends for the remaining joiner too, with the status
        owner.type(b"exit 6\r")
        assert owner.wait() == 6, owner.out[-500:]
        assert again.wait() == 6, again.out[-500:]
    finally:
        for p in (owner, *joiners):
            p.close()
    evs = wait_for(lambda: (lambda e: e if {"session.end", "session.upload"} <= {x["event"] for x in e}
                            else None)(session_events(jc, sid)), what="session.end and the upload")
    pid = proxy_host_id(jc)
    assert all(e["server_id"] == pid for e in evs), evs
    kinds = [e["event"] for e in evs]
    assert kinds.count("session.start") == 1 and kinds.count("session.end") == 1
    assert sorted(e["user"] for e in evs if e["event"] == "session.join") == sorted([JOINER, USER])
    end = next(e for e in evs if e["event"] == "session.end")
    assert sorted(end["participants"]) == sorted([USER, JOINER])
    assert sid not in {s["sid"] for s in proxy_sessions(jc)}
    play = tsh(jc, "play", sid)
    assert "bob-typed-42" in play.stdout and "owner-typed-9" in play.stdout
    assert "joined the session" not in play.stdout  # notices go to the parties only


def test_openssh_joins_through_the_block(jc: Cluster, jsshd: Sshd, tmp_path: Any) -> None:
    """An OpenSSH user joins with the env request tsh join sends (SetEnv), through the `tsh
    config` block, to the host the session runs on."""
    cfg, alias = block_config(jc, jsshd, str(tmp_path))
    before = {s["sid"] for s in proxy_sessions(jc)}
    owner = pty_tsh(jc, USER, "ssh", "-t", "-p", str(jsshd.port), f"{LOGIN}@127.0.0.1")
    joiner: Pty | None = None
    try:
        owner.expect(b"# ")
        live = wait_for(lambda: [s for s in proxy_sessions(jc) if s["sid"] not in before],
                        what="the proxy's session in auth's registry")
        sid = live[0]["sid"]
        joiner = Pty(["ssh", "-F", cfg, "-o", "BatchMode=yes", "-tt", "-o", f"SetEnv=TELEPORT_SESSION={sid}",
                      f"{LOGIN}@{alias}"], {**no_agent_env(), "TERM": "xterm"})
        joiner.expect(f"joined session {sid}".encode())
        typed(joiner, "echo openssh-joined-$((7*6))", b"openssh-joined-42")
        owner.expect(b"openssh-joined-42")
        owner.type(b"exit 0\r")
        assert owner.wait() == 0
        assert joiner.wait() == 0
    finally:
        owner.close()
        if joiner is not None:
            joiner.close()
    evs = wait_for(lambda: [e for e in session_events(jc, sid) if e["event"] == "session.join"],
                   what="the session.join event")
    assert evs[0]["user"] == USER and evs[0]["server_id"] == proxy_host_id(jc)


def test_session_outlives_its_owner(jc: Cluster, jsshd: Sshd) -> None:
    """As on a node, the session ends when the shell does, not when its owner leaves."""
    before = {s["sid"] for s in proxy_sessions(jc)}
    owner = pty_tsh(jc, USER, "ssh", "-t", "-p", str(jsshd.port), f"{LOGIN}@127.0.0.1")
    bob: Pty | None = None
    try:
        owner.expect(b"# ")
        sid = wait_for(lambda: [s for s in proxy_sessions(jc) if s["sid"] not in before],
                       what="the proxy's session")[0]["sid"]
        bob = pty_tsh(jc, JOINER, "join", sid)
        bob.expect(b"joined session")
        owner.type(b"\r~.")
        owner.wait()
        bob.expect(f"{USER} left the session".encode())
        typed(bob, "echo after-owner-$((8*8))", b"after-owner-64")
        bob.type(b"exit 3\r")
        assert bob.wait() == 3, bob.out[-500:]
    finally:
        owner.close()
        if bob is not None:
            bob.close()
    wait_for(lambda: os.path.exists(stored_recording(jc, sid)), what="the recording")
    play = tsh(jc, "play", sid)
    assert "after-owner-64" in play.stdout
    assert [e["event"] for e in session_events(jc, sid)].count("session.end") == 1


@pytest.mark.parametrize("where", ["sshd", "teleport-node"])
def test_join_refused_to_a_login_the_roles_do_not_allow(jc: Cluster, jsshd: Sshd, where: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A user whose roles allow only "nobody" may not join a root session."""
    outsider = "recjoin-carol"
    if outsider not in jc.secrets:
        jc.add_user(outsider, "nobody")
    host, port = ("127.0.0.1", jsshd.port) if where == "sshd" else ("testnode", jc.ports["node"])
    before = {s["sid"] for s in proxy_sessions(jc)}
    owner = pty_tsh(jc, USER, "ssh", "-t", "-p", str(port), f"{LOGIN}@{host}")
    try:
        owner.expect(b"# ")
        sid = wait_for(lambda: [s for s in proxy_sessions(jc) if s["sid"] not in before],
                       what="the proxy's session")[0]["sid"]
        monkeypatch.setenv("TELEPORT_HOME", home_of(jc, outsider))
        status, err = asyncio.run(_join_as(host, port, "nobody", sid))
        assert status == 255, err
        want = "join it as that login" if where == "sshd" else "access denied to login 'root'"
        assert want in err, err
        owner.type(b"exit 0\r")
        assert owner.wait() == 0
    finally:
        owner.close()
    assert "session.join" not in [e["event"] for e in session_events(jc, sid)]


async def _join_as(host: str, port: int, login: str, sid: str) -> tuple[int | None, str]:
    """Ask the proxy to join `sid` as `login` (the env request tsh join sends)."""
    from teleport.client import ssh

    creds = ssh.load_credentials()
    proxy = await ssh.connect_proxy(creds, login)
    try:
        conn = await ssh.connect_node(proxy, creds, host, port, login)
        async with conn:
            proc = await conn.create_process(term_type="xterm", env={"TELEPORT_SESSION": sid},
                                             encoding=None)
            err = await asyncio.wait_for(proc.stderr.read(), 30)
            await proc.wait_closed()
            return proc.exit_status, err.decode(errors="replace")
    finally:
        proxy.close()


def test_join_refused_for_an_unknown_session(jc: Cluster) -> None:
    res = subprocess.run([*cli("tsh"), "join", "00000000-0000-4000-8000-000000000000"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env=env_with(TELEPORT_HOME=jc.home), check=False)
    assert res.returncode != 0 and "is not active" in res.stderr, res.stderr


# -- ssh -R through the recording proxy -----------------------------------------------------------

class Banner:
    """A local TCP server that greets each connection with a fixed line."""

    def __init__(self, text: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.text = text
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.text)

    def close(self) -> None:
        self.sock.close()


def read_through(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        return s.recv(64)


@pytest.mark.parametrize("where", ["sshd", "teleport-node"])
def test_tsh_ssh_remote_forward_through_the_proxy(jc: Cluster, jsshd: Sshd, where: str) -> None:
    host, port = ("127.0.0.1", jsshd.port) if where == "sshd" else ("testnode", jc.ports["node"])
    banner = Banner(b"hello-from-the-client\n")
    rport = free_port()
    proc = subprocess.Popen(
        [*cli("tsh"), "ssh", "-N", "-R", f"127.0.0.1:{rport}:127.0.0.1:{banner.port}", "-p", str(port),
         f"{LOGIN}@{host}"], env=env_with(TELEPORT_HOME=jc.home), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(rport, 30, proc)  # the node listens: for the client, through the proxy
        # (the client accepts forwarded connections once the proxy's answer reached it, a
        # moment after the node listens)
        wait_for(lambda: read_through(rport) == b"hello-from-the-client\n", timeout=30,
                 what="the client's banner through the node's listener")
        assert read_through(rport) == b"hello-from-the-client\n"  # and again, a second channel
        ev = wait_for(lambda: [e for e in events_of(jc, "port") if e.get("addr") == f"127.0.0.1:{rport}"],
                      what="the port event")
        assert len(ev) == 1 and ev[0]["server_id"] == proxy_host_id(jc) and ev[0]["user"] == USER
    finally:
        kill_proc(proc)  # type: ignore[arg-type]
        banner.close()


def test_openssh_remote_forward_through_the_block(jc: Cluster, jsshd: Sshd, tmp_path: Any) -> None:
    cfg, alias = block_config(jc, jsshd, str(tmp_path))
    banner = Banner(b"openssh-R-ok\n")
    rport = free_port()
    proc = subprocess.Popen(
        ["ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
         "-R", f"127.0.0.1:{rport}:127.0.0.1:{banner.port}", f"{LOGIN}@{alias}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=no_agent_env())
    try:
        wait_port(rport, 30, proc)
        wait_for(lambda: read_through(rport) == b"openssh-R-ok\n", timeout=30,
                 what="the client's banner through the node's listener")
    finally:
        kill_proc(proc)  # type: ignore[arg-type]
        banner.close()


def test_dynamic_forward_through_the_proxy(jc: Cluster, jsshd: Sshd) -> None:
    """tsh ssh -D: SOCKS5 on the client, each connection a direct-tcpip channel the proxy
    relays to the node."""
    banner = Banner(b"socks-ok\n")
    dport = free_port()
    proc = subprocess.Popen(
        [*cli("tsh"), "ssh", "-N", "-D", f"127.0.0.1:{dport}", "-p", str(jsshd.port), f"{LOGIN}@127.0.0.1"],
        env=env_with(TELEPORT_HOME=jc.home), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        wait_port(dport, 30, proc)
        with socket.create_connection(("127.0.0.1", dport), timeout=10) as s:
            s.settimeout(10)
            s.sendall(b"\x05\x01\x00")  # SOCKS5, one method: no authentication
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + banner.port.to_bytes(2, "big"))
            reply = s.recv(10)
            assert reply[:2] == b"\x05\x00", reply
            assert s.recv(64) == b"socks-ok\n"
        wait_for(lambda: [e for e in events_of(jc, "port") if e.get("addr") == f"127.0.0.1:{banner.port}"],
                 what="the port event")
    finally:
        kill_proc(proc)  # type: ignore[arg-type]
        banner.close()


def test_remote_forward_refused_when_the_role_forbids_it(jc: Cluster, jsshd: Sshd) -> None:
    user = "recjoin-noforward"
    put_role(jc, "no-forwarding", {"port_forwarding": False})
    jc.add_user(user, LOGIN)
    jc.tctl("users", "update", user, "--set-roles=no-forwarding")
    home = home_of(jc, user)
    rport = free_port()
    res = subprocess.run(
        [*cli("tsh"), "ssh", "-R", f"127.0.0.1:{rport}:127.0.0.1:9", "-p", str(jsshd.port),
         f"{LOGIN}@127.0.0.1", "true"], env=env_with(TELEPORT_HOME=home), capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert res.returncode != 0, res.stdout
    assert "refused to listen" in res.stderr and "port_forwarding" in res.stderr, res.stderr


# -- each event once: a teleport node behind a recording proxy -----------------------------------

def test_teleport_node_events_are_stored_once(jc: Cluster) -> None:
    port = jc.ports["node"]
    res = tsh(jc, "ssh", "-p", str(port), f"{LOGIN}@testnode", "echo once-$((6*7))")
    assert res.stdout == "once-42\n"
    owner = pty_tsh(jc, USER, "ssh", "-t", "-p", str(port), f"{LOGIN}@testnode")
    try:
        owner.expect(b"# ")
        typed(owner, "echo pty-once-$((1+2))", b"pty-once-3")
        owner.type(b"exit 0\r")
        assert owner.wait() == 0
    finally:
        owner.close()
    # proxy and node run in one process here, with one host id: their events differ by the
    # address the client reached (the proxy's SSH port, or the node's)
    def by_node(e: dict[str, Any]) -> bool:
        return str(e.get("addr.local", "")).endswith(f":{port}")

    def by_proxy(e: dict[str, Any]) -> bool:
        return str(e.get("addr.local", "")).endswith(f":{jc.ports['ssh']}")

    # a control: a direct connection to the node (no proxy) is still the node's to log; once its
    # events arrived, whatever the node spooled before them has arrived too
    # (it also claims a session id as a recording proxy would: a direct client is not one)
    claimed = "11111111-1111-4111-8111-111111111111"
    asyncio.run(_direct_exec(jc, "echo control-$((9*9))", {"TELEPORT_PROXY_SESSION": claimed}))
    control = wait_for(lambda: [e for e in events_of(jc, "exec") if "control-" in e.get("command", "")
                                and by_node(e)], what="the node's own exec event (control)")
    assert control[0]["sid"] != claimed
    wait_for(lambda: [e for e in events_of(jc, "session.data") if e.get("sid") == control[0]["sid"]],
             what="the node's session.data of the control")
    execs = [e for e in events_of(jc, "exec") if "once-" in e.get("command", "")]
    assert len(execs) == 1 and by_proxy(execs[0]) and execs[0]["server_id"] == proxy_host_id(jc), execs
    data = [e for e in events_of(jc, "session.data") if e.get("sid") == execs[0]["sid"]]
    assert len(data) == 1 and data[0]["tx"] >= len("once-42\n") and by_proxy(data[0]), data
    starts = [e for e in events_of(jc, "session.start") if by_proxy(e)]
    sids = {e["sid"] for e in starts}
    ends = [e for e in events_of(jc, "session.end") if e["sid"] in sids]
    assert sids and len(ends) == len(sids)
    # nothing of the proxied sessions came from the node: no session events, no recording
    session_kinds = {"session.start", "session.end", "session.leave", "session.join", "resize",
                     "session.data", "exec", "scp", "port"}
    from_node = [e for e in events_of_any(jc) if by_node(e) and e["event"] in session_kinds
                 and e.get("sid") != control[0]["sid"]]
    assert from_node == [], from_node
    last = sorted(starts, key=lambda e: e["time"])[-1]
    wait_for(lambda: os.path.exists(stored_recording(jc, last["sid"])), what="the proxy's recording")
    node_uploads = os.path.join(jc.data_dir, "log", "upload", "sessions")
    assert not os.path.isdir(node_uploads) or not [f for f in os.listdir(node_uploads)
                                                    if not f.startswith(".")]


def events_of_any(c: Cluster) -> list[dict[str, Any]]:
    from tests.integration.test_recording import events

    return events(c)


async def _direct_exec(c: Cluster, command: str, env: dict[str, str]) -> None:
    import asyncssh

    k = key_path(c)
    key = asyncssh.read_private_key(k)
    cert = asyncssh.read_certificate(k + "-cert.pub")
    async with asyncssh.connect("127.0.0.1", c.ports["node"], username=LOGIN, client_keys=[(key, cert)],
                                known_hosts=None, agent_path=None, config=None) as conn:
        result = await conn.run(command, env=env, check=False)
        assert result.exit_status == 0, result.stderr


# -- the browser terminal in recording proxy mode ------------------------------------------------

def test_browser_terminal_in_proxy_mode_is_audited_once(jc: Cluster) -> None:
    """The browser terminal reaches a teleport node directly (with a plain signed header): the
    node records and audits that session, and nothing logs it twice."""
    import json

    import aiohttp

    from tests.integration.test_web_sessions import COOKIE, _insecure, login

    cookie, body, _ = login(jc, user=USER)
    path = f"/v1/webapi/sites/{jc.cluster_name}/connect?node=testnode&login={LOGIN}&cols=90&rows=30"

    async def go() -> bytes:
        out = b""
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(f"https://{jc.web_addr}{path}", ssl=_insecure(),
                                    headers={"Cookie": f"{COOKIE}={cookie}"})
            await ws.send_str(json.dumps({"type": "auth", "csrf_token": body["csrf_token"]}))
            await ws.send_bytes(b"echo web-term-$((4*4))\r")
            async with asyncio.timeout(30):
                async for m in ws:
                    if m.type == aiohttp.WSMsgType.BINARY:
                        out += m.data
                        if b"web-term-16" in out and b"exit 0" not in out:
                            await ws.send_bytes(b"exit 0\r")
                    elif m.type == aiohttp.WSMsgType.TEXT:
                        msg = json.loads(m.data)
                        assert msg["type"] == "closed", msg
        return out

    assert b"web-term-16" in asyncio.run(go())
    node_port = f":{jc.ports['node']}"
    starts = wait_for(lambda: [e for e in events_of(jc, "session.start") if e["user"] == USER
                               and e["sid"] in {x["sid"] for x in events_of(jc, "session.end")}
                               and b"web-term-16" in _recorded(jc, e["sid"])],
                      what="the node's recording of the browser session")
    assert len(starts) == 1 and starts[0]["addr.local"].endswith(node_port), starts
    sid = starts[0]["sid"]
    kinds = [e["event"] for e in session_events(jc, sid)]
    assert kinds.count("session.start") == 1 and kinds.count("session.end") == 1, kinds


def _recorded(c: Cluster, sid: str) -> bytes:
    from teleport.recording.asciicast import read_cast

    path = stored_recording(c, sid)
    if not os.path.exists(path):
        return b""
    _, evs = read_cast(path)
    return "".join(d for _, k, d in evs if k == "o").encode()


def test_join_a_session_the_node_runs_itself(jc: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session that reached the teleport node another way (a direct connection here, the
    browser terminal in practice) is the node's: joined through the recording proxy, the node
    attaches and logs the joiner, the proxy only relays (nothing is logged twice)."""
    from tests.integration.test_recording import Shell

    monkeypatch.setenv("TELEPORT_HOME", home_of(jc, JOINER))
    node_port = f":{jc.ports['node']}"

    async def go() -> str:
        import asyncssh

        from teleport.client import ssh

        k = key_path(jc)
        async with asyncssh.connect(
                "127.0.0.1", jc.ports["node"], username=LOGIN, known_hosts=None, agent_path=None,
                config=None, client_keys=[(asyncssh.read_private_key(k),
                                           asyncssh.read_certificate(k + "-cert.pub"))]) as direct:
            owner = await Shell.open(direct)
            sid = await owner.sid()
            creds = ssh.load_credentials()
            proxy = await ssh.connect_proxy(creds, LOGIN)
            try:
                conn = await ssh.connect_node(proxy, creds, "testnode", jc.ports["node"], LOGIN)
                async with conn:
                    bob = await Shell.open(conn, env={"TELEPORT_SESSION": sid})
                    await bob.expect(f"joined session {sid}")
                    bob.send("echo node-run-$((5*5))\n")
                    await bob.expect("node-run-25")
                    await owner.expect("node-run-25")
                    bob.proc.close()
                    await owner.expect(f"{JOINER} left the session")
            finally:
                proxy.close()
            assert await owner.exit(0) == 0
        return sid

    sid = asyncio.run(go())
    evs = wait_for(lambda: (lambda e: e if "session.end" in [x["event"] for x in e] else None)(
        session_events(jc, sid)), what="the node's session.end")
    joins = [e for e in evs if e["event"] == "session.join"]
    assert len(joins) == 1 and joins[0]["user"] == JOINER and joins[0]["addr.local"].endswith(node_port)
    assert all(e["addr.local"].endswith(node_port) for e in evs), evs  # the node's, not the proxy's
    # the proxy logged no session of its own for the joiner's channel
    assert not [e for e in events_of(jc, "session.start") if e["user"] == JOINER]
