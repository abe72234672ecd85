"""Durations (Go syntax) and host:port parsing."""

from __future__ import annotations

import pytest

from teleport.config.addr import HostPort, parse_host_port
from teleport.durations import format_duration, parse_duration
from teleport.errors import BadParameter


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600),
        ("1m0s", 60),
        ("1h30m", 5400),
        ("90s", 90),
        ("500ms", 0.5),
        ("2h45m10s", 2 * 3600 + 45 * 60 + 10),
        ("1.5h", 5400),
        ("0", 0),
        ("0s", 0),
        ("90", 90),
        (90, 90),
        (0, 0),
        (2.5, 2.5),
        ("1h0m0s", 3600),
        ("  5m ", 300),
        ("250us", 0.00025),
        ("1000ns", 1e-6),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["-1h", "-5", -1, "abc", "1x", "h", "1h 30m", "", "1d", True, "1.2.3s"]
)
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(BadParameter) as err:
        parse_duration(text)  # type: ignore[arg-type]
    assert "expected a duration such as" in str(err.value)


def test_parse_duration_days_hint() -> None:
    with pytest.raises(BadParameter, match='write "48h"'):
        parse_duration("2d")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (3600, "1h"),
        (1800, "30m"),
        (330, "5m30s"),
        (3605, "1h0m5s"),
        (5400, "1h30m"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (23 * 3600, "23h"),
        (45, "45s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("seconds", [1, 59, 61, 3599, 86400, 100000.25, 0.001, 7.125])
def test_format_parse_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", HostPort("example.com", 3025)),
        ("example.com:443", HostPort("example.com", 443)),
        (":3080", HostPort("0.0.0.0", 3080)),
        ("10.0.0.1:22", HostPort("10.0.0.1", 22)),
        ("[::1]:3025", HostPort("::1", 3025)),
        ("[::]:3022", HostPort("::", 3022)),
        ("[fe80::1]", HostPort("fe80::1", 3025)),
        ("::1", HostPort("::1", 3025)),
        ("2001:db8::5", HostPort("2001:db8::5", 3025)),
        ("tcp://auth.local:4025", HostPort("auth.local", 4025)),
        (" host_1 ", HostPort("host_1", 3025)),
    ],
)
def test_parse_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text, 3025) == expected


@pytest.mark.parametrize(
    "text",
    [
        "abc:xyz",
        "host:0",
        "host:65536",
        "host:-1",
        "[::1",
        "[::1]x",
        "[10.0.0.1]:5",
        "a b:1",
        "1:2:3:zz",
        "",
        "host:",
        "h/x:5",
    ],
)
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(BadParameter) as err:
        parse_host_port(text, 3025)
    assert "expected host:port" in str(err.value)


def test_port_zero_only_for_listeners() -> None:
    assert parse_host_port("127.0.0.1:0", 3025, allow_zero=True) == HostPort("127.0.0.1", 0)
    with pytest.raises(BadParameter, match="from 1 to 65535"):
        parse_host_port("127.0.0.1:0", 3025)


@pytest.mark.parametrize(
    ("hp", "text"),
    [
        (HostPort("::1", 3025), "[::1]:3025"),
        (HostPort("10.0.0.1", 22), "10.0.0.1:22"),
        (HostPort("example.com", 3080), "example.com:3080"),
    ],
)
def test_host_port_str_round_trip(hp: HostPort, text: str) -> None:
    assert str(hp) == text
    assert parse_host_port(str(hp), 1) == hp
