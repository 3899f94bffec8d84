"""Where inference and training run: device names checked against the machine, and out-of-memory detection."""
from __future__ import annotations

import re

import torch

from .options import DEVICE


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda if available else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` checked to exist."""
    spec = str(device) if isinstance(device, torch.device) else device
    s = DEVICE.validate(spec.strip().lower() if isinstance(spec, str) else spec)
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "cuda" or re.fullmatch(r"cuda:\d+", s):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {spec!r} was requested but CUDA is not available (torch.cuda.is_available() is False; "
                f"torch {torch.__version__}, built for CUDA {torch.version.cuda}); use device='cpu' or 'auto'"
            )
        count = torch.cuda.device_count()
        index = int(s.split(":")[1]) if ":" in s else torch.cuda.current_device()
        if index >= count:
            raise RuntimeError(f"device {spec!r} was requested but only {count} CUDA device(s) exist "
                               f"(cuda:0 .. cuda:{count - 1})")
        return torch.device("cuda", index)
    raise AssertionError(f"unreachable: {s!r} passed the device check")


# Messages of allocation failures that torch raises as plain RuntimeErrors (cuBLAS / cuDNN workspaces,
# CUDA driver errors, CPU allocator).
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED",
                 "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE", "cudaErrorMemoryAllocation", "CUDA_ERROR_OUT_OF_MEMORY")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA out-of-memory errors (also cuBLAS/cuDNN allocation failures) and failed CPU allocations.

    Follows the exception's cause/context chain: an allocation failing inside a CUDA graph capture
    surfaces as the capture's own error raised while handling the out-of-memory error.
    """
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                                  getattr(torch.cuda, "OutOfMemoryError", None)) if t is not None)
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError) or (oom_types and isinstance(exc, oom_types)):
            return True
        if isinstance(exc, RuntimeError) and any(key in str(exc) for key in _OOM_MESSAGES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
