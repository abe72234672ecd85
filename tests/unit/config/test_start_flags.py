"""`teleport start` flags over the file, and where the process finds auth."""

from __future__ import annotations

import pytest

from teleport.config.addr import HostPort
from teleport.config.fileconf import default_config, parse_config_text
from teleport.config.model import CommandLabel
from teleport.config.start import apply_start_flags, effective_auth_servers
from teleport.errors import BadParameter, ConfigError

FILE = """\
teleport:
  nodename: filenode
  auth_servers: [10.0.0.9:3025]
  log: {severity: ERROR}
ssh_service:
  labels: {env: staging, team: db}
  commands: [{name: kernel, command: [uname, -r], period: 1h}, {name: arch, command: [uname, -m], period: 1h}]
proxy_service:
  web_listen_addr: 0.0.0.0:443
"""


def test_flags_override_file() -> None:
    cfg = parse_config_text(FILE, "t.yaml")
    out = apply_start_flags(
        cfg,
        roles="node,proxy",
        advertise_ip="192.168.1.7",
        listen_ip="10.1.1.1",
        auth_server=["auth1:4025", "auth2,auth3:5025"],
        token="tok",
        nodename="flagnode",
        labels='env=prod,kernel=[5m:"uname -a"],uptime=[1m:uptime]',
        debug=True,
        ca_pin="sha256:" + "ab" * 32,
    )
    assert out.roles() == ["node", "proxy"]
    g = out.teleport
    assert g.advertise_ip == "192.168.1.7"
    assert g.auth_servers == [
        HostPort("auth1", 4025),
        HostPort("auth2", 3025),
        HostPort("auth3", 5025),
    ]
    assert g.auth_token == "tok"
    assert g.nodename == "flagnode"
    assert g.log_severity == "DEBUG"
    assert g.ca_pin == "sha256:" + "ab" * 32
    # every listener moved to the flag's IP, each keeping its port
    assert out.auth_service.listen_addr == HostPort("10.1.1.1", 3025)
    assert out.ssh_service.listen_addr == HostPort("10.1.1.1", 3022)
    assert out.proxy_service.listen_addr == HostPort("10.1.1.1", 3023)
    assert out.proxy_service.web_listen_addr == HostPort("10.1.1.1", 443)
    assert out.proxy_service.tunnel_listen_addr == HostPort("10.1.1.1", 3024)
    # labels merge: flag values win, file-only labels stay, a flag command replaces the file's
    assert out.ssh_service.labels == {"env": "prod", "team": "db"}
    assert out.ssh_service.commands == [
        CommandLabel("arch", ["uname", "-m"], 3600),
        CommandLabel("kernel", ["uname", "-a"], 300),
        CommandLabel("uptime", ["uptime"], 60),
    ]
    assert out.source == "t.yaml"
    # the input is left untouched
    assert cfg.teleport.nodename == "filenode"
    assert cfg.ssh_service.labels == {"env": "staging", "team": "db"}
    assert cfg.roles() == ["auth", "node", "proxy"]
    assert cfg.auth_service.listen_addr == HostPort("0.0.0.0", 3025)


def test_no_flags_is_identity() -> None:
    cfg = parse_config_text(FILE, "t.yaml")
    assert apply_start_flags(cfg) == cfg


def test_static_flag_label_replaces_file_command() -> None:
    cfg = parse_config_text(FILE, "t.yaml")
    out = apply_start_flags(cfg, labels="kernel=custom")
    assert out.ssh_service.labels["kernel"] == "custom"
    assert [c.name for c in out.ssh_service.commands] == ["arch"]


def test_ipv6_listen_ip() -> None:
    out = apply_start_flags(default_config(), listen_ip="::1", auth_server="[fd00::5]:3025")
    assert out.auth_service.listen_addr == HostPort("::1", 3025)
    assert str(out.proxy_service.web_listen_addr) == "[::1]:3080"
    assert out.teleport.auth_servers == [HostPort("fd00::5", 3025)]
    assert apply_start_flags(
        default_config(), listen_ip="[::1]"
    ).ssh_service.listen_addr == HostPort("::1", 3022)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"roles": "auth,nod"}, '--roles: unknown role "nod" (did you mean "node"?)'),
        ({"roles": "trusted_cluster"}, '--roles: unknown role "trusted_cluster"'),
        ({"roles": ","}, "--roles: expected a comma list of auth,node,proxy"),
        ({"listen_ip": "localhost"}, "--listen-ip: expected an IP address"),
        ({"advertise_ip": "1.2.3.4:5"}, "--advertise-ip: expected an IP address or host name"),
        ({"auth_server": "host:xyz"}, '--auth-server: expected host:port, got "host:xyz"'),
        ({"auth_server": ""}, "--auth-server: expected host[:port]"),
        ({"token": " "}, "--token: expected a join token"),
        ({"nodename": "a b"}, "--nodename: expected a host name"),
        ({"labels": "x"}, '--labels: bad label "x"'),
        ({"ca_pin": "sha256:zz"}, '--ca-pin: expected "sha256:<64 hex digits>"'),
    ],
)
def test_bad_flags(kwargs: dict[str, str], fragment: str) -> None:
    with pytest.raises(BadParameter) as err:
        apply_start_flags(default_config(), **kwargs)  # type: ignore[arg-type]
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:3025", HostPort("127.0.0.1", 3025)),
        ("[::]:4025", HostPort("::1", 4025)),
        ("10.2.3.4:3025", HostPort("10.2.3.4", 3025)),
        (":5025", HostPort("127.0.0.1", 5025)),
    ],
)
def test_effective_auth_servers_local(listen: str, expected: HostPort) -> None:
    cfg = parse_config_text(f"auth_service:\n  listen_addr: '{listen}'\n", "t.yaml")
    assert effective_auth_servers(cfg) == [expected]


def test_effective_auth_servers_configured_win() -> None:
    cfg = parse_config_text("teleport:\n  auth_servers: [a:1, b]\n", "t.yaml")
    assert effective_auth_servers(cfg) == [HostPort("a", 1), HostPort("b", 3025)]


def test_effective_auth_servers_none() -> None:
    cfg = apply_start_flags(parse_config_text("", "/etc/t.yaml"), roles="node")
    with pytest.raises(ConfigError) as err:
        effective_auth_servers(cfg)
    msg = str(err.value)
    assert msg.startswith("/etc/t.yaml: teleport.auth_servers:")
    assert "--auth-server" in msg
