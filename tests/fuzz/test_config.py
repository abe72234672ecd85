"""Fuzz: teleport.yaml (text and file), host:port addresses and the --labels flag."""

from __future__ import annotations

import os
import string
import tempfile
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from teleport.config.addr import HostPort, parse_host_port
from teleport.config.fileconf import load_config_file, parse_config_text
from teleport.config.labels import parse_labels_flag
from teleport.config.model import FileConfig
from teleport.config.sample import sample_config
from teleport.errors import BadParameter, ConfigError
from tests.fuzz.strategies import (
    expect_ok_or_error,
    json_like,
    mutated,
    nasty_strings,
    yaml_dump,
)

VALID: dict[str, Any] = {
    "teleport": {
        "nodename": "node1",
        "data_dir": "/tmp/tele",
        "auth_token": "xxxx",
        "ca_pin": "sha256:" + "ab" * 32,
        "advertise_ip": "10.1.0.5",
        "auth_servers": ["10.1.0.5:3025", "auth2", "[fd00::1]:4025"],
        "connection_limits": {"max_connections": 10, "max_users": 5},
        "log": {"output": "stderr", "severity": "warning"},
        "storage": {"type": "etcd", "peers": ["https://10.0.0.1:2379"], "prefix": "/tele",
                    "insecure": False},
    },
    "auth_service": {
        "enabled": True,
        "cluster_name": "main",
        "listen_addr": "10.1.0.5:4025",
        "tokens": ["node,proxy:secret"],
        "authentication": {"type": "local", "second_factor": "otp"},
        "session_recording": "proxy",
    },
    "ssh_service": {
        "enabled": True,
        "listen_addr": "0.0.0.0:3022",
        "labels": {"env": "prod"},
        "commands": [{"name": "arch", "command": ["uname", "-m"], "period": "1h"}],
    },
    "proxy_service": {
        "enabled": True,
        "listen_addr": "0.0.0.0:3023",
        "web_listen_addr": "0.0.0.0:3080",
        "tunnel_listen_addr": "0.0.0.0:3024",
        "public_addr": "proxy.example.com:3080",
        "proxy_checks_host_keys": False,
    },
}

SOURCE = "/etc/teleport.yaml"


def _check(text: str) -> FileConfig | None:
    """parse_config_text either returns a config or raises a ConfigError naming the file."""
    try:
        return parse_config_text(text, SOURCE)
    except ConfigError as exc:
        assert exc.message.startswith(SOURCE + ":"), exc.message
        assert "\n" not in exc.message.strip(), exc.message
        return None


def test_valid_config_parses() -> None:
    """The base document the mutations start from is itself valid."""
    cfg = parse_config_text(yaml_dump(VALID), SOURCE)
    assert cfg.auth_service.cluster_name == "main"
    assert cfg.ssh_service.commands[0].period == 3600


@given(mutated(VALID))
@example({**VALID, "ssh_service": {**VALID["ssh_service"], "commands": [
    {"name": "x", "command": ["a"], "period": "9" * 400}]}})
@example({**VALID, "teleport": {**VALID["teleport"], "connection_limits": {"max_connections": 1e400}}})
@example({**VALID, "auth_service": {**VALID["auth_service"], "listen_addr": "h:" + "9" * 5000}})
def test_mutated_config(data: Any) -> None:
    """A valid config with one value replaced by junk (wrong type, NaN, huge number, nested
    junk, an unknown key) loads or fails with a ConfigError that names the file."""
    cfg = _check(yaml_dump(data))
    if cfg is not None:
        assert cfg.source == SOURCE
        for cmd in cfg.ssh_service.commands:
            assert 1 <= cmd.period < float("inf")


@given(st.text(max_size=300))
@example("[" * 3000)  # PyYAML's composer recurses once per nesting level
@example("{" * 3000)
@example("a: &x [*x]")
@example("teleport: {data_dir: 2001-12-14}")
@example("? [a]\n: 1")
@example("\x00")
def test_arbitrary_text(text: str) -> None:
    """Any text is a config or a one-line ConfigError."""
    _check(text)


@given(st.dictionaries(st.sampled_from(["teleport", "auth_service", "ssh_service",
                                        "proxy_service"]), json_like, max_size=4))
def test_random_sections(data: dict[str, Any]) -> None:
    """Random trees under the real section names."""
    _check(yaml_dump(data))


@given(st.binary(max_size=200))
def test_load_config_file_bytes(raw: bytes) -> None:
    """A file holding arbitrary bytes (not UTF-8, NUL...) gives a ConfigError naming the file."""
    fd, path = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        try:
            cfg = load_config_file(path)
        except ConfigError as exc:
            assert exc.message.startswith(path + ":")
        else:
            assert cfg.source == path
    finally:
        os.unlink(path)


def test_sample_config_parses() -> None:
    """The sample that `teleport configure` prints loads as is."""
    assert parse_config_text(sample_config(), SOURCE).source == SOURCE


# --- host:port -------------------------------------------------------------------------------

_addr_text = st.one_of(
    nasty_strings,
    st.text(alphabet="0123456789abcdef:.[]-_ %/tcp", max_size=40),
    st.builds(lambda h, p: f"{h}:{p}", st.text(max_size=10), st.integers(-10, 10**6)),
)


@given(_addr_text, st.booleans())
@example("h:" + "9" * 5000, False)
@example("[::1]:" + "1" * 5000, True)
def test_parse_host_port(text: str, allow_zero: bool) -> None:
    """Any text is a HostPort with a port in range, or BadParameter."""
    hp = expect_ok_or_error(parse_host_port, text, 3025, allow_zero=allow_zero,
                            errors=(BadParameter,))
    if hp is not None:
        assert isinstance(hp, HostPort) and hp.host
        assert (0 if allow_zero else 1) <= hp.port <= 65535


@given(st.one_of(st.ip_addresses().map(str), st.from_regex(r"\A[a-z]([a-z0-9-]{0,18}[a-z0-9])?(\.[a-z]{2,5})?\Z")),
       st.integers(1, 65535))
def test_host_port_round_trip(host: str, port: int) -> None:
    """str(HostPort) parses back to the same HostPort."""
    hp = parse_host_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", 1)
    assert hp == HostPort(host, port)
    assert parse_host_port(str(hp), 1) == hp


# --- --labels ----------------------------------------------------------------------------------


@given(st.one_of(nasty_strings, st.text(alphabet='ab=,[]:"\' 1hm-', max_size=40)))
@example('a=[' + "9" * 400 + 'h:"x"]')
@example('a=[1h:"unterminated]')
def test_labels_flag(text: str) -> None:
    """The --labels flag parses or raises BadParameter."""
    out = expect_ok_or_error(parse_labels_flag, text, errors=(BadParameter,))
    if out is not None:
        static, commands = out
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in static.items())
        assert all(c.command and c.period >= 1 for c in commands)


_LABEL_CHARS = string.ascii_letters + string.digits + "_.-"
_key = st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=10)
_val = st.text(alphabet=_LABEL_CHARS, max_size=10)


@given(st.dictionaries(_key, _val, max_size=5))
def test_labels_flag_round_trip(labels: dict[str, str]) -> None:
    """key=value pairs joined with commas come back as the same mapping."""
    text = ",".join(f"{k}={v}" for k, v in labels.items())
    assert parse_labels_flag(text) == (labels, [])


def test_yaml_dump_keeps_nan() -> None:
    """The mutation helper writes NaN the way a user would (.nan), so the YAML path sees it."""
    assert yaml.safe_load(yaml_dump({"a": float("nan")}))["a"] != 0
