"""tsh's pure helpers: scp locations, ssh_config block, -L specs, known_hosts CA lines."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from teleport.ca import keys
from teleport.ca.export import known_hosts_line
from teleport.client.forwarding import parse_forward
from teleport.client.scp import Location, parse_location
from teleport.client.ssh import read_host_ca_keys
from teleport.client.sshconfig import ssh_config_block
from teleport.errors import BadParameter


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("joe@luna:/tmp/x", Location("/tmp/x", "luna", "joe")),
        ("luna:x", Location("x", "luna", "")),
        ("luna:", Location(".", "luna", "")),
        ("[::1]:/a", Location("/a", "::1", "")),
        ("/tmp/a:b", Location("/tmp/a:b")),
        ("./a:b", Location("./a:b")),
        ("dir/a:b", Location("dir/a:b")),
        ("plain.txt", Location("plain.txt")),
    ],
)
def test_parse_location(text: str, want: Location) -> None:
    assert parse_location(text) == want


def test_parse_forward() -> None:
    assert parse_forward("8080:web:80") == ("127.0.0.1", 8080, "web", 80)
    assert parse_forward("0.0.0.0:8080:web:80") == ("0.0.0.0", 8080, "web", 80)
    with pytest.raises(BadParameter):
        parse_forward("8080:web")


def test_read_host_ca_keys(tmp_path: object) -> None:
    mine = keys.public_key_to_openssh(keys.generate_private_key())
    other = keys.public_key_to_openssh(keys.generate_private_key())
    path = os.path.join(str(tmp_path), "known_hosts")
    with open(path, "w") as f:
        f.write(known_hosts_line(other, "b", ["*"]) + " clustername=b\n")
        f.write(known_hosts_line(mine, "a", ["*"]) + " clustername=a\n")
        f.write("somehost ssh-ed25519 AAAA\n")
    got = read_host_ca_keys(path, "a")
    assert [k.export_public_key("openssh").decode().split()[1] for k in got] == [mine.split()[1]]
    assert read_host_ca_keys(os.path.join(str(tmp_path), "nope"), "a") == []


def test_ssh_config_block_parses_with_openssh(tmp_path: object) -> None:
    block = ssh_config_block(
        cluster="east", proxy_host="proxy.example.com", proxy_port=3023,
        key_path="/home/j/.tsh/keys/proxy.example.com/joe",
        cert_path="/home/j/.tsh/keys/proxy.example.com/joe-cert.pub",
        known_hosts="/home/j/.tsh/known_hosts",
    )
    # only the cluster's names and the proxy host: other ssh destinations stay direct
    assert "\nHost *.east proxy.example.com\n" in block and "\nHost *\n" not in block
    assert "-s proxy:%h:%p@east" in block and "-F none" in block
    # recording proxy mode: a private agent with only the tsh key, forwarded to the proxy only
    assert "ProxyCommand sh -c 'eval \"$(ssh-agent -s)\"" in block
    assert "ssh-add -q /home/j/.tsh/keys/proxy.example.com/joe " in block
    assert "&& ssh -F none -A -p 3023" in block and "ForwardAgent" not in block
    if shutil.which("ssh") is None:
        pytest.skip("no OpenSSH client")
    conf = os.path.join(str(tmp_path), "cfg")
    with open(conf, "w") as f:
        f.write(block)
    out = subprocess.run(["ssh", "-G", "-F", conf, "-p", "22", "joe@luna.east"], capture_output=True, text=True, check=True).stdout
    assert "certificatefile /home/j/.tsh/keys/proxy.example.com/joe-cert.pub" in out
    assert "userknownhostsfile /home/j/.tsh/known_hosts" in out
    assert "proxycommand sh -c" in out and "forwardagent no" in out
    other = subprocess.run(["ssh", "-G", "-F", conf, "joe@github.com"], capture_output=True, text=True, check=True).stdout
    assert "proxycommand" not in other and "certificatefile" not in other
