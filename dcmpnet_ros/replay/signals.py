"""SIGINT / SIGTERM stop a running replay cleanly, between frames."""
from __future__ import annotations

import contextlib
import signal
from typing import Iterator, Protocol


class Interruptible(Protocol):
    """What :func:`stop_on_signals` needs of a replay (:class:`dcmpnet_ros.replay.BagReplay`)."""

    @property
    def interrupt_requested(self) -> bool: ...

    def interrupt(self) -> None: ...


@contextlib.contextmanager
def stop_on_signals(replay: Interruptible) -> Iterator[None]:
    """Make SIGINT (Ctrl-C) and SIGTERM (``kill``) stop ``replay`` cleanly while in this block.

    A signal calls ``replay.interrupt()``: the replay stops before its next frame and removes its temporary
    output. A second signal interrupts at once. Outside the main thread (where Python allows no signal handlers)
    this does nothing.
    """
    def handler(signum: int, frame: object) -> None:
        if replay.interrupt_requested:
            raise KeyboardInterrupt
        replay.interrupt()

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:          # not the main thread
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
