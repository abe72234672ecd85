"""asciicast v2 writer/reader: round trip, UTF-8 split across chunks, batching, truncated gzip."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
from pathlib import Path

import pytest

from teleport.errors import BadParameter
from teleport.recording.asciicast import (
    CastWriter,
    format_cast,
    gunzip_tolerant,
    read_cast,
    to_plain_cast,
)


def test_round_trip_path(tmp_path: Path) -> None:
    path = tmp_path / "s.cast.gz"
    with CastWriter(str(path), 80, 24, timestamp=1500000000, title="alice@node",
                    env={"TERM": "xterm-256color", "SHELL": "/bin/bash"}) as w:
        w.output(b"$ ls\r\n", 0.1)
        w.resize(120, 40, 0.5)
        w.input(b"ls\r", 0.6)
        w.output(b"a  b  c\r\n", 1.25)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    # A real gzip file: the stdlib reads it whole, CRC and all.
    plain = gzip.decompress(path.read_bytes()).decode()
    first = json.loads(plain.splitlines()[0])
    assert first == {"version": 2, "width": 80, "height": 24, "timestamp": 1500000000,
                     "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"},
                     "title": "alice@node"}
    header, events = read_cast(str(path))
    assert header == first
    assert events == [(0.1, "o", "$ ls\r\n"), (0.5, "r", "120x40"), (0.6, "i", "ls\r"),
                      (1.25, "o", "a  b  c\r\n")]
    assert to_plain_cast(str(path)) == plain


def test_utf8_split_across_chunks() -> None:
    buf = io.BytesIO()
    text = "héllo ✓ 😀 done"
    data = text.encode()
    w = CastWriter(buf, merge_window=0)  # no merging: every chunk is its own event
    for i, b in enumerate(data):  # worst case: one byte per read
        w.output(bytes([b]), i * 0.02)
    w.close()
    _, events = read_cast(buf.getvalue())
    assert "".join(d for _, _, d in events) == text
    # No event ever carries half a character.
    assert all("\ufffd" not in d for _, _, d in events)


def test_invalid_bytes_become_replacement_char() -> None:
    buf = io.BytesIO()
    with CastWriter(buf) as w:
        w.output(b"ok \xff\xfe bad", 0.0)
        w.output(b" tail \xe2\x9c", 0.5)  # incomplete sequence at the very end
    _, events = read_cast(buf.getvalue())
    assert "".join(d for _, _, d in events) == "ok \ufffd\ufffd bad tail \ufffd"


def test_small_writes_are_batched() -> None:
    buf = io.BytesIO()
    w = CastWriter(buf)
    for i in range(1000):  # 1000 one-byte writes, 1 ms apart: one second of typing-speed output
        w.output(b"x", i * 0.001)
    w.close()
    _, events = read_cast(buf.getvalue())
    assert "".join(d for _, _, d in events) == "x" * 1000
    assert 90 <= len(events) <= 110  # ~one event per 10 ms, not one per byte
    times = [t for t, _, _ in events]
    assert times == sorted(times) and times[0] == 0.0


def test_resize_and_kind_change_end_a_batch() -> None:
    buf = io.BytesIO()
    with CastWriter(buf) as w:
        w.output(b"a", 0.000)
        w.output(b"b", 0.001)
        w.resize(100, 30, 0.002)
        w.output(b"c", 0.003)
        w.input(b"d", 0.004)
        w.output(b"e", 0.005)
    _, events = read_cast(buf.getvalue())
    assert events == [(0.0, "o", "ab"), (0.002, "r", "100x30"), (0.003, "o", "c"),
                      (0.004, "i", "d"), (0.005, "o", "e")]


def test_times_never_go_backwards() -> None:
    buf = io.BytesIO()
    with CastWriter(buf, merge_window=0) as w:
        w.output(b"a", 1.0)
        w.output(b"b", 0.5)  # a caller clock hiccup
    _, events = read_cast(buf.getvalue())
    assert [t for t, _, _ in events] == [1.0, 1.0]


def test_truncated_gzip_keeps_everything_flushed(tmp_path: Path) -> None:
    path = tmp_path / "crash.cast.gz"
    w = CastWriter(str(path), flush_interval=1.0)
    header_end = path.stat().st_size  # the header is flushed at once
    for i in range(300):  # 3 s of output; automatic flushes happen about every second
        w.output(f"line {i}\r\n".encode(), i * 0.01)
    # Simulate a crash: no close(), so no trailer and the last partial second is still buffered.
    on_disk = path.read_bytes()
    with pytest.raises(EOFError):
        gzip.decompress(on_disk)
    header, events = read_cast(on_disk)
    assert header["version"] == 2
    got = "".join(d for _, _, d in events)
    assert got == "".join(f"line {i}\r\n" for i in range(len(got.splitlines())))
    # The crash lost at most the last second (100 lines) of output.
    assert len(got.splitlines()) >= 300 - 100 - 1
    # Any further cut anywhere in the stream still reads (a prefix of the events).
    for cut in range(header_end, len(on_disk), max(1, len(on_disk) // 50)):
        _, part = read_cast(on_disk[:cut])
        assert part == events[: len(part)]
    w.close()


def test_explicit_flush_makes_quiet_tail_readable() -> None:
    buf = io.BytesIO()
    w = CastWriter(buf)
    w.output(b"prompt$ ", 0.0)
    assert read_cast(buf.getvalue())[1] == []  # still buffered
    w.flush()
    assert read_cast(buf.getvalue())[1] == [(0.0, "o", "prompt$ ")]
    w.close()


def test_reader_accepts_plain_and_multi_member(tmp_path: Path) -> None:
    header = {"version": 2, "width": 10, "height": 5}
    evs = [(0.5, "o", "hi"), (1.0, "o", "there")]
    text = format_cast(header, evs)
    assert read_cast(text.encode()) == (header, evs)
    # Two gzip members (e.g. a writer that resumed appending) read as one stream.
    lines = text.encode().split(b"\n", 2)
    two = gzip.compress(lines[0] + b"\n" + lines[1] + b"\n") + gzip.compress(lines[2])
    assert gunzip_tolerant(two) == text.encode()
    p = tmp_path / "x.cast"
    p.write_text(text)
    assert read_cast(p) == (header, evs)


def test_reader_rejects_non_cast() -> None:
    with pytest.raises(BadParameter, match="asciicast v2"):
        read_cast(b'{"version": 1, "width": 80}\n')
    with pytest.raises(BadParameter, match="asciicast v2"):
        read_cast(gzip.compress(b"hello\n"))


def test_writer_rejects_bad_sizes_and_use_after_close() -> None:
    with pytest.raises(BadParameter, match="positive"):
        CastWriter(io.BytesIO(), 0, 24)
    w = CastWriter(io.BytesIO())
    with pytest.raises(BadParameter, match="positive"):
        w.resize(0, 10, 1.0)
    w.close()
    w.close()  # idempotent
    with pytest.raises(BadParameter, match="closed"):
        w.output(b"x", 2.0)


def test_file_object_left_open(tmp_path: Path) -> None:
    p = tmp_path / "f.cast.gz"
    with open(p, "wb") as f:
        with CastWriter(f) as w:
            w.output(b"x", 0.0)
        assert not f.closed
    assert os.path.getsize(p) > 0
    assert read_cast(p)[1] == [(0.0, "o", "x")]


def test_bad_trailer_keeps_all_events() -> None:
    buf = io.BytesIO()
    with CastWriter(buf) as w:
        for i in range(50):
            w.output(f"row {i}\r\n".encode(), i * 0.1)
    good = read_cast(buf.getvalue())[1]
    damaged = bytearray(buf.getvalue())
    damaged[-6] ^= 0xFF  # inside the CRC32 of the gzip trailer
    with pytest.raises(OSError):
        gzip.decompress(bytes(damaged))
    assert read_cast(bytes(damaged))[1] == good


# -- completeness: a recording cut short or damaged says so --------------------------------------

def _closed_recording(n: int = 400) -> bytes:
    buf = io.BytesIO()
    with CastWriter(buf, flush_interval=0.5) as w:
        for i in range(n):
            w.output(f"line {i} {'x' * (i % 37)}\r\n".encode(), i * 0.01)
    return buf.getvalue()


def test_complete_recording_has_no_problems() -> None:
    from teleport.recording.asciicast import load_cast

    data = _closed_recording()
    got = load_cast(data)
    assert got.complete and got.problems == []
    assert (got.header, got.events) == read_cast(data)
    plain = format_cast(got.header, got.events).encode()
    assert load_cast(plain).complete
    # two gzip members (a writer that resumed) are one complete recording
    lines = plain.split(b"\n", 2)
    assert load_cast(gzip.compress(lines[0] + b"\n" + lines[1] + b"\n") + gzip.compress(lines[2])).complete


def test_cut_in_the_middle_is_incomplete_and_keeps_a_prefix() -> None:
    from teleport.recording.asciicast import load_cast

    data = _closed_recording()
    whole = load_cast(data).events
    for cut in (len(data) // 2, len(data) // 3, len(data) - 9, len(data) - 1):
        got = load_cast(data[:cut])
        assert not got.complete, cut
        assert "stops after" in got.problems[0] and "before its end" in got.problems[0]
        assert got.events == whole[: len(got.events)]
        assert len(got.events) < len(whole) or cut >= len(data) - 9


def test_damage_and_trailing_garbage_are_reported() -> None:
    from teleport.recording.asciicast import load_cast

    data = bytearray(_closed_recording())
    bad = bytes(data[:-6]) + bytes([data[-6] ^ 0xFF]) + bytes(data[-5:])  # CRC of the trailer
    got = load_cast(bad)
    assert not got.complete and "damaged" in got.problems[0]
    assert got.events == load_cast(bytes(data)).events  # every event came before the damage
    assert "not part of a recording" in load_cast(bytes(data) + b"junk!").problems[0]


def test_plain_text_cut_last_line_and_bad_middle_lines() -> None:
    from teleport.recording.asciicast import load_cast

    text = format_cast({"version": 2, "width": 80, "height": 24},
                       [(0.1, "o", "a"), (0.2, "o", "b"), (0.3, "o", "c")])
    cut = load_cast(text.encode()[:-8])
    assert not cut.complete and cut.problems == ["its last event is cut off"]
    assert [d for _, _, d in cut.events] == ["a", "b"]
    lines = text.split("\n")
    lines.insert(2, "garbage")
    mangled = load_cast("\n".join(lines).encode())
    assert not mangled.complete and "1 line(s)" in mangled.problems[0]
    assert [d for _, _, d in mangled.events] == ["a", "b", "c"]
