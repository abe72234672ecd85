"""SIGNALS, with a real `teleport start` (auth, proxy and node in one process) and an interactive
`tsh ssh` session held open across each signal (~60 s):

- SIGQUIT: new connections are refused, the live session carries on, the process exits when it
  ends; with --shutdown-timeout it exits after that long whatever is still open.
- SIGTERM: the process exits at once, the session with it.
- SIGHUP: teleport.yaml is re-read by a successor process that inherits the listening sockets:
  not one connection is refused during the switch, new sessions see the new configuration, the
  live session carries on in the old process, which exits when it ends.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import Cluster, cli, destroy, env_with, new_cluster

pytestmark = pytest.mark.integration

PASSWORD = "secret-pass-1"


def _wait(pred: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    """The cluster process, started with extra flags, and the pid file it keeps."""

    def __init__(self, c: Cluster, *flags: str) -> None:
        self.c = c
        self.pid_file = os.path.join(c.root, "teleport.pid")
        c.write_config()
        self.out = open(os.path.join(c.root, "stdout.log"), "ab")
        c.proc = subprocess.Popen(
            [*cli("teleport"), "start", "-c", c.config_path, f"--roles={c.roles}",
             f"--pid-file={self.pid_file}", *flags],
            stdout=self.out, stderr=subprocess.STDOUT, env=env_with())
        _wait(lambda: self.pid() == c.proc.pid, 60, "the pid file")  # type: ignore[union-attr]

    def pid(self) -> int:
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0


def _signup(c: Cluster) -> None:
    out = c.tctl("users", "add", "sig", "--roles=access", "--logins=root").stdout
    url = next(w for w in out.split() if w.startswith("https://"))
    c.tsh("--insecure", "signup", url, input=f"{PASSWORD}\n{PASSWORD}\n")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    c = new_cluster(roles="auth,proxy,node", second_factor="off")
    extra: list[int] = []
    try:
        yield c
    finally:
        pid_file = os.path.join(c.root, "teleport.pid")
        if os.path.exists(pid_file):  # a successor started by SIGHUP is not c.proc
            try:
                extra.append(int(open(pid_file).read().strip()))
            except ValueError:
                pass
        destroy(c)
        for pid in extra:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Session:
    """An interactive `tsh ssh root@testnode` shell, driven line by line."""

    def __init__(self, c: Cluster) -> None:
        self.p = subprocess.Popen(
            [*cli("tsh"), "--insecure", f"--proxy={c.web_addr}", "ssh", "root@testnode"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env_with(TELEPORT_HOME=c.home))
        self.buf = b""

    def say(self, word: str, timeout: float = 30) -> bool:
        """Run `echo word` in the shell; True when the answer came back."""
        assert self.p.stdin is not None and self.p.stdout is not None
        try:
            self.p.stdin.write(f"echo {word}\n".encode())
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        deadline = time.time() + timeout
        fd = self.p.stdout.fileno()
        while word.encode() not in self.buf and time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return False
                self.buf += chunk
        return word.encode() in self.buf

    def exit(self) -> int:
        assert self.p.stdin is not None
        try:
            self.p.stdin.write(b"exit\n")
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        return self.p.wait(timeout=30)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _start(c: Cluster, *flags: str) -> Running:
    r = Running(c, *flags)
    _wait(lambda: b"What to do next" in open(os.path.join(c.root, "stdout.log"), "rb").read(), 60,
          "teleport to start")
    _signup(c)
    return r


def test_sigquit_lets_the_live_session_finish(cluster: Cluster) -> None:
    c = cluster
    _start(c)
    s = Session(c)
    try:
        assert s.say("before-quit"), s.buf
        assert c.proc is not None
        c.proc.send_signal(signal.SIGQUIT)
        _wait(lambda: _refused(c.ports["ssh"]) and _refused(c.ports["node"]), 30, "the listeners to close")
        assert s.say("after-quit"), s.buf  # the live session is untouched
        time.sleep(1)
        assert c.proc.poll() is None, "exited with a live session"
        assert s.exit() == 0
        assert c.proc.wait(timeout=30) == 0
    finally:
        s.kill()


def test_sigquit_is_bounded_by_the_shutdown_timeout(cluster: Cluster) -> None:
    c = cluster
    _start(c, "--shutdown-timeout=3s")
    s = Session(c)
    try:
        assert s.say("held"), s.buf
        assert c.proc is not None
        t0 = time.monotonic()
        c.proc.send_signal(signal.SIGQUIT)
        assert c.proc.wait(timeout=30) == 0
        assert 2.5 <= time.monotonic() - t0 < 25
        assert s.p.wait(timeout=30) is not None  # closed with the process
    finally:
        s.kill()


def test_sigterm_is_immediate(cluster: Cluster) -> None:
    c = cluster
    _start(c)
    s = Session(c)
    try:
        assert s.say("before-term"), s.buf
        assert c.proc is not None
        t0 = time.monotonic()
        c.proc.send_signal(signal.SIGTERM)
        assert c.proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 15
        assert s.p.wait(timeout=30) is not None
    finally:
        s.kill()


def test_sighup_restarts_in_place_without_dropping_anything(cluster: Cluster) -> None:
    c = cluster
    r = _start(c)
    s = Session(c)
    refused: list[str] = []
    stop = threading.Event()

    def knock() -> None:  # new connections during the whole switch: none may be refused
        while not stop.is_set():
            for name in ("ssh", "web", "node", "auth"):
                if _refused(c.ports[name]):
                    refused.append(name)
            time.sleep(0.02)

    knocker = threading.Thread(target=knock)
    try:
        assert s.say("before-hup"), s.buf
        old = c.proc
        assert old is not None
        # the new configuration: a label on the node, seen only by the successor
        c.ssh_extra = "  labels: {reloaded: again}\n"
        c.write_config()
        knocker.start()
        old.send_signal(signal.SIGHUP)
        _wait(lambda: r.pid() not in (0, old.pid), 60, "the successor's pid file")
        new_pid = r.pid()
        assert old.poll() is None  # draining: the session is still there
        assert s.say("after-hup"), s.buf
        res = c.tsh("--insecure", f"--proxy={c.web_addr}", "ssh", "root@testnode", "echo", "new-session",
                    check=False)
        assert res.returncode == 0 and "new-session" in res.stdout, res.stderr + c.log()

        def relabelled() -> bool:
            out = c.tsh("--insecure", f"--proxy={c.web_addr}", "ls", check=False).stdout
            return "reloaded=again" in out
        _wait(relabelled, 90, "the successor's heartbeat with the new label")
        assert s.exit() == 0
        assert old.wait(timeout=30) == 0  # the old process ends with its last session
        stop.set()
        knocker.join()
        assert refused == [], f"connections refused during the restart: {refused}"
        os.kill(new_pid, 0)  # the successor serves on
        res = c.tsh("--insecure", f"--proxy={c.web_addr}", "ssh", "root@testnode", "echo", "still",
                    check=False)
        assert res.returncode == 0 and "still" in res.stdout, res.stderr
    finally:
        stop.set()
        if knocker.is_alive():
            knocker.join()
        s.kill()


def test_sighup_with_a_broken_file_keeps_serving(cluster: Cluster) -> None:
    c = cluster
    r = _start(c)
    assert c.proc is not None
    with open(c.config_path, "a") as f:
        f.write("no_such_section: {}\n")
    c.proc.send_signal(signal.SIGHUP)
    _wait(lambda: "not restarting: the configuration cannot be loaded" in c.log(), 30, "the refusal")
    assert c.proc.poll() is None and r.pid() == c.proc.pid
    res = c.tsh("--insecure", f"--proxy={c.web_addr}", "ssh", "root@testnode", "echo", "same-process",
                check=False)
    assert res.returncode == 0 and "same-process" in res.stdout, res.stderr


def test_sigterm_while_starting_does_not_wait_for_the_start(tmp_path: object) -> None:
    """A node whose auth server never answers is still starting (retrying its join); SIGTERM
    then ends it at once instead of after the retries."""
    import tempfile

    from tests.helpers import free_port

    root = tempfile.mkdtemp(prefix="tp-sigstart-")
    silent = socket.socket()  # accepts TCP and never speaks: the join's TLS handshake hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    conf = os.path.join(root, "teleport.yaml")
    with open(conf, "w") as f:
        f.write(f"teleport:\n  nodename: sigstart\n  data_dir: {root}/data\n"
                f"  log: {{output: {root}/teleport.log, severity: INFO}}\n"
                f"auth_service: {{enabled: no}}\nproxy_service: {{enabled: no}}\n"
                f"ssh_service: {{enabled: yes, listen_addr: 127.0.0.1:{free_port()}}}\n")
    proc = subprocess.Popen(
        [*cli("teleport"), "start", "-c", conf, "--roles=node", "--token=" + "0" * 32,
         f"--auth-server=127.0.0.1:{silent.getsockname()[1]}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_with())
    try:
        time.sleep(2.0)  # well into the join attempt
        assert proc.poll() is None, "the node gave up on its own: the test proves nothing"
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - t < 3.0, f"SIGTERM took {time.monotonic() - t:.1f} s"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        silent.close()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
