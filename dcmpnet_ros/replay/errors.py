"""The two ways a replay fails: it cannot start (:class:`BagError`), or writing its output failed."""
from __future__ import annotations


class BagError(ValueError):
    """A replay that cannot start: bad paths, an existing output, unknown topics; the message says what to do."""


class BagWriteError(RuntimeError):
    """Writing the output failed (disk full, read-only, removed folder); the partial output has been removed."""
