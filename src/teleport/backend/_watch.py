"""An in-process watcher fed by a backend: a bounded queue of events plus a close signal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from teleport.backend.base import Event, Watcher
from teleport.errors import ConnectionProblem

# A consumer this far behind is dropped rather than letting memory grow without bound.
DEFAULT_QUEUE_SIZE = 16384


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with prefix (None: no bound).

    Code-point order equals UTF-8 byte order, which is how SQLite (BINARY) and etcd sort keys.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1])
        if code < 0x10FFFF:
            code += 1
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be encoded; skip past them
                code = 0xE000
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def matches(key: str, prefixes: Sequence[str]) -> bool:
    """True when key starts with any of the prefixes."""
    return any(key.startswith(p) for p in prefixes)


class QueueWatcher(Watcher):
    """Events pushed by the backend; iteration ends on close and raises if the watcher failed."""

    def __init__(
        self,
        prefixes: Sequence[str],
        on_close: Callable[[QueueWatcher], None] | None = None,
        maxsize: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.prefixes = list(prefixes)
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self._on_close = on_close
        self._closed = False
        self._error: Exception | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, event: Event) -> None:
        """Deliver an event; a watcher whose queue is full is failed and closed."""
        if self._closed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.fail(
                ConnectionProblem(
                    f"watcher on {self.prefixes} fell more than {self._queue.maxsize} events "
                    "behind and was closed; create a new watcher and re-read the state"
                )
            )

    def fail(self, error: Exception) -> None:
        """Close the watcher so that the consumer's iteration raises error."""
        if self._closed:
            return
        self._error = error
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None
        # Drop pending events when full so the sentinel always fits and wakes the consumer.
        while self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def close(self) -> None:
        """Stop the watcher; a pending or later iteration ends cleanly."""
        if not self._closed:
            self._shutdown()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self._queue.get()
            if event is None:
                self._queue.put_nowait(None)  # keep later iterations terminating too
                if self._error is not None:
                    raise self._error
                return
            yield event
