"""The thread type of the replay pipeline's reader and writer."""
from __future__ import annotations

import threading
from typing import Callable


class Stage(threading.Thread):
    """A pipeline thread that records its exception and its busy time; ``stop`` asks it to finish early."""

    def __init__(self, name: str, target: Callable[[], None] | None = None) -> None:
        super().__init__(name=name, target=target, daemon=True)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.busy_s = 0.0
