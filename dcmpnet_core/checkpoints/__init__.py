"""Checkpoint files: the format, the mapping from the original release's tensor names, the bundled weights."""
