"""Certificates and trust lines from teleport.ca are read and enforced by real OpenSSH binaries."""

from __future__ import annotations

import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from teleport.ca import export, keys, sshcert

pytestmark = pytest.mark.interop

SSHD = "/usr/sbin/sshd"
KINDS = ["ed25519", "rsa", "ecdsa"]
CLUSTER = "example.com"


def _need(path_or_name: str, package: str) -> str:
    found = shutil.which(path_or_name) or (
        path_or_name if os.access(path_or_name, os.X_OK) else None
    )
    if not found:
        pytest.fail(f"{path_or_name} not found: install {package} (e.g. apt-get install {package})")
    return found


@pytest.fixture(scope="module")
def ssh_keygen() -> str:
    return _need("ssh-keygen", "openssh-client")


@pytest.fixture(scope="module")
def ssh_bin() -> str:
    return _need("ssh", "openssh-client")


@pytest.fixture(scope="module")
def sshd_bin() -> str:
    return _need(SSHD, "openssh-server")


@dataclass
class RunAs:
    """The account sshd runs as and the test logs in as.

    As root, sshd would need /run/sshd for privilege separation; running it as an unprivileged
    account avoids touching the system, and such an sshd can only log in that same account.
    """

    name: str
    uid: int
    gid: int
    shell_ok: bool


@pytest.fixture(scope="module")
def run_as() -> RunAs:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
    else:
        pw = pwd.getpwuid(os.geteuid())
    shell_ok = os.path.basename(pw.pw_shell) not in ("nologin", "false", "")
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, shell_ok)


@pytest.fixture()
def workdir(run_as: RunAs) -> Iterator[Path]:
    d = tempfile.mkdtemp(prefix="tp-ca-interop-")
    try:
        os.chmod(d, 0o755)
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(*cmd: str, user: RunAs | None = None) -> subprocess.CompletedProcess[str]:
    kw = (
        {"user": user.uid, "group": user.gid, "extra_groups": []}
        if user and os.geteuid() == 0
        else {}
    )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)  # type: ignore[call-overload]


def write(path: Path, data: str | bytes, owner: RunAs | None = None, mode: int = 0o600) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    if owner and os.geteuid() == 0:
        os.chown(path, owner.uid, owner.gid)
    return path


def user_cert(ca: keys.PrivateKey, pub: str, logins: list[str]) -> str:
    return sshcert.sign_user_cert(
        ca,
        pub,
        username="alice",
        principals=logins,
        ttl=600,
        roles=["admin", "dev"],
        traits={"logins": logins},
        route_to_cluster=CLUSTER,
    )


# --- ssh-keygen reads what we write ---------------------------------------------------------


@pytest.mark.parametrize("ca_kind", KINDS)
def test_keygen_lists_user_cert(ssh_keygen: str, workdir: Path, ca_kind: str) -> None:
    ca = keys.generate_private_key(ca_kind)
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    cert = user_cert(ca, pub, ["root", "alice"])
    out = run(ssh_keygen, "-L", "-f", str(write(workdir / "id-cert.pub", cert + "\n"))).stdout
    assert "user certificate" in out
    assert 'Key ID: "alice"' in out
    lines = [x.strip() for x in out.splitlines()]
    i = lines.index("Principals:")
    assert lines[i + 1 : i + 3] == ["root", "alice"]
    assert "Critical Options: (none)" in out
    roles_json = b'{"version":"v1","roles":["admin","dev"]}'
    # ssh-keygen shows custom extensions as hex of their data (an SSH string holding the JSON).
    roles_hex = (len(roles_json).to_bytes(4, "big") + roles_json).hex()
    assert f"teleport-roles UNKNOWN OPTION: {roles_hex}" in out
    for ext in (
        "permit-pty",
        "permit-port-forwarding",
        "permit-agent-forwarding",
        "teleport-traits",
        "teleport-route-to-cluster",
    ):
        assert ext in lines or any(x.startswith(ext + " ") for x in lines), ext
    assert "permit-X11-forwarding" not in out
    assert keys.fingerprint_sha256(keys.public_key_to_openssh(ca)) in out  # "Signing CA: ..."


def test_keygen_lists_host_cert(ssh_keygen: str, workdir: Path) -> None:
    ca = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key("ecdsa"))
    cert = sshcert.sign_host_cert(
        ca, pub, host_id="4f1d", nodename="node1", cluster_name=CLUSTER, addresses=["10.0.0.9"]
    )
    out = run(ssh_keygen, "-L", "-f", str(write(workdir / "host-cert.pub", cert + "\n"))).stdout
    assert "ecdsa-sha2-nistp256-cert-v01@openssh.com host certificate" in out
    assert 'Key ID: "4f1d"' in out
    assert "Valid: forever" in out
    lines = [x.strip() for x in out.splitlines()]
    i = lines.index("Principals:")
    assert lines[i + 1 : i + 9] == [
        "4f1d.example.com",
        "4f1d",
        "node1.example.com",
        "node1",
        "localhost",
        "127.0.0.1",
        "::1",
        "10.0.0.9",
    ]
    node_hex = (b"\x00\x00\x00\x04Node").hex()
    assert f"x-teleport-role UNKNOWN OPTION: {node_hex}" in out
    assert "x-teleport-authority UNKNOWN OPTION:" in out


