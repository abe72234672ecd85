"""Give memory back to the system after a connection flood (glibc only; a no-op elsewhere).

Every TLS connection costs a 256 KiB read buffer in asyncio's SSL protocol. glibc serves blocks
that size from mmap at first, but raises its mmap threshold after the first one is freed, so the
buffers of a flood then come from the heap, and a fragmented heap is never returned: the process
stays at its peak. Fixing the threshold keeps those buffers mmapped (returned on free), and a
periodic malloc_trim returns what the heap can spare.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

from teleport import defaults

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - only glibc (and compatible) have these
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds (see the module doc); True when applied."""
    if _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, defaults.MALLOC_MMAP_THRESHOLD))
    ok = bool(_LIBC.mallopt(_M_TRIM_THRESHOLD, defaults.MALLOC_TRIM_THRESHOLD)) and ok
    if not ok:
        log.debug("mallopt refused the thresholds; memory may stay at its peak after floods")
    return ok


def trim() -> None:
    """Return free heap memory to the system (cheap when there is none)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


_closed = 0  # connections closed since the last reclaim


def note_closed() -> None:
    """A listener closed a connection (its memory may be reclaimable)."""
    global _closed
    _closed += 1


def reclaim() -> int:
    """After connections closed: collect reference cycles (a failed TLS handshake leaves its
    256 KiB buffer in a cycle that only the cyclic collector frees, and an idle process runs
    it rarely), then trim the heap. Returns how many closed connections prompted it."""
    global _closed
    closed, _closed = _closed, 0
    if closed:
        gc.collect()
        trim()
    return closed
