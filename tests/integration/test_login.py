"""Invite, signup, login, status and logout through real teleport/tctl/tsh processes."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest

from tests.helpers import Cluster

pytestmark = pytest.mark.integration


def keygen_L(path: str) -> str:
    return subprocess.run(
        ["ssh-keygen", "-L", "-f", path], capture_output=True, text=True, check=True
    ).stdout


def test_users_add_prints_invite_url(cluster: Cluster) -> None:
    out = cluster.tctl("users", "add", "inv1", "inv1,root").stdout
    assert f"https://{cluster.web_addr}/web/invite/" in out
    tokens = cluster.tctl("tokens", "ls").stdout
    assert "invite for inv1" in tokens


def test_signup_login_status_logout(cluster: Cluster) -> None:
    cluster.add_user("joe", "joe,root")
    users = cluster.tctl("users", "ls").stdout
    assert any(line.split() == ["joe", "joe,root"] for line in users.splitlines())

    res = cluster.login("joe")
    assert "Logged in as: joe" in res.stdout
    key_dir = os.path.join(cluster.home, "keys", "127.0.0.1")
    key = os.path.join(key_dir, "joe")
    for suffix, secret in (("", True), (".pub", False), ("-cert.pub", False), ("-x509.pem", True)):
        assert os.path.exists(key + suffix), suffix
        if secret:
            assert stat.S_IMODE(os.stat(key + suffix).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cluster.home).st_mode) == 0o700

    info = keygen_L(key + "-cert.pub")
    assert 'Key ID: "joe"' in info
    principals = info.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == ["joe", "root"]
    for ext in ("permit-pty", "permit-port-forwarding", "permit-agent-forwarding", "teleport-roles"):
        assert ext in info

    with open(os.path.join(cluster.home, "known_hosts")) as f:
        kh = f.read()
    assert kh.startswith("@cert-authority ")
    host_ca = cluster.tctl("auth", "export", "--type=host").stdout.split()
    assert host_ca[2] in kh.split()  # the same host CA key

    st = cluster.tsh("status").stdout
    assert "Logged in as: joe" in st and "Logins:       joe, root" in st and "valid for 22h" in st

    cluster.tsh("logout")
    assert not os.path.exists(key)
    res = cluster.tsh("status", check=False)
    assert res.returncode != 0 and "not logged in" in res.stderr


def test_ttl_is_clamped_and_honoured(cluster: Cluster) -> None:
    cluster.add_user("ttl", "ttl")
    cluster.login("ttl", "secret-pass-1", "--ttl=1")
    info = keygen_L(os.path.join(cluster.home, "keys", "127.0.0.1", "ttl-cert.pub"))
    valid = info.split("Valid: from ")[1].split()[0:3]
    start, end = valid[0], valid[2]
    from datetime import datetime

    span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    assert span.total_seconds() == 120  # one minute back-dated, one minute ahead
    res = cluster.tsh("--insecure", f"--proxy={cluster.web_addr}", "--ttl=5000", "login", check=False)
    assert res.returncode != 0 and "between 1 and 1800" in res.stderr


def test_invite_works_once(cluster: Cluster) -> None:
    out = cluster.tctl("users", "add", "once").stdout
    url = next(w for w in out.split() if w.startswith("https://"))
    secret = cluster.invite_secret(url)
    code = cluster.otp.code("once", secret)
    cluster.tsh("--insecure", "signup", url, input=f"pw-once-1\npw-once-1\n{code}\n")
    again = cluster.tsh("--insecure", "signup", url, input="pw-once-1\npw-once-1\n000000\n", check=False)
    assert again.returncode != 0
    assert "invite not found" in again.stderr
    # a user with no logins given gets their own name as login
    users = cluster.tctl("users", "ls").stdout
    assert any(line.split() == ["once", "once"] for line in users.splitlines())


def test_signup_password_mismatch(cluster: Cluster) -> None:
    out = cluster.tctl("users", "add", "mismatch").stdout
    url = next(w for w in out.split() if w.startswith("https://"))
    res = cluster.tsh("--insecure", "signup", url, input="pw-aaaa-1\npw-bbbb-2\n", check=False)
    assert res.returncode != 0 and "do not match" in res.stderr


def test_otp_code_cannot_be_replayed(cluster: Cluster) -> None:
    cluster.add_user("replay")
    code = cluster.otp.code("replay", cluster.secrets["replay"])
    args = ("--insecure", f"--proxy={cluster.web_addr}", "--user=replay", "login")
    first = cluster.tsh(*args, input=f"secret-pass-1\n{code}\n", check=False)
    assert first.returncode == 0, first.stderr
    second = cluster.tsh(*args, input=f"secret-pass-1\n{code}\n", check=False)
    # refused with the one generic answer: a distinct "code already used" would tell an
    # attacker that the password was right
    assert second.returncode != 0 and "invalid user name, password or one-time code" in second.stderr


def _post_login(cluster: Cluster, user: str, password: str) -> tuple[int, bytes]:
    """POST the login route of the proxy directly: (status, raw body bytes)."""
    import json
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    body = json.dumps({"user": user, "password": password, "otp_token": "123456",
                       "pub_key": "ssh-ed25519 AAAA"}).encode()
    req = urllib.request.Request(f"https://{cluster.web_addr}/v1/webapi/ssh/certs", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _audit_events(cluster: Cluster) -> list[dict[str, object]]:
    import glob
    import json

    out = []
    for path in sorted(glob.glob(os.path.join(cluster.data_dir, "log", "*.log"))):
        with open(path) as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def test_lockout_after_five_failures(cluster: Cluster) -> None:
    cluster.add_user("locky")
    args = ("--insecure", f"--proxy={cluster.web_addr}", "--user=locky", "login")
    for _ in range(5):
        res = cluster.tsh(*args, input="wrong-password\n123456\n", check=False)
        assert res.returncode != 0 and "invalid user name, password" in res.stderr
    # now even the right password is refused (from this address), with the one generic answer
    code = cluster.otp.code("locky", cluster.secrets["locky"])
    res = cluster.tsh(*args, input=f"secret-pass-1\n{code}\n", check=False)
    assert res.returncode != 0
    assert "invalid user name, password or one-time code" in res.stderr
    assert "locked" not in res.stderr
    # the real user learns of the lock from the audit log
    locks = [e for e in _audit_events(cluster)
             if e.get("event") == "user.login" and e.get("user") == "locky"
             and "locked until" in str(e.get("error", ""))]
    assert len(locks) == 1 and locks[0]["success"] is False
    assert "127.0.0.1" in str(locks[0]["error"]) and locks[0].get("addr.remote") == "127.0.0.1"


def test_locked_and_unknown_users_get_identical_answers(cluster: Cluster) -> None:
    """Over the network, through the proxy: a locked existing user and a user that does not
    exist get byte-identical answers (the lock must not tell who exists)."""
    cluster.add_user("lockme")
    for _ in range(5):
        status, _ = _post_login(cluster, "lockme", "wrong-password")
        assert status == 403
    locked = _post_login(cluster, "lockme", "secret-pass-1")
    unknown = _post_login(cluster, "no-such-user-xyz", "secret-pass-1")
    assert locked[0] == unknown[0] == 403
    assert locked[1] == unknown[1], (locked, unknown)
    assert b"lockme" not in locked[1]
    # and through tsh, the same words on stderr
    args = ("--insecure", f"--proxy={cluster.web_addr}", "login")
    a = cluster.tsh(*args[:2], "--user=lockme", args[2], input="secret-pass-1\n123456\n", check=False)
    b = cluster.tsh(*args[:2], "--user=no-such-user-xyz", args[2], input="secret-pass-1\n123456\n",
                    check=False)
    assert a.returncode == b.returncode != 0
    assert a.stderr.replace("lockme", "X") == b.stderr.replace("no-such-user-xyz", "X")


def test_unknown_user_and_wrong_otp_are_refused(cluster: Cluster) -> None:
    res = cluster.tsh("--insecure", f"--proxy={cluster.web_addr}", "--user=nobody", "login",
                      input="whatever-1\n123456\n", check=False)
    assert res.returncode != 0 and "invalid user name, password or one-time code" in res.stderr
    cluster.add_user("badotp")
    res = cluster.tsh("--insecure", f"--proxy={cluster.web_addr}", "--user=badotp", "login",
                      input="secret-pass-1\n000000\n", check=False)
    assert res.returncode != 0 and "one-time code" in res.stderr


def test_untrusted_proxy_certificate_is_refused_without_insecure(cluster: Cluster) -> None:
    res = cluster.tsh(f"--proxy={cluster.web_addr}", "--user=joe", "login", input="x\n1\n", check=False)
    assert res.returncode != 0
    assert "not trusted" in res.stderr and "--insecure" in res.stderr
    assert "Traceback" not in res.stderr


def test_ssh_agent_gets_and_loses_the_key(cluster: Cluster) -> None:
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    env_vars = dict(
        part.split("=", 1) for part in agent.replace(";", "\n").split() if "=" in part
    )
    try:
        from tests.helpers import env_with

        env = env_with(TELEPORT_HOME=cluster.home, SSH_AUTH_SOCK=env_vars["SSH_AUTH_SOCK"])
        cluster.add_user("agentuser")
        code = cluster.otp.code("agentuser", cluster.secrets["agentuser"])
        cluster.tsh("--insecure", f"--proxy={cluster.web_addr}", "--user=agentuser", "login",
                    input=f"secret-pass-1\n{code}\n", env=env)
        listed = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True, env=env).stdout
        assert "-cert-v01@openssh.com" in listed
        cluster.tsh("logout", env=env)
        listed = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True, env=env).stdout
        assert "-cert-v01@openssh.com" not in listed
    finally:
        os.kill(int(env_vars["SSH_AGENT_PID"]), 15)


def test_data_dir_and_ca_files_are_private(cluster: Cluster) -> None:
    assert stat.S_IMODE(os.stat(cluster.data_dir).st_mode) == 0o700
    for root, _dirs, files in os.walk(os.path.join(cluster.data_dir, "keys")):
        for name in files:
            if name.endswith("-key.pem") or name.endswith(".json"):
                assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600, name
    sqlite = os.path.join(cluster.data_dir, "backend.sqlite")
    assert stat.S_IMODE(os.stat(sqlite).st_mode) == 0o600


def test_tokens_never_logged(cluster: Cluster) -> None:
    out = cluster.tctl("nodes", "add").stdout
    token = out.split("The invite token: ")[1].split()[0]
    time.sleep(0.2)
    with open(os.path.join(cluster.root, "teleport.log")) as f:
        log = f.read()
    assert token not in log and cluster.static_token not in log
