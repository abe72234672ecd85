"""Shared test helpers: free ports, a real cluster of `teleport` processes, running tsh/tctl."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyotp

# static and command labels for a test node (ssh_extra of new_cluster)
NODE_LABELS = (
    "  labels: {env: prod, team: core}\n"
    "  commands: [{name: arch, command: [echo, x86-test], period: 1m}]\n"
)

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
# In-process imports must see this checkout's sources, whatever an editable install points at.
if sys.path[:1] != [SRC]:
    sys.path.insert(0, SRC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def cli(tool: str) -> list[str]:
    """The command for a console script, run from this checkout's sources."""
    return [sys.executable, "-m", f"teleport.cli.{tool}"]


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SSH_AUTH_SOCK", None)
    env.update(extra)
    return env


def kill_proc(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class OTPClock:
    """Hands out one-time codes a server will accept: never a step twice."""

    last: dict[str, int] = field(default_factory=dict)

    def code(self, user: str, secret: str) -> str:
        now_step = int(time.time() // 30)
        step = max(now_step, self.last.get(user, -1) + 1)
        if step > now_step + 1:  # both usable steps spent: wait for the next window
            time.sleep((now_step + 1) * 30 - time.time() + 0.2)
            return self.code(user, secret)
        self.last[user] = step
        return str(pyotp.TOTP(secret).at(step * 30))


@dataclass
class Cluster:
    """A single-host cluster (auth + proxy [+ node]) started as a real `teleport start` process."""

    root: str
    ports: dict[str, int]
    cluster_name: str = "test-cluster"
    static_token: str = "static-join-token-0123456789abcdef"
    second_factor: str = "otp"
    # auth_service.authentication beyond second_factor, e.g. "type: oidc, connector_name: idp"
    authentication: str = "type: local"
    roles: str = "auth,proxy"
    storage: str = "{type: dir}"
    ssh_extra: str = ""  # more lines for ssh_service (indented two spaces), e.g. labels
    auth_extra: str = ""  # more lines for auth_service, e.g. session_recording
    proxy_extra: str = ""  # more lines for proxy_service, e.g. ssh_allowed_hosts
    teleport_extra: str = ""  # more lines for teleport (indented two spaces), e.g. connection_limits
    # the proxy's public host: "localhost" for browsers' security keys (never an IP address)
    web_host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    otp: OTPClock = field(default_factory=OTPClock)
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def config_path(self) -> str:
        return os.path.join(self.root, "teleport.yaml")

    @property
    def web_addr(self) -> str:
        return f"{self.web_host}:{self.ports['web']}"

    @property
    def auth_addr(self) -> str:
        return f"127.0.0.1:{self.ports['auth']}"

    @property
    def home(self) -> str:
        return os.path.join(self.root, "tsh-home")

    def write_config(self) -> None:
        p = self.ports
        text = textwrap.dedent(
            f"""\
            teleport:
              nodename: testnode
              data_dir: {self.data_dir}
              log: {{output: {os.path.join(self.root, 'teleport.log')}, severity: INFO}}
              storage: {self.storage}
            {{teleport_extra}}auth_service:
              enabled: yes
              cluster_name: {self.cluster_name}
              listen_addr: 127.0.0.1:{p['auth']}
              tokens: ["proxy,node:{self.static_token}"]
              authentication: {{{self.authentication}, second_factor: {self.second_factor}}}
            {{auth_extra}}ssh_service:
              enabled: yes
              listen_addr: 127.0.0.1:{p['node']}
            {{ssh_extra}}proxy_service:
              enabled: yes
              listen_addr: 127.0.0.1:{p['ssh']}
              web_listen_addr: 127.0.0.1:{p['web']}
              tunnel_listen_addr: 127.0.0.1:{p['tunnel']}
              public_addr: {self.web_host}:{p['web']}
            """
        )
        text = text.replace("{teleport_extra}", self.teleport_extra)
        text = text.replace("{auth_extra}", self.auth_extra).replace("{ssh_extra}", self.ssh_extra)
        text += self.proxy_extra
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, timeout: float = 30) -> None:
        self.write_config()
        self.stdout = open(os.path.join(self.root, "stdout.log"), "wb")
        self.proc = subprocess.Popen(
            [*cli("teleport"), "start", "-c", self.config_path, f"--roles={self.roles}"],
            stdout=self.stdout,
            stderr=subprocess.STDOUT,
            env=env_with(),
        )
        wait_port(self.ports["auth"], timeout, self.proc)
        if "proxy" in self.roles:
            wait_port(self.ports["web"], timeout, self.proc)
        # the proxy registers itself right after it listens
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(os.path.join(self.root, "stdout.log")) as f:
                if "What to do next" in f.read():
                    return
            time.sleep(0.05)
        raise TimeoutError("teleport did not finish starting:\n" + self.log())

    def stop(self) -> None:
        if self.proc is not None:
            kill_proc(self.proc)
            self.proc = None

    def log(self) -> str:
        out = []
        for name in ("stdout.log", "teleport.log"):
            path = os.path.join(self.root, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- {name}\n{f.read()[-5000:]}")
        return "\n".join(out)

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [*cli(tool)]
        if tool == "tctl":
            cmd += ["-c", self.config_path]
        cmd += list(args)
        res = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout,
            env=env or env_with(TELEPORT_HOME=self.home),
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} exited {res.returncode}\nstdout:{res.stdout}\n"
                f"stderr:{res.stderr}\n{self.log()}"
            )
        return res

    def tctl(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run("tctl", *args, **kw)  # type: ignore[arg-type]

    def tsh(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run("tsh", *args, **kw)  # type: ignore[arg-type]

    def invite_secret(self, url: str) -> str:
        """The invite's TOTP secret, read the way tsh signup reads it."""
        from teleport.client.session import parse_invite_url, signup_info
        from teleport.client.webclient import WebClient

        proxy, token = parse_invite_url(url)
        return str(signup_info(WebClient(proxy, insecure=True), token)["otp_secret"])

    def add_user(self, name: str, logins: str = "", password: str = "secret-pass-1") -> str:
        """Invite and sign up a user through tctl and tsh; returns the TOTP secret."""
        args = ["users", "add", name] + ([logins] if logins else [])
        out = self.tctl(*args).stdout
        url = next(w for w in out.split() if w.startswith("https://"))
        secret = self.invite_secret(url)
        code = self.otp.code(name, secret)
        # signup logs the new user in: into a home of its own, so that the profile tests use
        # stays the one they logged in to
        signup_home = os.path.join(self.root, f"signup-home-{name}")
        self.tsh("--insecure", "signup", url, input=f"{password}\n{password}\n{code}\n",
                 env=env_with(TELEPORT_HOME=signup_home))
        self.secrets[name] = secret
        return secret

    def login(self, name: str, password: str = "secret-pass-1", *extra: str,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        code = self.otp.code(name, self.secrets[name]) if self.second_factor in ("otp", "on") else ""
        return self.tsh("--insecure", f"--proxy={self.web_addr}", f"--user={name}", *extra, "login",
                        input=f"{password}\n{code}\n", check=check)


@contextmanager
def os_account(name: str) -> Iterator[str]:
    """A real OS account for node sessions, removed (with its home) afterwards; needs root."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root to create an OS user for node sessions")
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


class NodeProc:
    """A node in its own process and data_dir, joined to `cluster` (start it with the flags,
    e.g. --token=...), removed with its data_dir by destroy()."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.root = tempfile.mkdtemp(prefix=f"tp-node-{name}-")
        self.name = name
        self.port = free_port()
        self.config = os.path.join(self.root, "teleport.yaml")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""\
                teleport:
                  nodename: {name}
                  data_dir: {self.root}/data
                  log: {{output: {self.root}/teleport.log, severity: INFO}}
                auth_service: {{enabled: no}}
                proxy_service: {{enabled: no}}
                ssh_service:
                  enabled: yes
                  listen_addr: 127.0.0.1:{self.port}
                """))
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [*cli("teleport"), "start", "-c", self.config, "--roles=node",
             f"--auth-server={self.cluster.auth_addr}", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_with(),
        )

    def wait_listening(self) -> None:
        assert self.proc is not None
        wait_port(self.port, 20, self.proc)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)  # a frozen node must be able to die
            kill_proc(self.proc)  # type: ignore[arg-type]
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def new_cluster(**kw: object) -> Cluster:
    root = tempfile.mkdtemp(prefix="tp-cluster-")
    ports = {k: free_port() for k in ("auth", "web", "ssh", "tunnel", "node")}
    return Cluster(root=root, ports=ports, **kw)  # type: ignore[arg-type]


def destroy(cluster: Cluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def cluster_user_ca_key(c: Cluster) -> Any:
    """The cluster's user CA private key, read straight from the auth server's storage (tests
    use it to forge expired or otherwise special certificates signed by the real CA)."""
    import asyncio

    from teleport.auth.store import ClusterStore
    from teleport.backend import open_backend
    from teleport.ca import keys
    from teleport.config.fileconf import load_config_file

    async def read() -> Any:
        cfg = load_config_file(c.config_path)
        backend = await open_backend(cfg.teleport.storage, c.data_dir)
        try:
            ca = await ClusterStore(backend).get_ca("user")
        finally:
            await backend.close()
        return keys.load_private_key(ca.spec["signing_keys"][0])

    return asyncio.run(read())


class ServiceProc:
    """A `teleport start` of one proxy or node in its own data_dir, joined with a static token to
    the given auth servers (`labels`: the node's static labels)."""

    def __init__(self, name: str, role: str, auth_servers: list[str], token: str,
                 labels: dict[str, str] | None = None) -> None:
        self.root = tempfile.mkdtemp(prefix=f"tp-{role}-{name}-")
        self.name, self.role, self.token = name, role, token
        self.ports = {k: free_port() for k in ("ssh", "web", "tunnel", "node")}
        p = self.ports
        proxy = (f"proxy_service:\n  enabled: yes\n  listen_addr: 127.0.0.1:{p['ssh']}\n"
                 f"  web_listen_addr: 127.0.0.1:{p['web']}\n"
                 f"  tunnel_listen_addr: 127.0.0.1:{p['tunnel']}\n"
                 f"  public_addr: 127.0.0.1:{p['web']}\n") if role == "proxy" else \
            "proxy_service: {enabled: no}\n"
        node = "ssh_service: {enabled: no}\n"
        if role == "node":
            node = f"ssh_service:\n  enabled: yes\n  listen_addr: 127.0.0.1:{p['node']}\n"
            if labels:
                node += "  labels: {" + ", ".join(f"{k}: {v}" for k, v in labels.items()) + "}\n"
        self.config = os.path.join(self.root, "teleport.yaml")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""\
                teleport:
                  nodename: {name}
                  data_dir: {self.root}/data
                  log: {{output: {self.root}/teleport.log, severity: INFO}}
                  auth_servers: [{", ".join(auth_servers)}]
                auth_service: {{enabled: no}}
                """) + node + proxy)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def web_addr(self) -> str:
        return f"127.0.0.1:{self.ports['web']}"

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [*cli("teleport"), "start", "-c", self.config, f"--roles={self.role}",
             f"--token={self.token}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_with())
        wait_port(self.ports["web" if self.role == "proxy" else "node"], timeout, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            kill_proc(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self, tail: int = 4000) -> str:
        path = os.path.join(self.root, "teleport.log")
        return open(path, errors="replace").read()[-tail:] if os.path.exists(path) else ""

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
