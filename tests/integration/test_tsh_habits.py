"""OpenSSH's habits in tsh, against real processes: escape sequences and the `ssh`-named tsh through
a real pseudo-terminal, login on demand, -R/-D/-N forwarding as the role allows, session.data
events, versions."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from tests.helpers import (
    SRC,
    Cluster,
    cli,
    destroy,
    env_with,
    free_port,
    kill_proc,
    new_cluster,
    os_account,
)

OS_USER = "tphabits"
PASSWORD = "secret-pass-1"


@pytest.fixture(scope="module")
def hc() -> Iterator[Cluster]:
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy,node")
        try:
            c.start()
            c.add_user("joe", OS_USER)
            c.login("joe")
            deadline = time.time() + 20
            while "testnode" not in c.tsh("ls").stdout:
                assert time.time() < deadline, "the node never registered\n" + c.log()
                time.sleep(0.3)
            yield c
        finally:
            destroy(c)


def tsh(c: Cluster, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return c.tsh(*args, input=input, check=check)


def node(c: Cluster) -> list[str]:
    return ["-p", str(c.ports["node"]), f"{OS_USER}@testnode"]


class Pty:
    """A command on a real pseudo-terminal; read what it prints, type into it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.out = b""

    def expect(self, needle: bytes, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while needle not in self.out:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{needle!r} never appeared; got:\n{self.out[-3000:]!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    if self.proc.poll() is not None and needle not in self.out:
                        raise AssertionError(f"exited before {needle!r}:\n{self.out[-3000:]!r}") from None

    def type(self, data: bytes) -> None:
        os.write(self.master, data)
        time.sleep(0.2)  # separate reads, as a person types

    def wait(self, timeout: float = 30) -> int:
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
        return self.proc.wait(timeout=max(deadline - time.time(), 1))

    def close(self) -> None:
        if self.proc.poll() is None:
            kill_proc(self.proc)  # type: ignore[arg-type]
        os.close(self.master)


def shell_ready(p: Pty) -> None:
    p.expect(b"$ ")  # the remote prompt: the terminal is raw and the shell reads from now on
    p.type(b"echo READY-$((20+22))\r")
    p.expect(b"READY-42")


def test_escape_sequences_in_a_real_terminal(hc: Cluster) -> None:
    p = Pty([*cli("tsh"), "ssh", *node(hc)], env_with(TELEPORT_HOME=hc.home, TERM="dumb"))
    try:
        shell_ready(p)
        # a tilde in the middle of a line is typed as is
        p.type(b"echo mid~.line-$((1+1))\r")
        p.expect(b"mid~.line-2")
        p.type(b"~?")
        p.expect(b"Supported escape sequences")
        # ~~ sends one tilde (the shell runs "~=lit-5", which is no command)
        p.type(b"~~=lit-$((2+3))\r")
        p.expect(b"~=lit-5: command not found")
        assert b"~~=lit-5" not in p.out
        p.type(b"~.")
        assert p.wait() == 255
        p.expect(b"Connection to testnode closed.")
    finally:
        p.close()


def test_escape_sequences_can_be_turned_off(hc: Cluster) -> None:
    p = Pty([*cli("tsh"), "ssh", "--enable-escape-sequences=false", *node(hc)],
            env_with(TELEPORT_HOME=hc.home, TERM="dumb"))
    try:
        shell_ready(p)
        p.type(b"~.\r")  # goes to the shell, which has no such command
        p.expect(b"command not found")
        p.type(b"exit 3\r")
        assert p.wait() == 3
    finally:
        p.close()


@pytest.fixture()
def ssh_named(hc: Cluster) -> Iterator[str]:
    """A copy of tsh named `ssh` (the reference: rename tsh to ssh)."""
    d = tempfile.mkdtemp(prefix="tp-sshname-")
    path = os.path.join(d, "ssh")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {SRC!r})\n"
                "from teleport.cli.tsh import main\nsys.exit(main())\n")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tsh_named_ssh_takes_openssh_command_line(hc: Cluster, ssh_named: str) -> None:
    env = env_with(TELEPORT_HOME=hc.home)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ssh_named, *args], capture_output=True, text=True, timeout=60,
                              env=env, stdin=subprocess.DEVNULL)

    res = run("-p", str(hc.ports["node"]), f"{OS_USER}@testnode", "echo", "via-$((40+2))")
    assert (res.returncode, res.stdout) == (0, "via-42\n"), res.stderr
    res = run("-o", f"Port={hc.ports['node']}", "-l", OS_USER, "-T", "testnode", "--", "exit", "4")
    assert res.returncode == 4, res.stderr
    res = run("-Z", "testnode")
    assert res.returncode == 255
    assert res.stderr.startswith("ssh: unknown option -- Z\nusage: ssh ")
    res = run("-o", "NoSuchOption=1", "testnode")
    assert res.returncode == 255 and "Bad configuration option: nosuchoption" in res.stderr
    # a failure of ssh itself is 255, as OpenSSH
    res = run("-p", str(hc.ports["node"]), f"{OS_USER}@nosuchnode", "true")
    assert res.returncode == 255 and "no node named 'nosuchnode'" in res.stderr


