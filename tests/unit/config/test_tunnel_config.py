"""teleport.yaml for reverse tunnels: tunnel_public_addr, and the tunnel listener on the web port."""

from __future__ import annotations

import pytest

from teleport import defaults
from teleport.config.addr import HostPort
from teleport.config.fileconf import parse_config_text
from teleport.errors import ConfigError


def test_tunnel_public_addr() -> None:
    cfg = parse_config_text("proxy_service:\n  tunnel_public_addr: proxy.example.com\n", "t.yaml")
    assert cfg.proxy_service.tunnel_public_addr == HostPort("proxy.example.com", defaults.PROXY_TUNNEL_PORT)
    assert parse_config_text("", "t.yaml").proxy_service.tunnel_public_addr is None
    with pytest.raises(ConfigError, match="proxy_service.tunnel_public_addr: expected the address agents reach"):
        parse_config_text("proxy_service:\n  tunnel_public_addr: 0.0.0.0:3024\n", "t.yaml")


def test_tunnel_may_share_the_web_port_only() -> None:
    cfg = parse_config_text(
        "proxy_service:\n  web_listen_addr: 0.0.0.0:3080\n  tunnel_listen_addr: 0.0.0.0:3080\n", "t.yaml")
    assert cfg.proxy_service.tunnel_listen_addr == cfg.proxy_service.web_listen_addr
    # any other sharing is still refused
    with pytest.raises(ConfigError, match="port 3023 is already used by proxy_service.listen_addr"):
        parse_config_text("proxy_service:\n  tunnel_listen_addr: 0.0.0.0:3023\n", "t.yaml")
    with pytest.raises(ConfigError, match="already used"):
        # the same port on different hosts (one a wildcard) is no shared listener
        parse_config_text(
            "proxy_service:\n  web_listen_addr: 0.0.0.0:3080\n  tunnel_listen_addr: 127.0.0.1:3080\n", "t.yaml")
