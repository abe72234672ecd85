"""`tsh scp`: copy files to and from nodes with SFTP over the proxy tunnel."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from teleport.errors import BadParameter

# Many requests in flight: throughput is bound by round trips otherwise. Block size -1 lets
# asyncssh use the largest the server announces (limits@openssh.com; 255 KiB for OpenSSH) --
# a fixed larger value makes OpenSSH's sftp-server drop the connection.
SFTP_BLOCK_SIZE = -1
SFTP_MAX_REQUESTS = 128


@dataclass(frozen=True)
class Location:
    """One side of a copy: a local path, or `[user@]host:path` on a node."""

    path: str
    host: str = ""
    login: str = ""

    @property
    def remote(self) -> bool:
        return bool(self.host)


def parse_location(text: str) -> Location:
    """`[user@]host:path` -> remote; anything else (including `./a:b` and `/x:y`) -> local."""
    if text.startswith(("/", "./", "../", "~")):
        return Location(text)
    head, sep, path = text.partition(":")
    if not sep or "/" in head:
        return Location(text)
    if head.startswith("["):  # [v6addr]:path
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            raise BadParameter(f"bad location {text!r}: use [user@]host:path")
        return Location(text[end + 2:] or ".", text[1:end])
    login, at, host = head.rpartition("@")
    if not host:
        raise BadParameter(f"bad location {text!r}: no host before ':'")
    return Location(path or ".", host, login if at else "")


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, src: bytes, dst: bytes, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        name = os.path.basename(src.decode(errors="replace"))[:30]
        pct = 100 * done / total if total else 100.0
        width = 30
        fill = int(width * pct / 100)
        rate = done / max(now - self.start, 1e-6)
        sys.stderr.write(
            f"\r{name:<30} [{'#' * fill}{'.' * (width - fill)}] {pct:5.1f}% "
            f"{_human(done)} {_human(rate)}/s"
        )
        if done >= total:
            sys.stderr.write("\n")
            self.start = time.monotonic()
        sys.stderr.flush()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}TiB"


async def copy(
    sftp: Any, src: list[Location], dst: Location, recursive: bool, progress: Progress | None
) -> None:
    """Upload (local srcs -> remote dst) or download (remote srcs -> local dst) with SFTP."""
    kwargs: dict[str, Any] = {
        "recurse": recursive,
        "preserve": False,
        "block_size": SFTP_BLOCK_SIZE,
        "max_requests": SFTP_MAX_REQUESTS,
        "progress_handler": progress,
    }
    if dst.remote:
        for s in src:
            if not recursive and os.path.isdir(s.path):
                raise BadParameter(f"{s.path} is a directory: use -r to copy directories")
        paths = [s.path for s in src]
        await sftp.put(paths if len(paths) > 1 else paths[0], dst.path, **kwargs)
    else:
        paths = [s.path for s in src]
        await sftp.get(paths if len(paths) > 1 else paths[0], dst.path, **kwargs)
