"""A one-slot "newest frame wins" hand-over between ROS callbacks and an inference worker thread.

Callbacks must never block (a blocked executor stalls every other subscription), and a slow network must work on
the latest frame rather than a backlog, so the slot keeps at most one item: a new ``put`` replaces an item the
worker has not taken yet and hands the stale one back to be counted as dropped.
"""
from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    """Thread-safe single-item slot; ``put`` never blocks, ``get`` waits for the newest item.

    Counters: ``put_count`` items offered, ``dropped`` items replaced before a ``get`` took them (plus any left in
    the slot at ``close``), ``taken`` items handed to a consumer.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0
        self.taken = 0

    def put(self, item: T) -> T | None:
        """Offer ``item``; return the unconsumed item it replaced (the caller counts it as dropped), else None.

        After :meth:`close` the item is not stored and is returned itself, so the caller can still count it.
        ``None`` is refused: :meth:`get` uses it to mean "nothing".
        """
        if item is None:
            raise ValueError("item: expected a frame, got None (get() returns None for timeout/close)")
        with self._cond:
            self.put_count += 1
            if self._closed:
                self.dropped += 1
                return item
            stale = self._item if self._has_item else None
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item = item, True
            self._cond.notify()
            return stale

    def get(self, timeout: float | None = None) -> T | None:
        """Take the newest item, waiting up to ``timeout`` seconds (None: until one arrives or the slot closes).

        Returns None on timeout or once closed.
        """
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout: expected None or >= 0 seconds, got {timeout}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._has_item and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            item, self._item, self._has_item = self._item, None, False
            self.taken += 1
            return item

    def close(self) -> None:
        """Wake every waiting consumer; later ``get`` calls return None and ``put`` stores nothing."""
        with self._cond:
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item, self._closed = None, False, True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> bool:
        """True while an item waits in the slot."""
        with self._cond:
            return self._has_item
