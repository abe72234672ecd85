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
) -> list[str]:
    """Upload (local srcs -> remote dst) or download (remote srcs -> local dst) with SFTP.

    As OpenSSH's scp, a source that fails does not stop the others; the returned list holds one
    OpenSSH-like message per failure (`scp: PATH: No such file or directory`)."""
    kwargs: dict[str, Any] = {
        "recurse": recursive,
        "preserve": False,
        "block_size": SFTP_BLOCK_SIZE,
        "max_requests": SFTP_MAX_REQUESTS,
        "progress_handler": progress,
    }
    errors: list[str] = []
    for s in src:
        try:
            if dst.remote:
                if not recursive and os.path.isdir(s.path):
                    errors.append(f"scp: {s.path}: not a regular file (use -r to copy directories)")
                    continue
                await sftp.put(s.path, dst.path, **kwargs)
            else:
                if not recursive and await sftp.isdir(s.path):
                    errors.append(f"scp: {s.path}: not a regular file (use -r to copy directories)")
                    continue
                await sftp.get(s.path, dst.path, **kwargs)
        except OSError as exc:
            # a local file: the path it names, in the words of strerror
            errors.append(f"scp: {_path_of(exc, s.path if dst.remote else dst.path)}: "
                          f"{exc.strerror or exc}")
        except Exception as exc:
            if not _is_sftp_error(exc):
                raise
            # the remote side: the source of a download, the destination of an upload
            errors.append(f"scp: {dst.path if dst.remote else s.path}: {sftp_reason(exc)}")
    return errors


def _path_of(exc: OSError, fallback: str) -> str:
    name = exc.filename
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return str(name) if name else fallback


def _is_sftp_error(exc: Exception) -> bool:
    import asyncssh

    return isinstance(exc, asyncssh.SFTPError)


# SFTP status codes in OpenSSH's words (sftp-common.c fx2txt)
_SFTP_TEXT = {2: "No such file or directory", 3: "Permission denied", 4: "Failure"}


def sftp_reason(exc: Exception) -> str:
    """An SFTP error as OpenSSH's scp words it."""
    code = getattr(exc, "code", None)
    reason = str(getattr(exc, "reason", "") or exc)
    if code in _SFTP_TEXT and code != 4:
        return _SFTP_TEXT[code]
    return reason or _SFTP_TEXT.get(code or 4, "Failure")
