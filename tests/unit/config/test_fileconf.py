"""teleport.yaml loading: the sample, a full file, and every class of error message."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from teleport import defaults
from teleport.config.addr import HostPort
from teleport.config.fileconf import default_config, load_config_file, parse_config_text
from teleport.config.model import CommandLabel, StaticToken
from teleport.config.sample import sample_config
from teleport.errors import ConfigError

FULL = """\
teleport:
  nodename: node1
  data_dir: /tmp/tele
  auth_token: xxxx
  ca_pin: sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789
  advertise_ip: 10.1.0.5
  auth_servers: [10.1.0.5:3025, "auth2", "[fd00::1]:4025"]
  connection_limits: {max_connections: 10, max_users: 5}
  log: {output: /var/log/teleport.log, severity: warning}
  storage:
    type: etcd
    peers: [https://10.0.0.1:2379]
    tls_cert_file: /c.pem
    tls_key_file: /k.pem
    tls_ca_file: /ca.pem
    prefix: /tele
    insecure: no
auth_service:
  enabled: yes
  cluster_name: main
  listen_addr: 10.1.0.5:4025
  tokens: ["proxy,node:xxxxx", "auth:yyyy"]
  authentication: {type: local, second_factor: off}
  session_recording: off
ssh_service:
  enabled: no
  listen_addr: "[::]:3022"
  labels: {role: master, type: postgres}
  commands:
    - {name: arch, command: [uname, -p], period: 1h}
    - {name: up, command: "uptime -p", period: 90}
proxy_service:
  enabled: true
  listen_addr: 0.0.0.0:3023
  web_listen_addr: ":443"
  tunnel_listen_addr: 0.0.0.0:3024
  public_addr: proxy.example.com
  https_key_file: /etc/teleport/teleport.key
  https_cert_file: /etc/teleport/teleport.crt
"""


def test_sample_round_trip() -> None:
    text = sample_config()
    cfg = parse_config_text(text, "sample.yaml")
    d = default_config()
    d.source = "sample.yaml"
    # the sample states exactly the defaults (nodename is left to the hostname)
    assert cfg == d
    assert cfg.roles() == ["auth", "node", "proxy"]
    assert cfg.teleport.nodename == socket.gethostname()
    for section in ("teleport:", "auth_service:", "ssh_service:", "proxy_service:"):
        assert f"\n{section}\n" in text
    for key in (
        "auth_token",
        "auth_servers",
        "ca_pin",
        "advertise_ip",
        "tokens",
        "public_addr",
        "https_key_file",
        "cluster_name",
        "storage:",
    ):
        assert f"# {key}" in text, key


def test_sample_commented_examples_are_valid() -> None:
    """Uncommenting the examples (dropping the shorthand lines they replace) still loads."""
    out = []
    in_dir_storage = False
    for line in sample_config().splitlines():
        stripped = line.strip()
        if stripped in ("labels: {}", "commands: []", "ssh_allowed_hosts: []"):
            continue
        if line == "  storage:":
            in_dir_storage = True  # the etcd example below replaces the "dir" storage
            continue
        if in_dir_storage and stripped == f"type: {defaults.STORAGE_TYPE}":
            in_dir_storage = False
            continue
        if stripped.startswith("# "):
            body = line.replace("# ", "", 1)
            # only lines that read as YAML keys or list items; prose comments stay comments
            if re.match(r"\s+([a-z_]+:( |$)|- )", body):
                line = body
        out.append(line)
    text = "\n".join(out)
    cfg = parse_config_text(text, "uncommented.yaml")
    assert cfg.teleport.storage["type"] == "etcd"
    assert cfg.teleport.auth_servers == [HostPort("10.1.0.5", 3025)]
    assert cfg.teleport.auth_token == "xxxx-token-xxxx"
    assert cfg.auth_service.cluster_name == "main"
    assert [t.roles for t in cfg.auth_service.tokens] == [["proxy", "node"], ["auth"]]
    assert cfg.ssh_service.labels == {"role": "master", "type": "postgres"}
    assert [c.name for c in cfg.ssh_service.commands] == ["arch", "kernel"]
    assert cfg.proxy_service.public_addr == HostPort("proxy.example.com", 3080)
    assert cfg.proxy_service.https_cert_file == "/etc/teleport/teleport.crt"
    assert cfg.proxy_service.ssh_allowed_hosts == ["10.1.0.0/16:22", "bastion-*.example.com:22"]


def test_full_file() -> None:
    cfg = parse_config_text(FULL, "full.yaml")
    g = cfg.teleport
    assert g.nodename == "node1"
    assert g.data_dir == "/tmp/tele"
    assert g.auth_token == "xxxx"
    assert g.ca_pin == "sha256:" + "abcdef0123456789" * 4
    assert g.advertise_ip == "10.1.0.5"
    assert g.auth_servers == [
        HostPort("10.1.0.5", 3025),
        HostPort("auth2", 3025),
        HostPort("fd00::1", 4025),
    ]
    assert (g.max_connections, g.max_users) == (10, 5)
    assert (g.log_output, g.log_severity) == ("/var/log/teleport.log", "WARNING")
    assert g.storage == {
        "type": "etcd",
        "peers": ["https://10.0.0.1:2379"],
        "tls_cert_file": "/c.pem",
        "tls_key_file": "/k.pem",
        "tls_ca_file": "/ca.pem",
        "prefix": "/tele",
        "insecure": False,
    }
    a = cfg.auth_service
    assert a.cluster_name == "main"
    assert a.listen_addr == HostPort("10.1.0.5", 4025)
    assert a.tokens == [StaticToken(["proxy", "node"], "xxxxx"), StaticToken(["auth"], "yyyy")]
    assert (a.auth_type, a.second_factor, a.session_recording) == ("local", "off", "off")
    s = cfg.ssh_service
    assert s.enabled is False
    assert s.listen_addr == HostPort("::", 3022)
    assert str(s.listen_addr) == "[::]:3022"
    assert s.labels == {"role": "master", "type": "postgres"}
    assert s.commands == [
        CommandLabel("arch", ["uname", "-p"], 3600.0),
        CommandLabel("up", ["uptime", "-p"], 90.0),
    ]
    p = cfg.proxy_service
    assert p.web_listen_addr == HostPort("0.0.0.0", 443)
    assert p.public_addr == HostPort("proxy.example.com", 3080)
    assert cfg.roles() == ["auth", "proxy"]
    assert cfg.source == "full.yaml"


def test_defaults_and_empty_sections() -> None:
    cfg = parse_config_text("auth_service:\nssh_service: {}\n", "t.yaml")
    assert cfg.auth_service.enabled and cfg.ssh_service.enabled and cfg.proxy_service.enabled
    assert cfg.auth_service.cluster_name is None
    assert cfg.auth_service.listen_addr == HostPort("0.0.0.0", defaults.AUTH_PORT)
    assert cfg.teleport.storage == {"type": "dir"}
    assert parse_config_text("", "empty.yaml").roles() == ["auth", "node", "proxy"]
    assert default_config().teleport.data_dir == defaults.DATA_DIR


def test_reference_spellings_accepted() -> None:
    """The reference sample's `type: bolt` and `dynamic_config` keep loading."""
    cfg = parse_config_text(
        "teleport:\n  storage: {type: bolt}\nauth_service:\n  dynamic_config: false\n", "ref.yaml"
    )
    assert cfg.teleport.storage == {"type": "dir"}


def test_quoted_booleans() -> None:
    cfg = parse_config_text('auth_service: {enabled: "no"}\nssh_service: {enabled: "Yes"}\n', "t")
    assert cfg.roles() == ["node", "proxy"]


def test_static_token_repr_hides_secret() -> None:
    cfg = parse_config_text('auth_service:\n  tokens: ["node:s3cr3t-value"]\n', "t.yaml")
    assert "s3cr3t-value" not in repr(cfg.auth_service.tokens[0])
    assert "s3cr3t-value" not in repr(cfg)
    cfg = parse_config_text("teleport:\n  auth_token: join-secret\n", "t.yaml")
    assert "join-secret" not in repr(cfg)


# Each case: YAML text, then fragments the single-line message must contain after "<file>: ".
ERRORS = [
    (
        "teleport:\n  storge: {type: dir}\n",
        'teleport.storge: unknown key (did you mean "storage"?)',
    ),
    (
        "auth_servce:\n  enabled: yes\n",
        'auth_servce: unknown section (did you mean "auth_service"?)',
    ),
    (
        "auth_service:\n  listen_addr: abc:xyz\n",
        'auth_service.listen_addr: expected host:port, got "abc:xyz"',
    ),
    (
        "ssh_service:\n  listen_addr: 0.0.0.0:70000\n",
        "ssh_service.listen_addr: expected host:port with a port from 0 to 65535",
    ),
    (
        "proxy_service:\n  web_listen_addr: 3080\n",
        'proxy_service.web_listen_addr: expected host:port, got 3080 (write ":3080"',
    ),
    (
        "auth_service:\n  enabled: maybe\n",
        'auth_service.enabled: expected yes/no (or true/false), got "maybe"',
    ),
    (
        "teleport:\n  connection_limits: {max_users: -3}\n",
        "teleport.connection_limits.max_users: expected a positive integer, got -3",
    ),
    (
        "teleport:\n  connection_limits: {handshake_timeout: 0s}\n",
        "teleport.connection_limits.handshake_timeout: must be a positive duration",
    ),
    (
        "teleport:\n  connection_limits: {max_users: yes}\n",
        "teleport.connection_limits.max_users: expected a positive integer, got a boolean",
    ),
    (
        "auth_service:\n  listen_addr: [a, b]\n",
        "auth_service.listen_addr: expected host:port, got a list (quote IPv6 addresses",
    ),
    ("teleport:\n  nodename: [a, b]\n", "teleport.nodename: expected a string, got a list"),
    (
        "teleport:\n  storage: {type: firestore}\n",
        'teleport.storage.type: unknown storage type "firestore"; expected one of dir, etcd, dynamodb',
    ),
    (
        "teleport:\n  storage: {type: etc}\n",
        'teleport.storage.type: unknown storage type "etc" (did you mean "etcd"?)',
    ),
    ("teleport:\n  storage: {type: etcd}\n", "teleport.storage.peers: etcd storage needs peers"),
    (
        "teleport:\n  storage: {type: etcd, peers: [10.0.0.1:2379]}\n",
        'teleport.storage.peers[0]: expected an URL like https://10.0.0.1:2379, got "10.0.0.1:2379"',
    ),
    (
        "teleport:\n  storage: {type: etcd, peers: [https://a:2379], tls_cert_file: /c}\n",
        "teleport.storage.tls_key_file: tls_cert_file and tls_key_file must be given together",
    ),
    (
        "teleport:\n  storage: {type: dir, peers: [x]}\n",
        "teleport.storage.peers: unknown key; valid keys: type, path",
    ),
    (
        "teleport:\n  log: {severity: LOUD}\n",
        'teleport.log.severity: expected one of DEBUG, INFO, WARN, WARNING, ERROR, got "LOUD"',
    ),
    (
        "teleport:\n  log: {output: stdrr}\n",
        'teleport.log.output: expected stderr, stdout, syslog or a file path such as /var/log/teleport.log, got "stdrr" (did you mean "stderr"?)',
    ),
    ("teleport:\n  ca_pin: abc\n", 'teleport.ca_pin: expected "sha256:<64 hex digits>"'),
    (
        "teleport:\n  advertise_ip: 10.0.0.1:3022\n",
        'teleport.advertise_ip: expected an IP address or host name (no port), got "10.0.0.1:3022"',
    ),
    (
        "teleport:\n  auth_servers: [10.0.0.1:99999]\n",
        "teleport.auth_servers[0]: expected host:port with a port from 1 to 65535",
    ),
    (
        'auth_service:\n  tokens: ["node,dbadmin:xyz"]\n',
        'auth_service.tokens[0]: unknown role "dbadmin" in token',
    ),
    (
        'auth_service:\n  tokens: ["nod:xyz"]\n',
        'auth_service.tokens[0]: unknown role "nod" in token (did you mean "node"?)',
    ),
    (
        'auth_service:\n  tokens: ["justasecret"]\n',
        'auth_service.tokens[0]: expected "roles:token" such as "node,proxy:<secret>", found no ":"',
    ),
    (
        'auth_service:\n  tokens: ["node:"]\n',
        'auth_service.tokens[0]: the token after ":" is empty',
    ),
    (
        'auth_service:\n  tokens: "node:abc"\n',
        'auth_service.tokens: expected a list of "roles:token" strings',
    ),
    (
        "auth_service:\n  authentication: {second_factor: yubikey}\n",
        'auth_service.authentication.second_factor: expected one of off, otp, webauthn, on, '
        'optional, u2f, got "yubikey"',
    ),
    (
        "auth_service:\n  authentication: {type: saml}\n",
        'auth_service.authentication.type: expected one of local, github, oidc, got "saml"',
    ),
    (
        "auth_service:\n  session_recording: proxies\n",
        'auth_service.session_recording: expected one of node, proxy, off, got "proxies"',
    ),
    (
        "proxy_service:\n  proxy_checks_host_keys: maybe\n",
        "proxy_service.proxy_checks_host_keys",
    ),
    (
        "auth_service:\n  cluster_name: my cluster\n",
        "auth_service.cluster_name: expected a name of letters, digits",
    ),
    (
        "ssh_service:\n  labels: {env: 12}\n",
        'ssh_service.labels.env: expected a string, got 12 (quote it: "...")',
    ),
    (
        'ssh_service:\n  labels: {"bad key": x}\n',
        'ssh_service.labels.bad key: invalid label name "bad key"',
    ),
    (
        "ssh_service:\n  commands: [{name: up, command: [uptime], period: soon}]\n",
        'ssh_service.commands[0].period: expected a duration such as "90s"',
    ),
    (
        "ssh_service:\n  commands: [{name: up, command: [uptime], period: -1m}]\n",
        "ssh_service.commands[0].period: expected a duration such as",
    ),
    (
        "ssh_service:\n  commands: [{name: up, command: [uptime]}]\n",
        "ssh_service.commands[0].period: missing",
    ),
    (
        "ssh_service:\n  commands: [{name: up, cmd: [uptime], period: 1m}]\n",
        'ssh_service.commands[0].cmd: unknown key (did you mean "command"?)',
    ),
    (
        "ssh_service:\n  commands: [{name: up, command: [], period: 1m}]\n",
        "ssh_service.commands[0].command: expected a list such as [uname, -r]",
    ),
    (
        "ssh_service:\n  labels: {up: x}\n  commands: [{name: up, command: [uptime], period: 1m}]\n",
        'ssh_service.commands: label "up" is both a static label and a command label',
    ),
    (
        "proxy_service:\n  https_key_file: /k\n",
        "proxy_service.https_cert_file: https_key_file and https_cert_file must be given together",
    ),
    (
        "proxy_service:\n  public_addr: 0.0.0.0:3080\n",
        "proxy_service.public_addr: expected the address users reach the proxy at",
    ),
    (
        "proxy_service:\n  web_listen_addr: 0.0.0.0:3025\n",
        "proxy_service.web_listen_addr: port 3025 is already used by auth_service.listen_addr (0.0.0.0:3025)",
    ),
    (
        "- teleport\n",
        "expected a mapping with the sections teleport, auth_service, ssh_service, proxy_service, got a list",
    ),
    ("teleport: 5\n", "teleport: expected a mapping of keys, got 5"),
]


@pytest.mark.parametrize(("text", "fragment"), ERRORS)
def test_error_messages(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text(text, "/etc/teleport.yaml")
    msg = str(err.value)
    assert msg.startswith("/etc/teleport.yaml: "), msg
    assert fragment in msg, msg
    assert "\n" not in msg and "Traceback" not in msg


def test_token_secret_never_in_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text('auth_service:\n  tokens: ["sup3rsecret"]\n', "t.yaml")
    assert "sup3rsecret" not in str(err.value)


def test_disabled_services_do_not_conflict() -> None:
    cfg = parse_config_text(
        "proxy_service:\n  enabled: no\n  web_listen_addr: 0.0.0.0:3025\n", "t.yaml"
    )
    assert cfg.roles() == ["auth", "node"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("teleport:\n  nodename: a\n   data_dir: b\n", "line 3"),
        ("teleport:\n\tnodename: a\n", "line 2"),
        ("auth_service: {enabled: yes\n", "line 2"),
        ("teleport:\n  nodename: a\n  nodename: b\n", "line 3"),
        ("ssh_service:\n  listen_addr: [::]:3022\n", "line 2"),
    ],
)
def test_invalid_yaml(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text(text, "bad.yaml")
    msg = str(err.value)
    assert msg.startswith(f"bad.yaml: {where}, column "), msg
    assert "\n" not in msg


def test_unquoted_ipv6_hint() -> None:
    with pytest.raises(ConfigError, match="quote IPv6 addresses"):
        parse_config_text("ssh_service:\n  listen_addr: [::]:3022\n", "v6.yaml")


def test_duplicate_key_message() -> None:
    with pytest.raises(ConfigError, match='duplicate key "nodename"'):
        parse_config_text("teleport:\n  nodename: a\n  nodename: b\n", "dup.yaml")


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "teleport.yaml"
    path.write_text(FULL)
    cfg = load_config_file(str(path))
    assert cfg.source == str(path)
    assert cfg.teleport.nodename == "node1"
    path.write_text("teleport:\n  storge: {}\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(str(path))
    assert str(err.value).startswith(f"{path}: teleport.storge: unknown key")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_config_file(str(path))
    msg = str(err.value)
    assert str(path) in msg
    assert "does not exist" in msg
    assert f"teleport configure > {path}" in msg


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config_file(str(tmp_path))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config_file(str(binary))
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.yaml"
        locked.write_text("")
        locked.chmod(0)
        with pytest.raises(ConfigError, match="cannot read"):
            load_config_file(str(locked))


@pytest.mark.parametrize(("value", "want"), [
    ("104857600", 100 * 1024 * 1024),
    ("100MiB", 100 * 1024 * 1024),
    ("1GB", 10**9),
    ("512K", 512 * 1024),
    ("'1.5 GiB'", int(1.5 * 1024**3)),
])
def test_max_recording_size(value: str, want: int) -> None:
    assert parse_config_text("", "t.yaml").auth_service.max_recording_size == defaults.MAX_RECORDING_SIZE
    cfg = parse_config_text(f"auth_service:\n  max_recording_size: {value}\n", "t.yaml")
    assert cfg.auth_service.max_recording_size == want


@pytest.mark.parametrize("value", ["0", "-5", "yes", "lots", "10 parsecs", "[1]"])
def test_max_recording_size_errors(value: str) -> None:
    with pytest.raises(ConfigError, match=r"t\.yaml: auth_service\.max_recording_size: expected a size"):
        parse_config_text(f"auth_service:\n  max_recording_size: {value}\n", "t.yaml")


@pytest.mark.parametrize(
    ("authn", "factor", "rp_id", "origins"),
    [
        ("{second_factor: on}", "on", "", []),
        ("{second_factor: optional}", "optional", "", []),
        ("{second_factor: webauthn, webauthn: {rp_id: Proxy.Example.com}}", "webauthn",
         "proxy.example.com", []),
        # the reference's U2F settings map to the WebAuthn relying party
        ("{second_factor: u2f, u2f: {app_id: 'https://localhost:3080', facets: "
         "['https://localhost', 'https://localhost:3080']}}", "webauthn", "localhost",
         ["https://localhost:3080", "https://localhost", "https://localhost:3080"]),
    ],
)
def test_second_factor_webauthn(authn: str, factor: str, rp_id: str, origins: list[str]) -> None:
    cfg = parse_config_text(f"auth_service:\n  authentication: {authn}\n")
    a = cfg.auth_service
    assert (a.second_factor, a.webauthn_rp_id, a.webauthn_origins) == (factor, rp_id, origins)


@pytest.mark.parametrize(
    ("authn", "message"),
    [
        ("{webauthn: {rp_id: 10.0.0.1}}", "browsers refuse an IP address"),
        ("{u2f: {app_id: 'https://192.168.1.5:3080'}}", "browsers refuse an IP address"),
        ("{u2f: {app_id: 'http://proxy:3080'}}", "must be an https URL"),
        ("{u2f: {app_id: 'https://p', facets: [ftp://x]}}", "expected a list of https://"),
        ("{webauthn: {rp: x}}", "rp"),
    ],
)
def test_webauthn_settings_errors(authn: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config_text(f"auth_service:\n  authentication: {authn}\n")