def test_tsh_named_ssh_in_a_terminal(hc: Cluster, ssh_named: str) -> None:
    p = Pty([ssh_named, "-p", str(hc.ports["node"]), "-e", "%", f"{OS_USER}@testnode"],
            env_with(TELEPORT_HOME=hc.home, TERM="dumb"))
    try:
        shell_ready(p)
        p.type(b"%.")
        assert p.wait() == 255
    finally:
        p.close()


class Echo:
    """A TCP echo server on loopback (what the forwarded connections reach)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"echo:" + data)

    def close(self) -> None:
        self.sock.close()


def roundtrip(port: int, socks_target: int | None = None, timeout: float = 20) -> bytes:
    """Send b'ping' to 127.0.0.1:port (through a SOCKS5 proxy there when socks_target is set)."""
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if socks_target is not None:
                    s.sendall(b"\x05\x01\x00")
                    assert s.recv(2) == b"\x05\x00"
                    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1")
                              + socks_target.to_bytes(2, "big"))
                    reply = s.recv(10)
                    if reply[1:2] != b"\x00":
                        return b"socks-refused"
                s.sendall(b"ping")
                return s.recv(1024)
        except (ConnectionRefusedError, ConnectionResetError):
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def start_forward(hc: Cluster, *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*cli("tsh"), "ssh", "-N", *flags, *node(hc)], env=env_with(TELEPORT_HOME=hc.home),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_remote_and_dynamic_forwarding_follow_the_role(hc: Cluster) -> None:
    echo = Echo()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rport, dport = free_port(), free_port()
        procs.append(start_forward(hc, "-R", f"127.0.0.1:{rport}:127.0.0.1:{echo.port}"))
        procs.append(start_forward(hc, "-D", str(dport)))
        assert roundtrip(rport) == b"echo:ping"  # the node listens, the client connects back
        assert roundtrip(dport, echo.port) == b"echo:ping"  # SOCKS through the node
        for p in procs:
            assert p.poll() is None  # -N keeps running
    finally:
        for p in procs:
            kill_proc(p)  # type: ignore[arg-type]
            p.communicate()
        procs.clear()
    # a role without port forwarding: -R refused with a message, -D connections refused
    role = (
        "kind: role\nversion: v3\nmetadata: {name: noforward}\nspec:\n"
        "  options: {port_forwarding: false}\n"
        f"  allow: {{logins: [{OS_USER}], node_labels: {{'*': '*'}}}}\n"
    )
    hc.tctl("create", "-", input=role)
    hc.tctl("users", "update", "joe", "--set-roles=noforward")
    try:
        hc.login("joe")
        rport, dport = free_port(), free_port()
        res = tsh(hc, "ssh", "-N", "-R", f"127.0.0.1:{rport}:127.0.0.1:{echo.port}", *node(hc), check=False)
        assert res.returncode != 0 and "port_forwarding" in res.stderr, res.stderr
        p = start_forward(hc, "-D", str(dport))
        procs.append(p)
        # the node refuses the channel: nothing reaches the echo server
        assert roundtrip(dport, echo.port) in (b"socks-refused", b"")
    finally:
        for p in procs:
            kill_proc(p)  # type: ignore[arg-type]
            p.communicate()
        hc.tctl("users", "update", "joe", "--set-roles=access")
        hc.login("joe")
        echo.close()


def test_session_data_event(hc: Cluster) -> None:
    res = tsh(hc, "ssh", *node(hc), "head -c 5000 /dev/zero | tr '\\0' x")
    assert res.stdout == "x" * 5000
    deadline = time.time() + 20
    while True:
        out = hc.tctl("events", "ls", "--type=session.data", "--format=json").stdout
        events = [e for e in json.loads(out) if e.get("tx", 0) >= 5000]
        if events or time.time() > deadline:
            break
        time.sleep(0.3)
    assert events, out
    ev = events[-1]
    assert ev["code"] == "T2006I" and ev["user"] == "joe" and ev["login"] == OS_USER
    assert ev["rx"] >= 0 and ev["sid"]


def test_ssh_without_certificate_logs_in_first(hc: Cluster) -> None:
    tsh(hc, "logout")
    try:
        code = hc.otp.code("joe", hc.secrets["joe"])
        res = tsh(hc, "--insecure", f"--proxy={hc.web_addr}", "--user=joe", "ssh", *node(hc), "echo", "in",
                  input=f"{PASSWORD}\n{code}\n")
        assert res.stdout == "in\n", res.stderr
        assert "logging in" in res.stderr and "Enter password for Teleport user joe" in res.stderr
        # the login stays: no prompt the next time
        assert tsh(hc, "ssh", *node(hc), "echo", "again").stdout == "again\n"
    finally:
        hc.login("joe")


def test_versions(hc: Cluster) -> None:
    assert tsh(hc, "version").stdout.startswith("Teleport v")
    assert hc.tctl("version").stdout.startswith("Teleport v")
    res = subprocess.run([*cli("teleport"), "--version"], capture_output=True, text=True, env=env_with())
    assert res.returncode == 0 and res.stdout.startswith("Teleport v")
