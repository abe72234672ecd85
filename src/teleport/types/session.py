"""Active-session records (auth's session registry, `tsh sessions ls`, `tsh join`): the one place
that says how a record names the way to join it. Pure."""

from __future__ import annotations

from typing import Any

# A session a recording proxy relays carries {"host", "port"}: where its owner asked the proxy to
# go. A joiner asks the proxy for the same host and port; the proxy attaches it to the session.
RECORDING_PROXY = "recording_proxy"


def proxy_target(host: str, port: int) -> dict[str, Any]:
    """The record's `recording_proxy` value for a session relayed to host:port."""
    return {"host": host, "port": port}


def target_of(record: dict[str, Any]) -> tuple[str, int] | None:
    """(host, port) a session record says a recording proxy relays it to, else None (a node's
    own session: join it on that node)."""
    via = record.get(RECORDING_PROXY)
    if not isinstance(via, dict):
        return None
    host, port = via.get("host"), via.get("port")
    if not isinstance(host, str) or not host or isinstance(port, bool) or not isinstance(port, int):
        return None
    if not 0 < port < 65536:
        return None
    return host, port
