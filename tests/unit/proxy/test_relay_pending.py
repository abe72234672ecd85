"""The relay buffers a bounded amount while the node is being dialled, then applies flow control."""

from __future__ import annotations

from typing import Any

from teleport import defaults
from teleport.proxy.sshconn import ProxySession


class FakeChan:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False


class FakeTransport:
    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def write(self, data: bytes) -> None:
        self.data += data

    def write_eof(self) -> None:
        self.eof = True


def session() -> tuple[ProxySession, FakeChan]:
    s = ProxySession(None, None, None)  # type: ignore[arg-type]
    chan = FakeChan()
    s.chan = chan  # type: ignore[assignment]
    return s, chan


def test_pending_data_pauses_the_channel_at_the_bound_and_resumes_after_connect() -> None:
    s, chan = session()
    chunk = b"x" * 32 * 1024
    sent = 0
    while not chan.paused:
        s.data_received(chunk, None)
        sent += len(chunk)
        assert sent <= defaults.RELAY_PENDING_LIMIT + len(chunk)
    assert s.pending_size == sent and chan.pauses == 1
    # a peer ignoring the window can still push a little more; it is kept, not lost
    s.data_received(b"tail", None)
    s.eof_received()
    t = FakeTransport()
    s.flush_pending(t)  # type: ignore[arg-type]
    assert bytes(t.data) == chunk * (sent // len(chunk)) + b"tail" and t.eof
    assert not chan.paused and s.pending == [] and s.pending_size == 0


def test_small_greeting_never_pauses() -> None:
    s, chan = session()
    s.data_received(b"SSH-2.0-OpenSSH_9.2\r\n", None)
    assert not chan.paused
    t: Any = FakeTransport()
    s.flush_pending(t)
    assert bytes(t.data).startswith(b"SSH-2.0-")
