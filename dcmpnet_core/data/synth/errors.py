"""The generator's one error type (the CLI prints its message as one line)."""
from __future__ import annotations


class SynthError(ValueError):
    """Bad generator arguments or an output folder that cannot be written."""
