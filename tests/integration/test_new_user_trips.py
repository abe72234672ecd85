"""What a new user tripped over following the README (issue 11, items 1-10), against real processes
and OpenSSH binaries."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest

from tests.helpers import (
    SRC,
    Cluster,
    destroy,
    env_with,
    free_port,
    kill_proc,
    new_cluster,
    os_account,
    wait_port,
)

OS_USER = "tptrips"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tc() -> Iterator[Cluster]:
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy,node")
        try:
            c.start()
            c.add_user("joe", OS_USER)
            c.login("joe")
            yield c
        finally:
            destroy(c)


def test_1_readme_trusted_user_ca_keys_works_with_sshd(tc: Cluster) -> None:
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "tctl auth export --type=user --format=openssh-ca" in readme
    d = tempfile.mkdtemp(prefix="tp-sshd-")
    proc = None
    try:
        ca_file = os.path.join(d, "teleport_user_ca.pub")
        # the README's command, as written: its output is the TrustedUserCAKeys file
        with open(ca_file, "w") as f:
            f.write(tc.tctl("auth", "export", "--type=user", "--format=openssh-ca").stdout)
        hostkey = os.path.join(d, "host")
        tc.tctl("auth", "sign", "--host=sshd-host,127.0.0.1", "-o", hostkey)
        userkey = os.path.join(d, "joe")
        tc.tctl("auth", "sign", "--user=joe", "-o", userkey)
        kh = os.path.join(d, "known_hosts")
        with open(kh, "w") as f:
            f.write(tc.tctl("auth", "export", "--type=host").stdout)
        port = free_port()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\n"
                    f"HostCertificate {hostkey}-cert.pub\nTrustedUserCAKeys {ca_file}\n"
                    "UsePAM yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    f"AuthorizedKeysFile none\nStrictModes no\nPidFile {d}/sshd.pid\n")
        os.makedirs("/run/sshd", exist_ok=True)
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_port(port, 10, proc)  # type: ignore[arg-type]

        def ssh() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ssh", "-F", "none", "-p", str(port), "-i", userkey, "-o", f"UserKnownHostsFile={kh}",
                 "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                 f"{OS_USER}@127.0.0.1", "echo trusted"],
                capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, env=env_with())

        res = ssh()
        assert (res.returncode, res.stdout) == (0, "trusted\n"), res.stderr
        # the reference's authorized_keys form is what sshd silently ignored (the user's trip)
        with open(ca_file, "w") as f:
            f.write(tc.tctl("auth", "export", "--type=user").stdout)
        assert ssh().returncode == 255
    finally:
        if proc is not None:
            kill_proc(proc)  # type: ignore[arg-type]
        shutil.rmtree(d, ignore_errors=True)
    # the manual's --compat=1.0: the user CA in known_hosts format
    compat = tc.tctl("auth", "export", "--type=user", "--compat=1.0").stdout
    assert compat.startswith("@cert-authority * ssh-ed25519 ") and "type=user" in compat


def test_2_tsh_config_appends_safely_without_dot_ssh(tc: Cluster) -> None:
    readme = open(os.path.join(ROOT, "README.md")).read()
    line = next(ln for ln in readme.splitlines() if "tsh config >>" in ln)
    command = line.split("#")[0].strip()
    home = tempfile.mkdtemp(prefix="tp-home-")
    try:
        # `tsh` on PATH is this checkout's
        bindir = os.path.join(home, "bin")
        os.makedirs(bindir)
        with open(os.path.join(bindir, "tsh"), "w") as f:
            f.write(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {SRC!r})\n"
                    "from teleport.cli.tsh import main\nsys.exit(main())\n")
        os.chmod(os.path.join(bindir, "tsh"), 0o755)
        env = env_with(TELEPORT_HOME=tc.home, HOME=home, PATH=bindir + os.pathsep + os.environ["PATH"])
        # the README's command in a home without ~/.ssh
        res = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 0, res.stderr
        conf = os.path.join(home, ".ssh", "config")
        other = subprocess.run(["ssh", "-G", "-F", conf, "github.com"], capture_output=True, text=True, check=True)
        assert "proxycommand" not in other.stdout  # other destinations stay direct
        res = subprocess.run(["ssh", "-F", conf, "-p", str(tc.ports["node"]),
                              f"{OS_USER}@testnode.{tc.cluster_name}", "echo via-config"],
                             capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert (res.returncode, res.stdout) == (0, "via-config\n"), res.stderr
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _invite(tc: Cluster, *args: str) -> str:
    out = tc.tctl("users", "add", *args).stdout
    return next(w for w in out.split() if w.startswith("https://"))


def test_3_signup_checks_password_at_once_and_logs_in(tc: Cluster) -> None:
    url = _invite(tc, "sally", OS_USER)
    home = os.path.join(tc.root, "sally-home")
    env = env_with(TELEPORT_HOME=home)
    # a short password and nothing more: refused before the QR code, asked again
    res = tc.tsh("--insecure", "signup", url, input="abc\nabc\n", env=env, check=False)
    assert res.returncode != 0
    assert "too short" in res.stderr and "try again" in res.stderr
    assert "QR code" not in res.stdout
    secret = tc.invite_secret(url)
    code = tc.otp.code("sally", secret)
    res = tc.tsh("--insecure", "signup", url,
                 input=f"abc\nabc\nlong-pass-1\nlong-pass-2\nlong-pass-1\nlong-pass-1\n{code}\n", env=env)
    assert res.stderr.count("try again") == 2
    assert "you are logged in" in res.stdout
    # logged in at the end of signup: no second code needed
    status = tc.tsh("status", env=env).stdout
    assert "Logged in as: sally" in status
    ssh = tc.tsh("ssh", "-p", str(tc.ports["node"]), f"{OS_USER}@testnode", "echo", "hi", env=env)
    assert ssh.stdout == "hi\n"


def test_4_user_names_and_logins_follow_one_rule(tc: Cluster) -> None:
    for bad in ("root,", "a b", ".x"):
        res = tc.tctl("users", "add", bad, check=False)
        assert res.returncode != 0 and "invalid user name" in res.stderr, res.stderr
    res = tc.tctl("users", "add", "okname", "root,bad login", check=False)
    assert res.returncode != 0 and "invalid login 'bad login'" in res.stderr
    url = _invite(tc, "dedupe", "root,root,dedupe")
    secret = tc.invite_secret(url)
    code = tc.otp.code("dedupe", secret)
    tc.tsh("--insecure", "signup", url, input=f"pass-word-1\npass-word-1\n{code}\n",
           env=env_with(TELEPORT_HOME=os.path.join(tc.root, "dedupe-home")))
    users = tc.tctl("users", "ls").stdout
    assert re.search(r"^dedupe\s+root,dedupe$", users, re.M), users


def test_5_invites_revocable_by_user_name_and_id(tc: Cluster) -> None:
    _invite(tc, "pending1")
    _invite(tc, "pending2")
    ls = tc.tctl("tokens", "ls").stdout
    assert "invite for pending1" in ls and "invite for pending2" in ls
    ids = dict(re.findall(r"^(invite-[0-9a-f]+)\s+Signup\s+.*invite for (\S+)$", ls, re.M))
    by_user = {v: k for k, v in ids.items()}
    res = tc.tctl("users", "del", "pending1")
    assert "pending invite for 'pending1' has been revoked" in res.stdout
    tc.tctl("tokens", "del", by_user["pending2"])
    ls = tc.tctl("tokens", "ls").stdout
    assert "pending1" not in ls and "pending2" not in ls
    res = tc.tctl("users", "del", "pending1", check=False)
    assert res.returncode != 0 and "no user and no pending invite" in res.stderr


def test_6_invite_validity_in_human_form(tc: Cluster) -> None:
    out = tc.tctl("users", "add", "shortlived", "--ttl", "1m").stdout
    assert "valid for 1 minute." in out
    assert "valid for 1 hour." in tc.tctl("users", "add", "hourly").stdout


def test_7_clear_messages_for_unknown_nodes_and_no_destination(tc: Cluster) -> None:
    res = tc.tsh("ssh", f"{OS_USER}@nosuchnode", "true", check=False)
    assert res.returncode == 1
    assert "no node named 'nosuchnode'" in res.stderr and "tsh ls" in res.stderr
    assert "Name or service not known" not in res.stderr.split("(")[0]
    res = tc.tsh("ssh", check=False)
    assert res.returncode == 1 and "needs a destination" in res.stderr and "optional" in res.stderr
    assert "required" not in res.stderr


def test_8_scp_errors_name_the_path(tc: Cluster) -> None:
    d = tempfile.mkdtemp(prefix="tp-scp-")
    try:
        node = ["-P", str(tc.ports["node"])]
        res = tc.tsh("scp", *node, "./nonexistent", f"{OS_USER}@testnode:/tmp/", check=False)
        assert res.returncode == 1
        assert "scp: ./nonexistent: No such file or directory" in res.stderr
        assert "Errno" not in res.stderr and "b'" not in res.stderr
        res = tc.tsh("scp", *node, f"{OS_USER}@testnode:/nonexistent/file", d, check=False)
        assert res.returncode == 1
        assert "scp: /nonexistent/file: No such file or directory" in res.stderr, res.stderr
        src = os.path.join(d, "f")
        with open(src, "w") as f:
            f.write("x")
        res = tc.tsh("scp", *node, src, f"{OS_USER}@testnode:/root/denied", check=False)
        assert res.returncode == 1 and "scp: /root/denied: Permission denied" in res.stderr, res.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_9_readme_test_command_for_a_fresh_venv() -> None:
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "pip install -e '.[test]'" in readme
    pyproject = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert re.search(r"^test = \[", pyproject, re.M) and "pytest" in pyproject


def test_10_otp_issuer_is_proxy_host_when_cluster_name_is_generated() -> None:
    c = new_cluster(cluster_name="")  # no configured name: a generated UUID
    try:
        c.start()
        url = _invite(c, "ivan")
        from teleport.client.session import parse_invite_url, signup_info
        from teleport.client.webclient import WebClient

        proxy, token = parse_invite_url(url)
        uri = signup_info(WebClient(proxy, insecure=True), token)["otp_uri"]
        q = parse_qs(urlparse(uri).query)
        assert q["issuer"] == ["127.0.0.1"], uri
    finally:
        destroy(c)
    c2 = new_cluster()  # a configured name stays the issuer
    try:
        c2.start()
        url = _invite(c2, "ivan")
        from teleport.client.session import parse_invite_url, signup_info
        from teleport.client.webclient import WebClient

        proxy, token = parse_invite_url(url)
        uri = signup_info(WebClient(proxy, insecure=True), token)["otp_uri"]
        assert parse_qs(urlparse(uri).query)["issuer"] == [c2.cluster_name]
    finally:
        destroy(c2)
