"""Recording proxy mode (auth_service.session_recording: proxy) with real processes: an OpenSSH
sshd node (TrustedUserCAKeys, host certificate from `tctl auth sign --host`) and a teleport node
reached through a proxy that terminates SSH, logs in with the user's forwarded certificate,
records the session and logs its events with the proxy's own server_id."""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from teleport.client.sshconfig import ssh_config_block
from teleport.recording.asciicast import read_cast
from tests.helpers import (
    Cluster,
    cluster_user_ca_key,
    destroy,
    env_with,
    free_port,
    kill_proc,
    new_cluster,
    wait_port,
)
from tests.integration.test_proxy_tsh import ALLOW_LOOPBACK, SSHD, Sshd
from tests.integration.test_recording import Shell, session_events, stored_recording, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-agent")
             and os.geteuid() == 0),
        reason="needs OpenSSH sshd/ssh/ssh-agent and root",
    ),
]
LOGIN = "root"
USER = "recjoe"
PROXY_MODE = "  session_recording: proxy\n"


def proxy_cluster(proxy_extra: str = ALLOW_LOOPBACK) -> Cluster:
    c = new_cluster(roles="auth,proxy,node", auth_extra=PROXY_MODE, proxy_extra=proxy_extra)
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        c.add_user(USER, LOGIN)
        c.login(USER)
    except BaseException:
        destroy(c)
        raise
    return c


def proxy_host_id(c: Cluster) -> str:
    with open(os.path.join(c.data_dir, "keys", "proxy.json")) as f:
        return str(json.load(f)["host_id"])


def key_path(c: Cluster) -> str:
    return os.path.join(c.home, "keys", "127.0.0.1", USER)


def tsh(c: Cluster, *args: str, check: bool = True, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, "-m", "teleport.cli.tsh", *args], capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
        env=env or env_with(TELEPORT_HOME=c.home), check=False,
    )
    if check:
        assert res.returncode == 0, f"tsh {args} -> {res.returncode}\n{res.stdout}\n{res.stderr}\n{c.log()}"
    return res