@pytest.mark.parametrize("kind", KINDS)
def test_fingerprints_match_ssh_keygen(ssh_keygen: str, workdir: Path, kind: str) -> None:
    key = keys.generate_private_key(kind)
    pub = keys.public_key_to_openssh(key)
    expected = keys.fingerprint_sha256(pub)

    def fp(path: Path) -> str:
        res = run(ssh_keygen, "-l", "-E", "sha256", "-f", str(path))
        assert res.returncode == 0, res.stderr
        return res.stdout.split()[1]

    assert fp(write(workdir / "id.pub", pub + " me@host\n")) == expected
    # A private key in our OpenSSH format is readable by ssh-keygen too.
    assert fp(write(workdir / "id", keys.private_key_to_openssh(key))) == expected
    cert = user_cert(keys.generate_private_key(), pub, ["alice"])
    assert (
        fp(write(workdir / "id-cert.pub", cert + "\n")) == expected == keys.fingerprint_sha256(cert)
    )
    # The authorized_keys trust line: ssh-keygen skips the cert-authority marker.
    ca = keys.generate_private_key(kind)
    line = export.authorized_keys_line(keys.public_key_to_openssh(ca), CLUSTER)
    assert fp(write(workdir / "authorized_keys", line + "\n")) == keys.fingerprint_sha256(
        keys.public_key_to_openssh(ca)
    )


def test_keygen_finds_known_hosts_line(ssh_keygen: str, workdir: Path) -> None:
    ca_pub = keys.public_key_to_openssh(keys.generate_private_key())
    line = export.known_hosts_line(ca_pub, CLUSTER, ["proxy.example.com", f"*.{CLUSTER}"])
    kh = write(workdir / "known_hosts", line + "\n")
    found = run(ssh_keygen, "-F", f"node1.{CLUSTER}", "-f", str(kh))
    assert found.returncode == 0 and ca_pub in found.stdout
    assert run(ssh_keygen, "-F", "elsewhere.org", "-f", str(kh)).returncode != 0


# --- sshd accepts and enforces them ----------------------------------------------------------


@dataclass
class Setup:
    dir: Path
    config: Path
    user_ca: keys.PrivateKey
    host_ca: keys.PrivateKey
    known_hosts: Path


def make_setup(workdir: Path, run_as: RunAs, mode: str, port: int = 22) -> Setup:
    """sshd config trusting the user CA (TrustedUserCAKeys or authorized_keys) with a host cert."""
    user_ca = keys.generate_private_key()
    host_ca = keys.generate_private_key("ecdsa")
    host_key = keys.generate_private_key()
    host_cert = sshcert.sign_host_cert(
        host_ca,
        keys.public_key_to_openssh(host_key),
        host_id="h1",
        nodename="node1",
        cluster_name=CLUSTER,
    )
    hk = write(workdir / "host_key", keys.private_key_to_openssh(host_key), run_as)
    hc = write(workdir / "host_key-cert.pub", host_cert + "\n", run_as, 0o644)
    ak_line = export.authorized_keys_line(keys.public_key_to_openssh(user_ca), CLUSTER)
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {hk}",
        f"HostCertificate {hc}",
        "PidFile none",
        "StrictModes no",  # the temp dir lives under world-writable /tmp
        "UsePAM yes",  # without PAM sshd refuses accounts whose shadow password is "*"
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "LogLevel VERBOSE",
    ]
    if mode == "trusted_ca":
        # The TrustedUserCAKeys form: the key of the authorized_keys line, without marker and comment.
        ca_file = write(
            workdir / "user_ca.pub",
            ak_line.split()[1] + " " + ak_line.split()[2] + "\n",
            run_as,
            0o644,
        )
        lines += [f"TrustedUserCAKeys {ca_file}", "AuthorizedKeysFile none"]
    else:
        ak = write(workdir / "authorized_keys", ak_line + "\n", run_as, 0o644)
        lines += [f"AuthorizedKeysFile {ak}"]
    config = write(workdir / "sshd_config", "\n".join(lines) + "\n", run_as, 0o644)
    kh_line = export.known_hosts_line(
        keys.public_key_to_openssh(host_ca), CLUSTER, ["127.0.0.1", "localhost"]
    )
    known_hosts = write(workdir / "known_hosts", kh_line + "\n")
    return Setup(workdir, config, user_ca, host_ca, known_hosts)


