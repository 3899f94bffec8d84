"""The project checkpoint: one file with both networks, the model config and the depth convention.

Layout (a plain dict, loadable with ``torch.load(..., weights_only=True)``)::

    {"format": "dcmpnet_ros.checkpoint", "version": 1,
     "config": {...ModelConfig as plain dict...},
     "depth_kind": "relative_depth" | "relative_disparity",
     "dehaze_net": state_dict, "depth_net": state_dict,
     "meta": {str: str | int | float | bool}}

Writes are atomic (temporary file + rename), so an interrupted save never leaves a broken file.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from ..utils.depth_convention import check_depth_kind
from .upstream import CheckpointError

FORMAT = "dcmpnet_ros.checkpoint"
VERSION = 1


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist")
    if p.is_dir():
        raise CheckpointError(f"checkpoint {str(p)!r} is a directory, not a file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(p)!r} is empty (0 bytes)")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types for bad input; classify them for the user
        msg = str(exc)
        first = next((line.strip() for line in msg.splitlines() if line.strip()), type(exc).__name__)
        if "GLOBAL" in msg or "Unsupported global" in msg:
            what = next((line.strip() for line in msg.splitlines() if "GLOBAL" in line), "")
            raise CheckpointError(
                f"refused to load {str(p)!r}: it contains pickled objects other than tensors and plain "
                f"containers, which could run code when loaded ({what}); only weights-only checkpoints "
                "are accepted"
            ) from None
        if zipfile.is_zipfile(p) or "zip archive" in msg or "central directory" in msg:
            raise CheckpointError(f"{str(p)!r} is truncated or corrupt ({first})") from None
        if isinstance(exc, (pickle.UnpicklingError, KeyError, EOFError, RuntimeError, ValueError, OSError,
                            zipfile.BadZipFile, UnicodeDecodeError)):
            unrecognised = isinstance(exc, KeyError) or "Weights only load failed" in first
            detail = "unrecognised content" if unrecognised else first[:120]
            raise CheckpointError(f"{str(p)!r} is not a PyTorch checkpoint ({detail})") from None
        raise


def build_checkpoint(config: Mapping, dehaze_sd: Mapping[str, torch.Tensor], depth_sd: Mapping[str, torch.Tensor],
                     depth_kind: str, meta: Mapping[str, Any] | None = None, half: bool = False) -> dict:
    """The checkpoint dict of the layout above; ``half`` stores floating tensors as float16."""
    check_depth_kind(depth_kind)

    def store(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in sd.items():
            v = v.detach().cpu()
            out[k] = v.half() if half and v.is_floating_point() else v.clone()
        return out

    clean_meta = {}
    for k, v in (meta or {}).items():
        if not isinstance(v, (str, int, float, bool)) and v is not None:
            v = str(v)
        clean_meta[str(k)] = v
    return {"format": FORMAT, "version": VERSION, "config": dict(config), "depth_kind": depth_kind,
            "dehaze_net": store(dehaze_sd), "depth_net": store(depth_sd), "meta": clean_meta}


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate the top level of a project checkpoint."""
    obj = safe_torch_load(path, map_location)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a DCMPNet checkpoint")
    if obj.get("format") != FORMAT:
        if "dehaze_net" in obj or "depth_net" in obj:
            raise CheckpointError(
                f"{str(path)!r} looks like an original DCMPNet release checkpoint (it has "
                f"{sorted(k for k in ('dehaze_net', 'depth_net') if k in obj)}); convert the pair first: "
                "dcmpnet convert --dehaze DIACMPN-dehaze-X.pth --depth DIACMPN-depth-X.pth -o model.pt"
            )
        keys = sorted(map(str, obj))[:10]
        raise CheckpointError(f"{str(path)!r} is not a DCMPNet checkpoint (top-level keys: {keys})")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint version {obj.get('version')!r}; "
                              f"this dcmpnet_ros reads version {VERSION}")
    for key in ("config", "dehaze_net", "depth_net"):
        if not isinstance(obj.get(key), Mapping):
            raise CheckpointError(f"{str(path)!r} is missing its {key!r} section")
    try:
        check_depth_kind(obj.get("depth_kind"))
    except ValueError as exc:
        raise CheckpointError(f"{str(path)!r}: {exc}") from None
    return dict(obj)


def check_state_fits(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """CheckpointError listing every missing, unexpected and misshaped key of ``sd`` for ``module``.

    Works on a module built on the ``meta`` device, so a checkpoint can be checked before real memory is spent.
    """
    expected = module.state_dict()
    not_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{what}: {len(not_tensors)} entr(y/ies) are not tensors: " + ", ".join(
            map(str, not_tensors[:10])))
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    misshaped = [f"{k}: {tuple(sd[k].shape)} (expected {tuple(expected[k].shape)})"
                 for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    problems = []
    for name, items in (("missing", missing), ("unexpected", unexpected), ("with wrong shape", misshaped)):
        if items:
            problems.append(f"{len(items)} {name}: " + ", ".join(items[:20]) + (" ..." if len(items) > 20 else ""))
    if problems:
        raise CheckpointError(f"{what} weights do not fit the network: " + " | ".join(problems))


def load_state_strict(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict`` that reports every missing, unexpected and misshaped key in one error."""
    check_state_fits(module, sd, what)
    expected = module.state_dict()
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{what} weights contain NaN or Inf in {len(bad)} tensor(s): " + ", ".join(bad[:10]))
    with torch.no_grad():
        for k, v in expected.items():
            v.copy_(sd[k].to(v.dtype))
