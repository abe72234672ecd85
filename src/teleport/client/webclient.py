"""Talks to the proxy's HTTPS API from tsh, synchronously and with the standard library only
(a command-line tool pays for every import at every start)."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

from teleport import defaults
from teleport.errors import ConnectionProblem, TeleportError, error_from_dict


def parse_proxy(addr: str) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' -> (host, web port); the default web port is 3080."""
    addr = addr.strip()
    if addr.startswith("https://"):
        addr = addr[len("https://") :].split("/", 1)[0]
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port = rest.lstrip(":")
    elif addr.count(":") == 1:
        host, _, port = addr.partition(":")
    else:
        host, port = addr, ""
    if not host:
        raise TeleportError(f"bad proxy address {addr!r}: expected HOST[:PORT]")
    try:
        return host, int(port) if port else defaults.PROXY_WEB_PORT
    except ValueError:
        raise TeleportError(f"bad proxy address {addr!r}: the port must be a number") from None


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WebClient:
    """JSON over HTTPS to one proxy."""

    def __init__(self, proxy: str, insecure: bool = False, timeout: float = 30) -> None:
        self.host, self.port = parse_proxy(proxy)
        self.insecure = insecure
        self.timeout = timeout
        if insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context()
        self.ctx = ctx

    @property
    def addr(self) -> str:
        return join_host_port(self.host, self.port)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.ctx)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except ssl.SSLCertVerificationError as exc:
            raise ConnectionProblem(
                f"the proxy {self.addr} presented a certificate that is not trusted "
                f"({exc.verify_message}). If this is a test cluster with a self-signed "
                "certificate, add --insecure; in production install a certificate from a "
                "trusted CA on the proxy (proxy_service.https_cert_file)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionProblem(f"cannot reach the proxy at {self.addr}: {exc}") from None
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if resp.status >= 400:
            if isinstance(data, dict) and "error" in data:
                raise error_from_dict(data)
            raise TeleportError(f"the proxy {self.addr} answered HTTP {resp.status}")
        return data
