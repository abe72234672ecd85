"""What tctl exports and signs is read and accepted by OpenSSH's own tools."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from tests.helpers import Cluster

pytestmark = pytest.mark.interop


def run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_export_lines_are_openssh_formats(cluster: Cluster) -> None:
    user = cluster.tctl("auth", "export", "--type=user").stdout.strip()
    host = cluster.tctl("auth", "export", "--type=host").stdout.strip()
    both = cluster.tctl("auth", "export").stdout.strip().splitlines()
    assert user.startswith("cert-authority ssh-ed25519 ") and f"clustername={cluster.cluster_name}" in user
    assert host.startswith("@cert-authority * ssh-ed25519 ") and "type=host" in host
    assert sorted(both) == sorted([user, host])

    with tempfile.TemporaryDirectory() as d:
        ak = os.path.join(d, "authorized_keys")
        with open(ak, "w") as f:
            f.write(user + "\n")
        # ssh-keygen reads the authorized_keys line (options and all)
        fp_user = run("ssh-keygen", "-l", "-f", ak).split()[1]
        ls = cluster.tctl("auth", "ls").stdout
        assert fp_user in ls

        kh = os.path.join(d, "known_hosts")
        with open(kh, "w") as f:
            f.write(host + "\n")
        found = run("ssh-keygen", "-F", "anyhost.example", "-f", kh)
        assert "@cert-authority" in found

        # sshd accepts the user CA as TrustedUserCAKeys and a cluster host certificate
        ca_file = os.path.join(d, "user_ca.pub")
        with open(ca_file, "w") as f:
            f.write(" ".join(user.split()[1:3]) + "\n")
        hostkey = os.path.join(d, "hostkey")
        cluster.tctl("auth", "sign", "--host=sshd-host,127.0.0.1", "-o", hostkey)
        info = run("ssh-keygen", "-L", "-f", hostkey + "-cert.pub")
        assert "host certificate" in info and "sshd-host" in info
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(
                f"HostKey {hostkey}\nHostCertificate {hostkey}-cert.pub\n"
                f"TrustedUserCAKeys {ca_file}\nAuthorizedKeysFile {ak}\n"
                f"PidFile {d}/sshd.pid\nUsePAM no\n"
            )
        os.makedirs("/run/sshd", exist_ok=True)
        res = subprocess.run(["/usr/sbin/sshd", "-t", "-f", conf], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_auth_sign_user_for_automation(cluster: Cluster) -> None:
    cluster.add_user("jenkins", "jenkins,deploy")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "jenkins")
        cluster.tctl("auth", "sign", "--user=jenkins", "-o", out, "--ttl=2h")
        assert oct(os.stat(out).st_mode & 0o777) == "0o600"
        info = run("ssh-keygen", "-L", "-f", out + "-cert.pub")
        assert 'Key ID: "jenkins"' in info and "user certificate" in info
        assert "jenkins" in info.split("Principals:")[1] and "deploy" in info.split("Principals:")[1]
        # the private key matches the certificate
        derived = os.path.join(d, "derived.pub")
        with open(derived, "w") as f:
            f.write(run("ssh-keygen", "-y", "-f", out))
        fp = run("ssh-keygen", "-l", "-f", derived).split()[1]
        assert f"Public key: ED25519-CERT {fp}" in info
        res = cluster.tctl("auth", "sign", "--user=nobody", "-o", out + "x", check=False)
        assert res.returncode != 0 and "not found" in res.stderr
