"""tsh's audit commands against a real cluster: the auth tunnel through the proxy, recordings ls,
play, sessions ls and join."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from teleport.client.authtunnel import auth_client_via_proxy
from teleport.client.keystore import KeyStore
from teleport.client.ssh import load_credentials
from teleport.errors import AccessDenied, NotFound
from teleport.events.schema import make_event
from teleport.recording.asciicast import CastWriter, read_cast, to_plain_cast
from tests.helpers import Cluster, cli, destroy, env_with, new_cluster, os_account, wait_port
from tests.integration.test_audit_forgery import service_client

pytestmark = pytest.mark.integration

OS_USER = "tpaudittest"
PASSWORD = "secret-pass-1"


@pytest.fixture(scope="module")
def os_user() -> Iterator[str]:
    """A real OS account (removed at teardown) for sessions on the node."""
    with os_account(OS_USER) as name:
        yield name


class Users:
    """Teleport users with their own ~/.tsh each, logged in through the real proxy."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.homes: dict[str, str] = {}

    def add(self, name: str, roles: str, logins: str = "") -> str:
        c = self.cluster
        args = ["users", "add", name, f"--roles={roles}"] + ([f"--logins={logins}"] if logins else [])
        out = c.tctl(*args).stdout
        url = next(w for w in out.split() if w.startswith("https://"))
        secret = c.invite_secret(url)
        code = c.otp.code(name, secret)
        c.tsh("--insecure", "signup", url, input=f"{PASSWORD}\n{PASSWORD}\n{code}\n")
        c.secrets[name] = secret
        home = os.path.join(c.root, f"home-{name}")
        self.homes[name] = home
        code = c.otp.code(name, secret)
        self.tsh(name, "--insecure", f"--proxy={c.web_addr}", f"--user={name}", "login",
                 input=f"{PASSWORD}\n{code}\n")
        return home

    def env(self, name: str) -> dict[str, str]:
        return env_with(TELEPORT_HOME=self.homes[name])

    def tsh(self, name: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.tsh(*args, env=self.env(name), **kw)

    def creds(self, name: str) -> Any:
        return load_credentials(KeyStore(self.homes[name]))


@pytest.fixture(scope="module")
def node_cluster(os_user: str) -> Iterator[tuple[Cluster, Users]]:
    c = new_cluster(roles="auth,proxy,node")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        users = Users(c)
        users.add("ada", "admin", os_user)
        users.add("audie", "auditor")
        users.add("acc", "access", os_user)
        yield c, users
    finally:
        destroy(c)


# the tunnel -----------------------------------------------------------------------------------
async def _as(users: Users, name: str, fn: Any) -> Any:
    async with auth_client_via_proxy(users.creds(name)) as auth:
        return await fn(auth)


def test_tunnel_reaches_auth_as_the_user(node_cluster: tuple[Cluster, Users]) -> None:
    c, users = node_cluster
    ping = asyncio.run(_as(users, "ada", lambda a: a.ping()))
    assert ping["cluster_name"] == c.cluster_name
    # several requests over several relayed connections at once
    async def many(auth: Any) -> list[Any]:
        return list(await asyncio.gather(*(auth.ping() for _ in range(8))))

    assert len(asyncio.run(_as(users, "ada", many))) == 8


def test_auditor_reads_events_and_access_user_cannot(node_cluster: tuple[Cluster, Users]) -> None:
    _, users = node_cluster
    events = asyncio.run(_as(users, "audie", lambda a: a.search_events(type="user.login")))
    logins = {e.get("user") for e in events if e.get("event") == "user.login"}
    assert {"ada", "audie", "acc"} <= logins
    with pytest.raises(AccessDenied):
        asyncio.run(_as(users, "acc", lambda a: a.search_events()))
    # the access role may list sessions, the auditor too
    assert isinstance(asyncio.run(_as(users, "acc", lambda a: a.list_sessions())), list)


def test_tunnel_needs_a_login(tmp_path: Any) -> None:
    env = env_with(TELEPORT_HOME=str(tmp_path))
    res = subprocess.run([*cli("tsh"), "recordings", "ls"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode != 0 and "not logged in" in res.stderr


# recordings -----------------------------------------------------------------------------------
CHUNKS = [(0.1, "$ echo hello\r\n"), (0.3, "hello\r\n"), (5.0, "after a long pause\r\n")]


def _upload_recording(users: Users, tmp: str, sid: str) -> None:
    """A recording and its session events, stored through the auth API as the cluster's node
    (only the node that runs a session may log it and upload its recording)."""
    gz = os.path.join(tmp, f"{sid}.cast.gz")
    with CastWriter(gz, 80, 24, title="acc@testnode") as w:
        for t, text in CHUNKS[:2]:
            w.output(text.encode(), t)
        w.resize(100, 30, 0.35)
        w.output(CHUNKS[2][1].encode(), CHUNKS[2][0])
    start = time.time() - 65
    begin = make_event("session.start", sid=sid, user="acc", login=OS_USER,
                       server_hostname="testnode", size="80:24", time=start)
    end = make_event(
        "session.end", sid=sid, user="acc", login=OS_USER,
        server_hostname="testnode", participants=["acc"], interactive=True,
        session_start=start, session_stop=start + 63,
    )

    async def go(auth: Any) -> None:
        await auth.emit_events([begin])
        await auth.upload_recording(sid, gz)
        await auth.emit_events([end])

    _, node = service_client(users.cluster, users.cluster.data_dir, "node")

    async def as_node() -> None:
        async with node:
            await go(node)

    asyncio.run(as_node())


@pytest.fixture(scope="module")
def uploaded_sid(node_cluster: tuple[Cluster, Users]) -> Iterator[str]:
    _, users = node_cluster
    sid = str(uuid.uuid4())
    tmp = tempfile.mkdtemp(prefix="tp-rec-")
    try:
        _upload_recording(users, tmp, sid)
        yield sid
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_recordings_ls(node_cluster: tuple[Cluster, Users], uploaded_sid: str) -> None:
    _, users = node_cluster
    out = users.tsh("audie", "recordings", "ls").stdout
    header, dashes, *rows = out.splitlines()
    assert header.split() == ["ID", "User", "Login", "Node", "Started", "Duration"]
    row = next(r for r in rows if r.startswith(uploaded_sid))
    assert row.split()[1:4] == ["acc", OS_USER, "testnode"] and row.split()[-1] == "1m03s"
    data = json.loads(users.tsh("audie", "recordings", "ls", "--format=json").stdout)
    assert any(e["sid"] == uploaded_sid and e["event"] == "session.end" for e in data)
    # the access role reads sessions too; a role without session rules may not
    assert uploaded_sid in users.tsh("acc", "recordings", "ls").stdout


def test_play_cast_matches_the_recording(node_cluster: tuple[Cluster, Users],
                                         uploaded_sid: str, tmp_path: Any) -> None:
    c, users = node_cluster
    out = users.tsh("audie", "play", "--format=cast", uploaded_sid).stdout
    stored = os.path.join(c.data_dir, "log", "sessions", "default", f"{uploaded_sid}.cast.gz")
    assert out == to_plain_cast(stored)
    header, events = read_cast(out.encode())
    assert header["version"] == 2 and [d for _, k, d in events if k == "r"] == ["100x30"]
    asciinema = shutil.which("asciinema")
    if asciinema is None:
        pytest.fail("asciinema not found: install it (apt-get install -y asciinema)")
    cast = tmp_path / "s.cast"
    cast.write_text(out)
    res = subprocess.run([asciinema, "play", "-i", "0.2", "-s", "4", str(cast)],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert b"hello\r\n" in res.stdout and b"after a long pause" in res.stdout


def test_play_text_keeps_timing_and_caps_pauses(node_cluster: tuple[Cluster, Users],
                                                uploaded_sid: str) -> None:
    _, users = node_cluster
    t0 = time.monotonic()
    out = users.tsh("audie", "play", uploaded_sid).stdout
    took = time.monotonic() - t0
    # not a terminal: no resize sequences (text mode reads \r\n as \n)
    assert out == "".join(text for _, text in CHUNKS).replace("\r\n", "\n")
    # 0.35 s of activity plus the 4.65 s pause capped at 2 s; process start-up is on top
    assert took >= 2.3, took
    assert took < 2.3 + 8, took
    t0 = time.monotonic()
    users.tsh("audie", "play", "--speed=10", uploaded_sid)
    assert time.monotonic() - t0 < took - 1.5


def test_play_errors(node_cluster: tuple[Cluster, Users]) -> None:
    _, users = node_cluster
    res = users.tsh("audie", "play", str(uuid.uuid4()), check=False)
    assert res.returncode != 0 and "no recording of session" in res.stderr
    assert "tsh recordings ls" in res.stderr
    res = users.tsh("audie", "play", "--speed=0", str(uuid.uuid4()), check=False)
    assert res.returncode != 0 and "--speed" in res.stderr


# live sessions: recording by the node, sessions ls and join ----------------------------------
class PtyProc:
    """A process with a pseudo-terminal, read in the background of the test's polling."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.out = bytearray()

    def pump(self, timeout: float = 0.1) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                chunk = b""
            self.out += chunk

    def expect(self, needle: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen; got {bytes(self.out)[-2000:]!r}")
            self.pump()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"did not exit; output {bytes(self.out)[-2000:]!r}")
            self.pump()
        self.pump(0)
        return int(self.proc.returncode)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)


def _node_records() -> bool:
    """The node side of recording and joining is present in this tree."""
    import importlib.util

    return importlib.util.find_spec("teleport.node.recorder") is not None


def test_session_recorded_by_node_plays_back(node_cluster: tuple[Cluster, Users]) -> None:
    if not _node_records():
        pytest.skip("WAITING for the node's session recording (teleport.node.recorder)")
    c, users = node_cluster
    before = {r["sid"] for r in json.loads(
        users.tsh("audie", "recordings", "ls", "--format=json").stdout)}
    sh = PtyProc([*cli("tsh"), "ssh", f"{OS_USER}@testnode"], users.env("acc"))
    try:
        sh.expect(b"$ ", 30)
        sh.send(b"echo rec-$((40+2))\r")
        sh.expect(b"rec-42")
        sh.send(b"exit\r")
        assert sh.wait() == 0
    finally:
        sh.close()
    deadline = time.monotonic() + 30
    sid = ""
    while time.monotonic() < deadline and not sid:
        recs = json.loads(users.tsh("audie", "recordings", "ls", "--format=json").stdout)
        sid = next((r["sid"] for r in recs if r["sid"] not in before
                    and r.get("login") == OS_USER and r.get("user") == "acc"), "")
        time.sleep(0.3)
    assert sid, f"the node's recording did not show up in 'tsh recordings ls'\n{c.log()}"
    cast = users.tsh("audie", "play", "--format=cast", sid).stdout
    _, events = read_cast(cast.encode())
    assert "rec-42" in "".join(d for _, k, d in events if k == "o")


def test_sessions_ls_and_join(node_cluster: tuple[Cluster, Users]) -> None:
    if not _node_records():
        pytest.skip("WAITING for the node's shared sessions (TELEPORT_SESSION join)")
    c, users = node_cluster
    host = PtyProc([*cli("tsh"), "ssh", f"{OS_USER}@testnode"], users.env("acc"))
    joiner: PtyProc | None = None
    try:
        host.expect(b"$ ", 30)
        sid = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not sid:
            out = users.tsh("ada", "sessions", "ls").stdout
            rows = [r for r in out.splitlines()[2:] if OS_USER in r]
            sid = rows[0].split()[0] if rows else ""
            time.sleep(0.2)
        assert sid, f"no live session in 'tsh sessions ls':\n{out}"
        assert "testnode" in rows[0] and "acc" in rows[0]
        # the auditor may read the session but has no login on the node: refused, clearly
        res = users.tsh("audie", "join", sid, check=False)
        assert res.returncode != 0 and "does not allow that login" in res.stderr, res.stderr
        joiner = PtyProc([*cli("tsh"), "join", sid], users.env("ada"))
        # the joiner types once it joined (its terminal is raw by then: typed earlier, the
        # line would be flushed with the cooked input), both see it
        joiner.expect(b"joined session", 30)
        joiner.send(b"echo joined-$((6*7))\r")
        joiner.expect(b"joined-42")
        host.expect(b"joined-42")
        # the host types, the joiner sees it live
        host.send(b"echo host-$((7*7))\r")
        host.expect(b"host-49")
        joiner.expect(b"host-49")
        # both appear as participants
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sess = json.loads(users.tsh("ada", "sessions", "ls", "--format=json").stdout)
            mine = [s for s in sess if (s.get("sid") or s.get("id")) == sid]
            names = json.dumps(mine)
            if '"ada"' in names and '"acc"' in names:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"participants not listed: {sess}")
        # the session ends: the joiner exits too
        host.send(b"exit\r")
        host.wait()
        joiner.wait()
    finally:
        host.close()
        if joiner is not None:
            joiner.close()
    # an ended session cannot be joined
    res = users.tsh("ada", "join", sid, check=False)
    assert res.returncode != 0 and "not active" in res.stderr


def test_join_errors(node_cluster: tuple[Cluster, Users]) -> None:
    _, users = node_cluster
    res = users.tsh("ada", "join", str(uuid.uuid4()), check=False)
    assert res.returncode != 0 and "is not active" in res.stderr and "tsh sessions ls" in res.stderr
    res = users.tsh("audie", "sessions", "ls", check=False)
    assert res.returncode == 0 and res.stdout.split()[:5] == ["ID", "Node", "Login",
                                                               "Participants", "Created"]
    with pytest.raises(NotFound):
        asyncio.run(_as(users, "ada", lambda a: a.get_session(str(uuid.uuid4()))))