@pytest.mark.parametrize("mode", ["trusted_ca", "authorized_keys"])
def test_sshd_accepts_config(sshd_bin: str, run_as: RunAs, workdir: Path, mode: str) -> None:
    s = make_setup(workdir, run_as, mode)
    res = run(sshd_bin, "-t", "-f", str(s.config), user=run_as)
    # sshd -t only warns (exit 0) about an unusable HostCertificate, so demand silence.
    assert res.returncode == 0 and res.stderr.strip() == "", f"sshd -t complained: {res.stderr}"
    # And the check can fail: a host certificate for another key is refused.
    other = keys.generate_private_key()
    bad_cert = sshcert.sign_host_cert(
        s.host_ca,
        keys.public_key_to_openssh(other),
        host_id="x",
        nodename="x",
        cluster_name=CLUSTER,
    )
    write(workdir / "host_key-cert.pub", bad_cert + "\n", run_as, 0o644)
    res = run(sshd_bin, "-t", "-f", str(s.config), user=run_as)
    assert "no matching private key for certificate" in res.stderr.lower(), res.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def sshd_server(
    sshd_bin: str, run_as: RunAs, workdir: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Setup, int, subprocess.Popen[str]]]:
    port = _free_port()
    s = make_setup(workdir, run_as, request.param, port)
    kw = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []} if os.geteuid() == 0 else {}
    proc = subprocess.Popen(  # type: ignore[call-overload]
        [sshd_bin, "-D", "-e", "-f", str(s.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sshd did not start: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.05)
        yield s, port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _sshd_log(proc: subprocess.Popen[str], want: str, timeout: float = 5) -> str:
    """sshd's stderr so far, waiting up to `timeout` for `want` to appear."""
    assert proc.stderr is not None
    text = ""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while want not in text and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk:
                break
            text += chunk
    return text


def _login(
    ssh: str, s: Setup, port: int, login: str, ca: keys.PrivateKey, principals: list[str]
) -> subprocess.CompletedProcess[str]:
    key = keys.generate_private_key()
    ident = write(s.dir / f"id-{time.monotonic_ns()}", keys.private_key_to_openssh(key))
    write(
        Path(f"{ident}-cert.pub"), user_cert(ca, keys.public_key_to_openssh(key), principals) + "\n"
    )
    return run(
        ssh,
        "-F",
        "/dev/null",
        "-p",
        str(port),
        "-i",
        str(ident),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={s.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        f"{login}@127.0.0.1",
        "echo",
        "cert-login-ok",
    )


@pytest.mark.parametrize("sshd_server", ["trusted_ca", "authorized_keys"], indirect=True)
def test_real_login_with_certificates(
    ssh_bin: str, run_as: RunAs, sshd_server: tuple[Setup, int, subprocess.Popen[str]]
) -> None:
    """ssh verifies our host cert via the @cert-authority line; sshd accepts our user cert."""
    s, port, proc = sshd_server
    # Wrong CA: refused at authentication (exit 255, no session).
    rogue = keys.generate_private_key()
    rogue_fp = keys.fingerprint_sha256(keys.public_key_to_openssh(rogue))
    bad = _login(ssh_bin, s, port, run_as.name, rogue, [run_as.name])
    assert bad.returncode == 255 and "Permission denied" in bad.stderr, bad.stderr
    log = _sshd_log(proc, rogue_fp)
    assert f"Failed publickey for {run_as.name}" in log and rogue_fp in log, log
    # Right CA but the login is not among the principals: refused too.
    bad = _login(ssh_bin, s, port, run_as.name, s.user_ca, ["someone-else"])
    assert bad.returncode == 255 and "Permission denied" in bad.stderr, bad.stderr
    log = _sshd_log(proc, "not a listed principal")
    assert "Certificate invalid: name is not a listed principal" in log, log

    ok = _login(ssh_bin, s, port, run_as.name, s.user_ca, ["root", run_as.name])
    ca_fp = keys.fingerprint_sha256(keys.public_key_to_openssh(s.user_ca))
    log = _sshd_log(proc, "Accepted publickey")
    assert f"Accepted publickey for {run_as.name}" in log, log
    assert "ID alice" in log and ca_fp in log, log
    if run_as.shell_ok:
        assert ok.returncode == 0 and ok.stdout.strip() == "cert-login-ok", ok.stderr
    else:
        # The account has no shell: the session opens and its shell refuses; not a 255 failure.
        assert ok.returncode not in (0, 255), ok.stderr
        assert "Host key verification failed" not in ok.stderr
