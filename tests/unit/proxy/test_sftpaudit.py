"""The recording proxy's reading of relayed SFTP packets (proxy/sftpaudit.py)."""

from __future__ import annotations

import struct

from teleport.proxy.sftpaudit import MAX_PACKET, SftpAudit


def pkt(kind: int, *fields: bytes | int) -> bytes:
    body = bytes([kind])
    for f in fields:
        body += struct.pack(">I", f) if isinstance(f, int) else struct.pack(">I", len(f)) + f
    return struct.pack(">I", len(body)) + body


def write(rid: int, handle: bytes, data: bytes) -> bytes:
    body = bytes([6]) + struct.pack(">I", rid) + struct.pack(">I", len(handle)) + handle
    body += struct.pack(">Q", 0) + struct.pack(">I", len(data)) + data
    return struct.pack(">I", len(body)) + body


def read(rid: int, handle: bytes, n: int) -> bytes:
    body = bytes([5]) + struct.pack(">I", rid) + struct.pack(">I", len(handle)) + handle
    body += struct.pack(">Q", 0) + struct.pack(">I", n)
    return struct.pack(">I", len(body)) + body


def test_upload_and_download_reported_at_close_even_when_split() -> None:
    a = SftpAudit()
    a.server(pkt(102, 1, b"h1"))  # a handle for a request not yet seen: ignored
    out = a.client(pkt(3, 1, b"/tmp/up", 0x1a, 0))
    out += a.server(pkt(102, 1, b"h1"))
    stream = write(2, b"h1", b"x" * 1000) + write(3, b"h1", b"y" * 24)
    for i in range(0, len(stream), 7):  # the stream arrives in arbitrary pieces
        out += a.client(stream[i:i + 7])
    assert out == []
    assert a.client(pkt(4, 4, b"h1")) == [("upload", "/tmp/up", 1024)]
    # a download, and a failed open that leaves nothing behind
    a.client(pkt(3, 5, b"/etc/hostname", 1, 0) + pkt(3, 6, b"/nope", 1, 0))
    a.server(pkt(102, 5, b"h2") + pkt(101, 6, 2, b"no such file", b""))
    a.client(read(7, b"h2", 32768) + read(8, b"h2", 32768))
    a.server(pkt(103, 7, b"z" * 10) + pkt(101, 8, 1, b"eof", b""))
    assert a.close() == [("download", "/etc/hostname", 10)]


def test_oversized_packet_stops_auditing() -> None:
    a = SftpAudit()
    assert a.client(struct.pack(">I", MAX_PACKET + 1) + b"\x03") == []
    assert a.broken
    assert a.client(pkt(3, 1, b"/x", 0, 0)) == []
