"""Channels over a leaf cluster's tunnel: the root's proxy writes one JSON request line, the leaf's
proxy answers one line ("OK" or "ERR <why>") and then, for a dial, the channel is the byte stream
to the leaf node's SSH server (the user's SSH runs end to end with the node).

Requests: {"op": "dial", "host", "port", "client", "cert"}, {"op": "nodes", "cert"} (the leaf
answers the node list as JSON, then EOF) and {"op": "recording", "sid", "cert"} (the recording's
bytes, then EOF). `cert` is the root user's certificate the root's proxy
authenticated: the leaf checks it against the root's user CA itself and maps its roles.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from teleport import defaults
from teleport.errors import BadParameter, NotFound

OPS = ("dial", "nodes", "recording")


def encode_request(req: dict[str, Any]) -> bytes:
    """One request line."""
    return json.dumps(req, separators=(",", ":")).encode() + b"\n"


def parse_request(line: bytes) -> dict[str, Any]:
    """Validate a request line; BadParameter says what is wrong."""
    try:
        req = json.loads(line)
    except ValueError:
        raise BadParameter("cluster tunnel request: not JSON") from None
    if not isinstance(req, dict) or req.get("op") not in OPS:
        raise BadParameter(f"cluster tunnel request: op must be one of {', '.join(OPS)}")
    if not isinstance(req.get("cert"), str) or not req["cert"]:
        raise BadParameter("cluster tunnel request: the user's certificate is missing")
    if req["op"] == "recording" and (not isinstance(req.get("sid"), str) or not req["sid"]):
        raise BadParameter("cluster tunnel request: recording needs the session id")
    if req["op"] == "dial":
        port = req.get("port")
        if not isinstance(req.get("host"), str) or not req["host"] or isinstance(port, bool) \
                or not isinstance(port, int) or not 0 < port < 65536:
            raise BadParameter("cluster tunnel request: dial needs host and port")
        if not isinstance(req.get("client"), str):
            raise BadParameter("cluster tunnel request: dial needs the client address")
    return req


async def read_line(sock: socket.socket, limit: int = defaults.CLUSTER_REQUEST_MAX) -> bytes:
    """Read one line from a non-blocking socket, byte by byte (nothing past the newline is
    consumed: what follows belongs to the stream). BadParameter when longer than `limit`."""
    loop = asyncio.get_running_loop()
    out = bytearray()
    while len(out) <= limit:
        b = await loop.sock_recv(sock, 1)
        if not b:
            raise NotFound("the other end of the cluster tunnel closed the channel")
        if b == b"\n":
            return bytes(out)
        out += b
    raise BadParameter("cluster tunnel: line too long")


async def splice(a: socket.socket, b: socket.socket) -> None:
    """Relay bytes both ways between two connected sockets until either side ends; close both."""
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)

    async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(1 << 16):
                w.write(data)
                await w.drain()
        except (OSError, ConnectionError):
            pass

    t1, t2 = asyncio.ensure_future(pump(ra, wb)), asyncio.ensure_future(pump(rb, wa))
    try:
        await asyncio.wait({t1, t2}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (t1, t2):
            t.cancel()
        for w in (wa, wb):
            w.close()
