"""Atomic file output: a job that is interrupted leaves the previous file (or nothing), never half a file.

Files are written to a temporary name in the destination's folder and renamed over the
destination (``os.replace``, atomic on POSIX); whole folders (datasets, bags, demo output) are
built under a temporary name and swapped in with :func:`atomic_dir` / :func:`replace_dir`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on any error it is removed.

    The result gets the permissions a plain ``open(path, "w")`` would give (mkstemp's are owner-only).
    ``keep_suffix``: the temporary name ends in ``path``'s extension too, for writers that choose the format by
    it (OpenCV's VideoWriter).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + (p.suffix if keep_suffix else ""), dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    # torch only for checkpoints: the torch-free data generator and CLI import this module
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_png(path: str | os.PathLike, rgb: Any) -> Path:
    """Write an (H,W,3) uint8 RGB image as PNG, atomically."""
    # OpenCV only for PNGs: the torch-free helpers and the CLI import this module
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    return atomic_write_bytes(path, buf.tobytes())


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; on success it replaces ``out`` (:func:`replace_dir`).

    On any error the temporary folder is removed and ``out`` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield built
        replace_dir(built, out)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise


def replace_dir(built: str | os.PathLike, out: str | os.PathLike) -> None:
    """Move the finished folder ``built`` to ``out``; an existing ``out`` is replaced only once ``built`` is in place.

    If the final rename fails, the previous ``out`` is restored.
    """
    built, out = Path(built), Path(out)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
    try:
        built.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