class Agent:
    """A private ssh-agent holding the user's key and certificate (for OpenSSH clients)."""

    def __init__(self, c: Cluster) -> None:
        self.dir = tempfile.mkdtemp(prefix="tp-agent-")
        self.path = os.path.join(self.dir, "agent.sock")
        self.proc = subprocess.Popen(["ssh-agent", "-D", "-a", self.path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(500):  # the socket exists at bind(), a moment before the agent listens
            add = subprocess.run(["ssh-add", key_path(c)], env={**os.environ, "SSH_AUTH_SOCK": self.path},
                                 capture_output=True, text=True, check=False)
            if add.returncode == 0:
                break
            time.sleep(0.01)
        assert add.returncode == 0, add.stderr

    def stop(self) -> None:
        kill_proc(self.proc)  # type: ignore[arg-type]
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cl() -> Iterator[Cluster]:
    c = proxy_cluster()
    try:
        yield c
    finally:
        destroy(c)


@pytest.fixture(scope="module")
def sshd(cl: Cluster) -> Iterator[Sshd]:
    s = Sshd(cl)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def agent(cl: Cluster) -> Iterator[Agent]:
    a = Agent(cl)
    try:
        yield a
    finally:
        a.stop()


def ssh_opts(c: Cluster, forward_agent: bool) -> list[str]:
    """OpenSSH through the proxy by ProxyCommand, trusting the cluster's host CA only."""
    kh = os.path.join(c.root, "known_hosts_ca")
    if not os.path.exists(kh):
        with open(kh, "w") as f:
            f.write(c.tctl("auth", "export", "--type=host").stdout)
    k = key_path(c)
    base = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", k,
            "-o", f"CertificateFile={k}-cert.pub", "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
    pc = " ".join(["ssh", *base, *(["-A"] if forward_agent else ["-a"]), "-p", str(c.ports["ssh"]),
                   "%r@127.0.0.1", "-s", "proxy:%h:%p"])
    return [*base, "-o", f"ProxyCommand={pc}"]


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def events_of(c: Cluster, kind: str) -> list[dict[str, Any]]:
    from tests.integration.test_recording import events

    return [e for e in events(c) if e.get("event") == kind]


# -- tests --------------------------------------------------------------------------------------

def test_tsh_exec_on_sshd_is_audited_by_the_proxy(cl: Cluster, sshd: Sshd) -> None:
    res = tsh(cl, "ssh", "-p", str(sshd.port), f"{LOGIN}@127.0.0.1", "echo proxied-$((6*7)); exit 3",
              check=False)
    assert res.returncode == 3, res.stderr + cl.log()
    assert res.stdout == "proxied-42\n"
    ev = wait_for(lambda: [e for e in events_of(cl, "exec") if "proxied-" in e.get("command", "")],
                  what="the exec event")
    assert ev[0]["server_id"] == proxy_host_id(cl) and ev[0]["exitCode"] == 3
    assert ev[0]["user"] == USER and ev[0]["login"] == LOGIN


async def _interactive(c: Cluster, host: str, port: int) -> str:
    """A PTY session through the proxy as tsh makes it (agent forwarded); returns its marker."""
    from teleport.client import ssh

    creds = ssh.load_credentials()  # TELEPORT_HOME points at the cluster's tsh home
    proxy = await ssh.connect_proxy(creds, LOGIN)
    try:
        conn = await ssh.connect_node(proxy, creds, host, port, LOGIN)
        async with conn:
            sh = await Shell.open(conn, size=(90, 30))
            sh.send("printf 'rec-%s\\n' proxied\n")
            await sh.expect("rec-proxied")
            sh.proc.change_terminal_size(100, 40)
            sh.send("stty size\n")
            await sh.expect("40 100")
            assert await sh.exit(4) == 4
    finally:
        proxy.close()
    return "rec-proxied"


@pytest.mark.parametrize("where", ["sshd", "teleport-node"])
def test_interactive_session_recorded_once_by_the_proxy(cl: Cluster, sshd: Sshd, where: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEPORT_HOME", cl.home)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    before = {e["sid"] for e in events_of(cl, "session.start")}
    host, port = ("127.0.0.1", sshd.port) if where == "sshd" else ("testnode", cl.ports["node"])
    asyncio.run(_interactive(cl, host, port))
    pid = proxy_host_id(cl)
    # the proxy's own events (a teleport node logs what it ran as well, with its own sid)
    proxy_addr = f"127.0.0.1:{cl.ports['ssh']}"
    starts = wait_for(lambda: [e for e in events_of(cl, "session.start")
                               if e["sid"] not in before and e["addr.local"] == proxy_addr],
                      what="the proxy's session.start")
    assert len(starts) == 1, starts
    sid = starts[0]["sid"]
    stored = stored_recording(cl, sid)
    wait_for(lambda: os.path.exists(stored), what="the uploaded recording")
    header, evs = read_cast(stored)
    out = "".join(d for _, k, d in evs if k == "o")
    assert header["width"] == 90 and "rec-proxied" in out and "40 100" in out
    kinds = {e["event"]: e for e in session_events(cl, sid)}
    assert {"session.start", "resize", "session.end"} <= set(kinds), kinds
    assert all(e["server_id"] == pid for e in kinds.values())
    assert starts[0]["server_addr"] == f"127.0.0.1:{port}"
    wait_for(lambda: "session.upload" in {e["event"] for e in session_events(cl, sid)},
             what="session.upload")
    # the teleport node does not record too: the recording is stored once, by the proxy
    node_uploads = os.path.join(cl.data_dir, "log", "upload", "sessions")
    assert not os.path.isdir(node_uploads) or not os.listdir(node_uploads)
    play = tsh(cl, "play", sid, env=env_with(TELEPORT_HOME=cl.home))
    assert "rec-proxied" in play.stdout


def test_openssh_without_agent_is_refused_with_a_clear_message(cl: Cluster, sshd: Sshd) -> None:
    res = run("ssh", *ssh_opts(cl, forward_agent=False), "-p", str(sshd.port),
              f"{LOGIN}@127.0.0.1", "true", env=env_with())
    assert res.returncode != 0
    assert "recording proxy mode needs your agent" in res.stderr and "ssh -A" in res.stderr, res.stderr


def test_openssh_ssh_and_scp_with_forwarded_agent(cl: Cluster, sshd: Sshd, agent: Agent,
                                                  tmp_path: Any) -> None:
    env = env_with(SSH_AUTH_SOCK=agent.path)
    opts = [*ssh_opts(cl, forward_agent=True), "-o", f"Port={sshd.port}"]
    res = run("ssh", *opts, f"{LOGIN}@127.0.0.1", "echo via-openssh", env=env)
    assert res.returncode == 0 and res.stdout == "via-openssh\n", res.stderr + cl.log()
    src = os.path.join(str(tmp_path), "payload.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(1024 * 1024 + 5))
    remote = f"/tmp/tp-recproxy-{os.getpid()}.bin"
    try:
        for extra in ([], ["-O"]):
            up = run("scp", *opts, *extra, src, f"{LOGIN}@127.0.0.1:{remote}", env=env)
            assert up.returncode == 0, up.stderr
            back = os.path.join(str(tmp_path), "back.bin")
            down = run("scp", *opts, *extra, f"{LOGIN}@127.0.0.1:{remote}", back, env=env)
            assert down.returncode == 0, down.stderr
            assert filecmp.cmp(src, back, shallow=False)
    finally:
        if os.path.exists(remote):
            os.remove(remote)
    def scp_events() -> list[dict[str, Any]]:
        evs = [e for e in events_of(cl, "scp") if e.get("path") == remote]
        return evs if {e["action"] for e in evs} >= {"upload", "download"} else []

    scp = wait_for(scp_events, what="scp upload and download events (legacy scp)")
    assert all(e["server_id"] == proxy_host_id(cl) for e in scp)


def test_tsh_scp_through_recording_proxy(cl: Cluster, sshd: Sshd, tmp_path: Any) -> None:
    src = os.path.join(str(tmp_path), "f.txt")
    with open(src, "w") as f:
        f.write("copied through a recording proxy\n")
    remote = f"/tmp/tp-recproxy-tsh-{os.getpid()}.txt"
    try:
        tsh(cl, "scp", "-P", str(sshd.port), src, f"{LOGIN}@127.0.0.1:{remote}")
        with open(remote) as f:
            assert f.read() == "copied through a recording proxy\n"
    finally:
        if os.path.exists(remote):
            os.remove(remote)


def test_plain_host_key_refused_unless_checks_are_off(tmp_path: Any) -> None:
    """An sshd with no host certificate: refused by default, accepted with
    proxy_checks_host_keys: no."""
    for checks in ("yes", "no"):
        c = proxy_cluster(ALLOW_LOOPBACK + f"  proxy_checks_host_keys: {checks}\n")
        plain = PlainSshd(c)
        try:
            res = tsh(c, "ssh", "-p", str(plain.port), f"{LOGIN}@127.0.0.1", "echo plain-ok", check=False)
            if checks == "yes":
                assert res.returncode != 0, res.stdout
                assert "no host certificate of this cluster" in res.stderr, res.stderr
                assert "proxy_checks_host_keys" in res.stderr
            else:
                assert res.returncode == 0 and res.stdout == "plain-ok\n", res.stderr + c.log()
        finally:
            plain.stop()
            destroy(c)


class PlainSshd(Sshd):
    """An sshd trusting the user CA but with a plain host key (no certificate)."""

    def __init__(self, cluster: Cluster) -> None:  # noqa: D107
        self.dir = tempfile.mkdtemp(prefix="tp-sshd-plain-")
        self.port = free_port()
        key = os.path.join(self.dir, "host")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        users_ca = cluster.tctl("auth", "export", "--type=user").stdout
        ca_lines = [ln.split(None, 1)[1] for ln in users_ca.splitlines() if ln.startswith("cert-authority ")]
        with open(os.path.join(self.dir, "user_ca"), "w") as f:
            f.write("\n".join(ca_lines) + "\n")
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write(
                f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
                f"TrustedUserCAKeys {self.dir}/user_ca\n"
                "UsePAM yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "AuthorizedKeysFile none\nPermitRootLogin yes\nStrictModes no\n"
                f"PidFile {self.dir}/sshd.pid\n"
            )
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = open(os.path.join(self.dir, "sshd.log"), "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", conf], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, 10, self.proc)


def test_forwarding_certificates_name_one_host_for_the_proxy_only(cl: Cluster) -> None:
    """In proxy mode auth signs the proxy a short-lived host certificate naming exactly the
    host asked for; it refuses wildcards and lists, and refuses a node identity outright."""
    from teleport.ca import keys, sshcert
    from teleport.errors import AccessDenied, BadParameter
    from tests.integration.test_audit_forgery import run, service_client

    pub = keys.public_key_to_openssh(keys.generate_private_key())
    line = run(lambda a: a.sign_forward_cert(pub, "db-7.example.com"), service_client(cl, cl.data_dir, "proxy")[1])
    info = sshcert.parse_cert(line)
    assert info.cert_type == "host" and info.principals == ["db-7.example.com"]
    assert info.key_id == f"forward:{proxy_host_id(cl)}"
    assert info.valid_before - info.valid_after <= 3600 + 60
    for bad in ("*.example.com", "a,b", "-oProxyCommand=x", ""):
        with pytest.raises(BadParameter):
            run(lambda a, bad=bad: a.sign_forward_cert(pub, bad), service_client(cl, cl.data_dir, "proxy")[1])
    with pytest.raises(AccessDenied, match="a node identity may not"):
        run(lambda a: a.sign_forward_cert(pub, "db-7"), service_client(cl, cl.data_dir, "node")[1])


# -- the `tsh config` block in proxy mode (OpenSSH and Ansible, no agent of the user's) ----------

def block_config(c: Cluster, sshd: Sshd, d: str) -> tuple[str, str]:
    """An ssh_config made of `tsh config` and, first, an alias `sshd.CLUSTER` for the sshd node
    (the block matches the cluster's names only); returns (config path, alias)."""
    alias = f"sshd.{c.cluster_name}"
    cfg = os.path.join(d, "ssh_config")
    with open(cfg, "w") as f:
        f.write(f"Host {alias}\n    HostName 127.0.0.1\n    Port {sshd.port}\n\n")
        f.write(tsh(c, "config").stdout)
    return cfg, alias


def no_agent_env() -> dict[str, str]:
    env = env_with()
    env.pop("SSH_AUTH_SOCK", None)  # the block must bring its own agent
    return env


def test_tsh_config_block_ssh_scp_sftp_in_proxy_mode(cl: Cluster, sshd: Sshd, tmp_path: Any) -> None:
    d = str(tmp_path)
    cfg, alias = block_config(cl, sshd, d)
    env = no_agent_env()
    res = run("ssh", "-F", cfg, "-o", "BatchMode=yes", f"{LOGIN}@{alias}", "echo via-block-$((2*3))", env=env)
    assert res.returncode == 0 and res.stdout == "via-block-6\n", res.stderr + cl.log()
    ev = wait_for(lambda: [e for e in events_of(cl, "exec") if "via-block-" in e.get("command", "")],
                  what="the exec event")
    assert ev[0]["server_id"] == proxy_host_id(cl)
    src = os.path.join(d, "blk.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(200_000))
    remote = f"/tmp/tp-recproxy-blk-{os.getpid()}.bin"
    try:
        up = run("scp", "-F", cfg, "-o", "BatchMode=yes", src, f"{LOGIN}@{alias}:{remote}", env=env)
        assert up.returncode == 0, up.stderr
        back = os.path.join(d, "blk-back.bin")
        down = run("scp", "-F", cfg, "-o", "BatchMode=yes", f"{LOGIN}@{alias}:{remote}", back, env=env)
        assert down.returncode == 0, down.stderr
        assert filecmp.cmp(src, back, shallow=False)
    finally:
        if os.path.exists(remote):
            os.remove(remote)
    # the private agent holds the tsh key only, and goes away with the connection
    def agents() -> list[str]:
        out = subprocess.run(["pgrep", "-f", "ssh-agent -s"], capture_output=True, text=True).stdout
        return out.split()

    assert wait_for(lambda: agents() == [], timeout=5, what="the private agents to stop")


def test_ansible_ping_through_tsh_config_block_in_proxy_mode(cl: Cluster, sshd: Sshd, tmp_path: Any) -> None:
    ansible = shutil.which("ansible")
    if ansible is None:
        pytest.fail("ansible not found: install Debian's ansible-core (apt-get install ansible-core)")
    d = str(tmp_path)
    cfg, alias = block_config(cl, sshd, d)
    inv = os.path.join(d, "hosts")
    with open(inv, "w") as f:
        f.write(f"{alias} ansible_user={LOGIN} ansible_python_interpreter=/usr/bin/python3\n")
    env = {**no_agent_env(), "ANSIBLE_SSH_ARGS": f"-F {cfg}", "ANSIBLE_HOME": os.path.join(d, "ansible"),
           "ANSIBLE_LOCAL_TEMP": os.path.join(d, "tmp"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_HOST_KEY_CHECKING": "True"}
    ping = run(ansible, "-i", inv, "all", "-m", "ping", env=env, timeout=180)
    assert ping.returncode == 0, ping.stdout + ping.stderr + cl.log()
    assert '"ping": "pong"' in ping.stdout
    # the proxy ran (and logged) Ansible's commands on the sshd node
    wait_for(lambda: [e for e in events_of(cl, "exec")
                      if "python3" in e.get("command", "") and e["server_id"] == proxy_host_id(cl)],
             what="Ansible's exec events from the proxy")


# -- idle timeout and certificate-expiry disconnect, enforced by the proxy on an sshd node -----

def put_role(c: Cluster, name: str, options: dict[str, Any]) -> None:
    import yaml

    doc = {"kind": "role", "version": "v3", "metadata": {"name": name},
           "spec": {"options": options, "allow": {"logins": [LOGIN], "node_labels": {"*": "*"}}}}
    path = os.path.join(c.root, f"role-{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    c.tctl("create", "-f", path)


def user_key(c: Cluster, user: str, d: str, ttl: int) -> str:
    """A key and a certificate of `user` signed by the cluster's user CA, valid `ttl` seconds."""
    from teleport.ca import keys, sshcert

    k = keys.generate_private_key()
    cert = sshcert.sign_user_cert(cluster_user_ca_key(c), keys.public_key_to_openssh(k), username=user,
                                  principals=[LOGIN], ttl=ttl, roles=["access"])
    path = os.path.join(d, user)
    with open(path, "wb") as f:
        f.write(keys.private_key_to_openssh(k))
    os.chmod(path, 0o600)
    with open(path + "-cert.pub", "w") as f:
        f.write(cert + "\n")
    return path


def ssh_with_key(c: Cluster, sshd: Sshd, key: str, d: str, command: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """OpenSSH through the proxy with `key` in a private agent forwarded to the proxy (the
    `tsh config` block's way); (result, seconds it took)."""
    cfg = os.path.join(d, "cfg")
    with open(cfg, "w") as f:
        f.write(f"Host sshd.{c.cluster_name}\n    HostName 127.0.0.1\n    Port {sshd.port}\n\n")
        f.write(ssh_config_block(cluster=c.cluster_name, proxy_host="127.0.0.1", proxy_port=c.ports["ssh"],
                                 key_path=key, cert_path=key + "-cert.pub",
                                 known_hosts=os.path.join(c.home, "known_hosts")))
    start = time.monotonic()
    res = run("ssh", "-F", cfg, "-o", "BatchMode=yes", f"{LOGIN}@sshd.{c.cluster_name}", command,
              env=no_agent_env(), timeout=60)
    return res, time.monotonic() - start


@pytest.mark.parametrize("case", ["idle", "expired-cert"])
def test_proxy_enforces_idle_timeout_and_cert_expiry(cl: Cluster, sshd: Sshd, tmp_path: Any, case: str) -> None:
    user = f"rec-{case}"
    options = {"client_idle_timeout": "2s"} if case == "idle" else {"disconnect_expired_cert": True}
    put_role(cl, f"role-{case}", options)
    cl.add_user(user, LOGIN)
    cl.tctl("users", "update", user, f"--set-roles=role-{case}")
    key = user_key(cl, user, str(tmp_path), ttl=3600 if case == "idle" else 6)
    # the command outlives both limits; output from the node is no input from the client
    res, took = ssh_with_key(cl, sshd, key, str(tmp_path), "while :; do echo tick; sleep 0.5; done")
    assert res.returncode == 255, res.stdout[-200:] + res.stderr + cl.log()
    want = "client idle for more than 2s" if case == "idle" else "your certificate has expired"
    assert want in res.stderr, res.stderr
    assert "tick" in res.stdout and took < 30


# -- SFTP copies (OpenSSH's default scp, sftp, tsh scp) audited by the proxy --------------------

def test_sftp_copies_are_audited_by_the_proxy(cl: Cluster, sshd: Sshd, tmp_path: Any) -> None:
    d = str(tmp_path)
    cfg, alias = block_config(cl, sshd, d)
    env = no_agent_env()
    src = os.path.join(d, "sftp-src.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(300_001))
    tag = f"tp-recproxy-sftp-{os.getpid()}"
    paths = {k: f"/tmp/{tag}-{k}.bin" for k in ("scp", "sftp", "tsh")}
    try:
        # OpenSSH's scp speaks SFTP by default (no -O)
        up = run("scp", "-F", cfg, "-o", "BatchMode=yes", src, f"{LOGIN}@{alias}:{paths['scp']}", env=env)
        assert up.returncode == 0, up.stderr
        batch = os.path.join(d, "batch")
        with open(batch, "w") as f:
            f.write(f"put {src} {paths['sftp']}\nget {paths['sftp']} {d}/sftp-back.bin\n")
        res = run("sftp", "-F", cfg, "-o", "BatchMode=yes", "-b", batch, f"{LOGIN}@{alias}", env=env)
        assert res.returncode == 0, res.stderr
        assert filecmp.cmp(src, os.path.join(d, "sftp-back.bin"), shallow=False)
        tsh(cl, "scp", "-P", str(sshd.port), src, f"{LOGIN}@127.0.0.1:{paths['tsh']}")
        assert filecmp.cmp(src, paths["tsh"], shallow=False)
    finally:
        for p in paths.values():
            if os.path.exists(p):
                os.remove(p)

    want = {(paths["scp"], "upload"), (paths["sftp"], "upload"), (paths["sftp"], "download"),
            (paths["tsh"], "upload")}

    def scp_events() -> list[dict[str, Any]]:
        evs = [e for e in events_of(cl, "scp") if tag in e.get("path", "")]
        return evs if {(e["path"], e["action"]) for e in evs} >= want else []

    evs = wait_for(scp_events, what="scp events for the SFTP copies")
    pid = proxy_host_id(cl)
    for e in evs:
        assert e["server_id"] == pid and e["len"] == 300_001 and e["user"] == USER, e
        assert e["login"] == LOGIN and e["sid"]


# -- port forwarding through the recording proxy ---------------------------------------------

def test_local_port_forwarding_through_the_block(cl: Cluster, sshd: Sshd, tmp_path: Any) -> None:
    """ssh -L through the `tsh config` block: the proxy relays the direct-tcpip channel to the
    node (which decides by the certificate's permit-port-forwarding) and logs port events."""
    import socket

    cfg, alias = block_config(cl, sshd, str(tmp_path))
    lport = free_port()
    target = f"127.0.0.1:{sshd.port}"  # the sshd itself, seen from the node: a banner to read
    proc = subprocess.Popen(
        ["ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
         "-L", f"127.0.0.1:{lport}:{target}", f"{LOGIN}@{alias}", "sleep 60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=no_agent_env())
    try:
        wait_port(lport, 20, proc)
        with socket.create_connection(("127.0.0.1", lport), timeout=10) as s:
            s.settimeout(10)
            banner = s.recv(64)
        assert banner.startswith(b"SSH-2.0-OpenSSH"), banner
        ev = wait_for(lambda: [e for e in events_of(cl, "port") if e.get("addr") == target],
                      what="the port forward event")
        assert ev[0]["server_id"] == proxy_host_id(cl) and ev[0]["user"] == USER
    finally:
        kill_proc(proc)  # type: ignore[arg-type]

