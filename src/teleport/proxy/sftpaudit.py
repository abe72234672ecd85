"""What a recording proxy logs about an SFTP session it relays: which files were read or written.

A teleport node learns this from its sftp-server's log (`close "PATH" bytes read R written W`,
node/sessions.py); a recording proxy in front of an OpenSSH node has no such log, so it reads
the SFTP packets it relays (draft-ietf-secsh-filexfer-02, what OpenSSH speaks) and produces the
same (action, path, bytes) triples when a file handle is closed: an `upload` for bytes written,
a `download` for bytes read. Pure: fed with the two byte streams, no I/O.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

log = logging.getLogger("teleport.proxy.sftpaudit")

# SFTP packet types (filexfer-02)
FXP_OPEN = 3
FXP_CLOSE = 4
FXP_READ = 5
FXP_WRITE = 6
FXP_STATUS = 101
FXP_HANDLE = 102
FXP_DATA = 103

# Larger than any packet OpenSSH's sftp and sftp-server send (256 KiB); a stream claiming more
# is not SFTP as we know it, and auditing stops rather than buffering without bound.
MAX_PACKET = 1 << 20
MAX_OPEN_FILES = 4096  # handles tracked at once (sftp-server allows 512 by default)


@dataclass
class _File:
    """An open file: the path the client opened it by and the bytes moved so far."""

    path: str
    read: int = 0
    written: int = 0


class _Reader:
    """Fields of one packet body, in order."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def u32(self) -> int:
        (v,) = struct.unpack_from(">I", self.body, self.pos)
        self.pos += 4
        return int(v)

    def string(self) -> bytes:
        n = self.u32()
        if self.pos + n > len(self.body):
            raise struct.error("string past the end of the packet")
        v = self.body[self.pos:self.pos + n]
        self.pos += n
        return v


class SftpAudit:
    """Follows one SFTP session; `client()` and `server()` take the relayed bytes and return
    the (action, path, bytes) of the files closed by that data."""

    def __init__(self) -> None:
        self._buf = {True: bytearray(), False: bytearray()}  # by "from the client"
        self._opens: dict[int, str] = {}  # request id -> path asked to open
        self._reads: dict[int, bytes] = {}  # request id -> handle read from
        self._files: dict[bytes, _File] = {}  # handle -> open file
        self.broken = False

    def client(self, data: bytes) -> list[tuple[str, str, int]]:
        """Bytes the client sent (requests)."""
        return self._feed(True, data)

    def server(self, data: bytes) -> list[tuple[str, str, int]]:
        """Bytes the server sent (responses)."""
        return self._feed(False, data)

    def close(self) -> list[tuple[str, str, int]]:
        """The session ended: files never closed count as closed now (sftp-server does so)."""
        out: list[tuple[str, str, int]] = []
        for handle in list(self._files):
            out += self._closed(handle)
        return out

    def _feed(self, from_client: bool, data: bytes) -> list[tuple[str, str, int]]:
        if self.broken:
            return []
        buf = self._buf[from_client]
        buf += data
        out: list[tuple[str, str, int]] = []
        while len(buf) >= 4:
            (n,) = struct.unpack_from(">I", buf, 0)
            if n < 1 or n > MAX_PACKET:
                log.warning("not auditing this SFTP session further: a packet of %d bytes", n)
                self.broken = True
                buf.clear()
                return out
            if len(buf) < 4 + n:
                break
            body = bytes(buf[4:4 + n])
            del buf[:4 + n]
            try:
                out += self._packet(from_client, body[0], _Reader(body[1:]))
            except struct.error:
                continue  # a packet we cannot read says nothing about files
        return out

    def _packet(self, from_client: bool, kind: int, r: _Reader) -> list[tuple[str, str, int]]:
        if from_client:
            if kind == FXP_OPEN:
                rid = r.u32()
                if len(self._opens) < MAX_OPEN_FILES:
                    self._opens[rid] = r.string().decode("utf-8", "replace")
            elif kind == FXP_READ:
                rid = r.u32()
                handle = r.string()
                if handle in self._files and len(self._reads) < MAX_OPEN_FILES:
                    self._reads[rid] = handle
            elif kind == FXP_WRITE:
                r.u32()
                handle = r.string()
                r.pos += 8  # offset
                f = self._files.get(handle)
                if f is not None:
                    f.written += r.u32()
            elif kind == FXP_CLOSE:
                r.u32()
                return self._closed(r.string())
            return []
        if kind == FXP_HANDLE:
            rid = r.u32()
            path = self._opens.pop(rid, None)
            if path is not None:
                self._files[r.string()] = _File(path)
        elif kind == FXP_DATA:
            rid = r.u32()
            handle = self._reads.pop(rid, b"")
            f = self._files.get(handle) if handle else None
            if f is not None:
                f.read += r.u32()
        elif kind == FXP_STATUS:
            rid = r.u32()
            self._opens.pop(rid, None)
            self._reads.pop(rid, None)
        return []

    def _closed(self, handle: bytes) -> list[tuple[str, str, int]]:
        f = self._files.pop(handle, None)
        if f is None:
            return []
        out = []
        if f.written:
            out.append(("upload", f.path, f.written))
        if f.read:
            out.append(("download", f.path, f.read))
        return out
