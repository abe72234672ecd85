"""Session recordings in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/), gzipped.

A recording is a header line ``{"version": 2, "width": W, "height": H, "timestamp": T, "env":
{"TERM": ..., "SHELL": ...}, "title": ...}`` followed by one JSON array per event: ``[t, "o", text]``
(output), ``[t, "i", text]`` (input) and ``[t, "r", "COLSxROWS"]`` (resize), ``t`` being seconds
since the start. The node writes it gzip-compressed (``.cast.gz``) while the session runs; a crash
leaves a gzip stream without its end, which ``read_cast`` reads up to where it stops.

Pure module: no asyncio. The caller owns timing: it passes ``t`` (or lets the writer use its own
monotonic clock) and calls ``flush()`` about once a second when the session is quiet.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import os
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from teleport.errors import BadParameter

log = logging.getLogger(__name__)

FILE_MODE = 0o640
GZIP_MAGIC = b"\x1f\x8b"
# Output chunks closer together than this are stored as one event: a busy session is then about
# 100 events a second, not one per read(). Players cannot show the difference.
MERGE_WINDOW = 0.010
# Never merge past this many characters, so one event stays a reasonable JSON line.
MAX_MERGE_CHARS = 64 * 1024
FLUSH_INTERVAL = 1.0
DEFAULT_ENV = {"TERM": "xterm", "SHELL": "/bin/sh"}

CastEvent = tuple[float, str, str]


class CastWriter:
    """Incremental gzip-compressed asciicast v2 writer.

    ``dest`` is a path (created with mode 0640, truncated) or a binary file object (left open by
    ``close()``). Output and input bytes are decoded as UTF-8 across chunk boundaries; invalid bytes
    become U+FFFD. Chunks of the same kind within ``merge_window`` seconds become one event. Data is
    pushed through to the file (gzip sync flush, plus fsync for real files) whenever ``flush_interval``
    seconds of recording time have passed since the last flush, and on ``flush()``/``close()``.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str] | IO[bytes],
        width: int = 80,
        height: int = 24,
        *,
        timestamp: int | None = None,
        env: Mapping[str, str] | None = None,
        title: str | None = None,
        merge_window: float = MERGE_WINDOW,
        flush_interval: float = FLUSH_INTERVAL,
        compresslevel: int = 6,
        fsync: bool = True,
    ) -> None:
        if width <= 0 or height <= 0:
            raise BadParameter(f"terminal size must be positive, got {width}x{height}")
        if isinstance(dest, str | os.PathLike):
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            self._file: IO[bytes] = os.fdopen(fd, "wb")
            self._owns_file = True
        else:
            self._file = dest
            self._owns_file = False
        self.merge_window = merge_window
        self.flush_interval = flush_interval
        self._fsync = fsync
        # wbits=31: a gzip container, so `gzip -d`/`zcat` read the file too.
        self._z = zlib.compressobj(compresslevel, zlib.DEFLATED, 31)
        self._decoders = {
            "o": codecs.getincrementaldecoder("utf-8")(errors="replace"),
            "i": codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }
        self._pending_kind: str | None = None
        self._pending_t = 0.0
        self._pending: list[str] = []
        self._pending_len = 0
        self._last_t = 0.0
        self._last_flush_t = 0.0
        self._start = time.monotonic()
        self._closed = False
        self.raw_bytes = 0  # output/input bytes given to the writer
        self.compressed_bytes = 0  # gzip bytes handed to the file
        self.events_written = 0
        self.header: dict[str, Any] = {
            "version": 2,
            "width": int(width),
            "height": int(height),
            "timestamp": int(time.time() if timestamp is None else timestamp),
            "env": dict(DEFAULT_ENV if env is None else env),
        }
        if title is not None:
            self.header["title"] = title
        self._emit_line(json.dumps(self.header, ensure_ascii=False))
        self.flush()

    # -- recording -------------------------------------------------------------------------

    def output(self, data: bytes, t: float | None = None) -> None:
        """Record bytes the session printed, ``t`` seconds after the start (writer clock if None)."""
        self._record("o", data, t)

    def input(self, data: bytes, t: float | None = None) -> None:
        """Record bytes a participant typed."""
        self._record("i", data, t)

    def resize(self, cols: int, rows: int, t: float | None = None) -> None:
        """Record a terminal size change to ``cols`` x ``rows``."""
        if cols <= 0 or rows <= 0:
            raise BadParameter(f"terminal size must be positive, got {cols}x{rows}")
        self._check_open()
        t = self._time(t)
        self._emit_pending()
        self._emit_event(t, "r", f"{int(cols)}x{int(rows)}")
        self._maybe_flush(t)

    def elapsed(self) -> float:
        """Seconds since the writer was created, on its own monotonic clock."""
        return time.monotonic() - self._start

    def _time(self, t: float | None) -> float:
        t = self.elapsed() if t is None else float(t)
        # Players need non-decreasing times; a caller's clock jitter must not break that.
        t = max(t, self._last_t)
        self._last_t = t
        return t

    def _record(self, kind: str, data: bytes, t: float | None) -> None:
        self._check_open()
        t = self._time(t)
        self.raw_bytes += len(data)
        text = self._decoders[kind].decode(data)
        if text:
            if (
                self._pending_kind != kind
                or t - self._pending_t >= self.merge_window
                or self._pending_len >= MAX_MERGE_CHARS
            ):
                self._emit_pending()
                self._pending_kind = kind
                self._pending_t = t
            self._pending.append(text)
            self._pending_len += len(text)
        self._maybe_flush(t)

    # -- output ----------------------------------------------------------------------------

    def _emit_pending(self) -> None:
        if self._pending_kind is not None and self._pending:
            self._emit_event(self._pending_t, self._pending_kind, "".join(self._pending))
        self._pending_kind = None
        self._pending = []
        self._pending_len = 0

    def _emit_event(self, t: float, kind: str, data: str) -> None:
        self._emit_line(json.dumps([round(t, 6), kind, data], ensure_ascii=False))
        self.events_written += 1

    def _emit_line(self, line: str) -> None:
        self._put(self._z.compress((line + "\n").encode("utf-8")))

    def _put(self, chunk: bytes) -> None:
        if chunk:
            self._file.write(chunk)
            self.compressed_bytes += len(chunk)

    def _maybe_flush(self, t: float) -> None:
        if t - self._last_flush_t >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Push everything recorded so far to the file, readable even if the process then dies."""
        self._check_open()
        self._emit_pending()
        # Z_SYNC_FLUSH ends the deflate block on a byte boundary without resetting the
        # dictionary: a reader can inflate up to here, and compression barely suffers.
        self._put(self._z.flush(zlib.Z_SYNC_FLUSH))
        self._file.flush()
        self._sync_file()
        self._last_flush_t = self._last_t

    def _sync_file(self) -> None:
        if self._fsync:
            try:
                os.fsync(self._file.fileno())
            except (AttributeError, OSError, io.UnsupportedOperation):
                pass  # not a real file (BytesIO, pipe): nothing to sync

    def close(self) -> None:
        """Write the remaining data and the gzip trailer; close the file if the writer opened it."""
        if self._closed:
            return
        for kind, dec in self._decoders.items():
            # An incomplete UTF-8 sequence at the very end becomes U+FFFD.
            tail = dec.decode(b"", final=True)
            if tail:
                if self._pending_kind != kind:
                    self._emit_pending()
                    self._pending_kind = kind
                    self._pending_t = self._last_t
                self._pending.append(tail)
        self._emit_pending()
        self._put(self._z.flush(zlib.Z_FINISH))
        self._file.flush()
        self._sync_file()
        if self._owns_file:
            self._file.close()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BadParameter("the recording is closed; create a new CastWriter")

    def __enter__(self) -> CastWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading -------------------------------------------------------------------------------


@dataclass
class CastRead:
    """A recording as read: its header and events, and what kept it from being read whole.

    ``problems`` is empty for a complete recording; otherwise each entry says, for a person, what
    is missing or damaged (the events before the damage are still in ``events``)."""

    header: dict[str, Any]
    events: list[CastEvent]
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    """Decompress gzip data (one or more members) as far as it is sound; returns the bytes and,
    when the stream is cut short or damaged, what happened."""
    out: list[bytes] = []
    step = 16 * 1024
    consumed = 0  # compressed bytes of the members fully read
    while data[:2] == GZIP_MAGIC:
        d = zlib.decompressobj(31)
        pos = 0
        while pos < len(data) and not d.eof:
            piece = data[pos : pos + step]
            saved = d.copy()
            try:
                out.append(d.decompress(piece))
            except zlib.error as exc:
                # Replay the slice a byte at a time from before it, to keep all up to the bad spot.
                d = saved
                i = 0
                for i in range(len(piece)):
                    try:
                        out.append(d.decompress(piece[i : i + 1]))
                    except zlib.error:
                        break
                return b"".join(out), (
                    f"the compressed data is damaged at byte {consumed + pos + i} of "
                    f"{consumed + len(data)} ({exc})"
                )
            pos += step
        if not d.eof:
            out.append(d.flush())
            return b"".join(out), (
                f"the compressed data stops after {consumed + len(data)} bytes, before its end "
                "(the file was cut short, or its node stopped during the session)"
            )
        used = min(pos, len(data)) - len(d.unused_data)  # this member's compressed bytes
        data = d.unused_data + data[pos:]
        consumed += used
    if data:
        return b"".join(out), (
            f"{len(data)} bytes after the end of the compressed data are not part of a recording"
        )
    return b"".join(out), None


def gunzip_tolerant(data: bytes) -> bytes:
    """Decompress gzip data (one or more members), returning whatever precedes a truncation or
    corruption instead of failing."""
    out, problem = _gunzip(data)
    if problem is not None and "damaged" in problem:
        log.warning("recording: %s; kept what came before", problem)
    return out


def _load(src: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(src, bytes | bytearray | memoryview):
        return bytes(src)
    with open(src, "rb") as f:
        return f.read()


def load_cast(src: str | os.PathLike[str] | bytes) -> CastRead:
    """Read a recording (gzipped or plain asciicast v2, from a path or bytes), saying whether it
    is complete: a cut or damaged compressed stream, a cut-off last event and lines that are not
    events are reported in ``problems``; the events that could be read are kept.

    Raises BadParameter if there is no asciicast v2 header.
    """
    raw = _load(src)
    problems: list[str] = []
    if raw[:2] == GZIP_MAGIC:
        raw, problem = _gunzip(raw)
        if problem is not None:
            problems.append(problem)
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\n")
    try:
        header = json.loads(lines[0])
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or header.get("version") != 2:
        raise BadParameter(
            "not an asciicast v2 recording: the first line must be a JSON header with \"version\": 2"
        )
    events: list[CastEvent] = []
    skipped = 0
    cut_last = False
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        event = _parse_event(line)
        if event is not None:
            events.append(event)
        else:
            if n == len(lines):
                cut_last = True  # no newline after it: written in part
            else:
                skipped += 1
                log.debug("recording line %d is not an asciicast event; skipped", n)
    if skipped:
        problems.append(f"{skipped} line(s) in the middle are not asciicast events and were skipped")
    if cut_last and not problems:
        problems.append("its last event is cut off")
    return CastRead(header, events, problems)


def read_cast(src: str | os.PathLike[str] | bytes) -> tuple[dict[str, Any], list[CastEvent]]:
    """Read a recording (gzipped or plain asciicast v2, from a path or bytes).

    A truncated file yields the events before the cut; lines that do not parse are skipped (use
    ``load_cast`` to learn whether anything was). Raises BadParameter if there is no asciicast
    v2 header.
    """
    got = load_cast(src)
    return got.header, got.events


def _parse_event(line: str) -> CastEvent | None:
    """One ``[t, kind, data]`` line, or None when it is not one: t a finite number >= 0, kind
    and data strings. (A bare "1ox" string or a 3-key object would also unpack to three items;
    Python's json reads NaN and 1e999; deep nesting raises RecursionError.)"""
    try:
        ev = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(ev, list) or len(ev) != 3:
        return None
    t, kind, data = ev
    if isinstance(t, bool) or not isinstance(t, int | float) or not isinstance(kind, str):
        return None
    # NaN fails every comparison; the bound also keeps float() of a huge int from overflowing
    if not isinstance(data, str) or not 0 <= t <= 2**53:
        return None
    return float(t), kind, data


def format_cast(header: Mapping[str, Any], events: Iterable[CastEvent]) -> str:
    """Uncompressed asciicast v2 text for a header and events."""
    parts = [json.dumps(dict(header), ensure_ascii=False)]
    parts.extend(json.dumps([round(t, 6), k, d], ensure_ascii=False) for t, k, d in events)
    return "\n".join(parts) + "\n"


def to_plain_cast(src: str | os.PathLike[str] | bytes) -> str:
    """A recording as plain asciicast v2 text (what ``tsh play --format=cast`` prints)."""
    header, events = read_cast(src)
    return format_cast(header, events)
