"""The one place that knows the original release's parameter names.

The original DCMPNet code saves ``{'dehaze_net': state_dict, ...}`` and
``{'depth_net': state_dict, ...}`` (possibly with DataParallel's ``module.`` prefix).  The
functions here rename those tensors to this project's modules, drop the ones that take no part
in the output, and check the result against a freshly built network so that missing,
unexpected or misshaped tensors are reported together in one error.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import torch

from ..models.layers import log_relative_coords


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message says which file or tensors and why."""


# Upstream tensors of the dehazing network that never influence its output.
DEAD_UPSTREAM_PREFIXES = ("conv11.", "conv22.", "conv_fu.", "ccc.", "fuse_conv1.")

_DOUBLE_CONV = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2"}


def _drdb(rest: str) -> str:
    m = re.fullmatch(r"Dcov([1-9])\.(.+)", rest)
    if m:
        return f"convs.{int(m[1]) - 1}.{m[2]}"
    if rest.startswith("conv."):
        return "fuse." + rest[len("conv."):]
    raise KeyError(rest)


def _depth_key(key: str) -> str:
    m = re.fullmatch(r"DRDB_layer([1-8])\.(.+)", key)
    if m:
        n = int(m[1])
        where = f"enc_blocks.{n - 1}" if n <= 5 else f"dec_blocks.{n - 6}"
        return f"{where}.{_drdb(m[2])}"
    for pattern, ours in ((r"conv([1-4])\.(.+)", "downs"), (r"up([1-4])\.(.+)", "ups")):
        m = re.fullmatch(pattern, key)
        if m:
            return f"{ours}.{int(m[1]) - 1}.{m[2]}"
    if key.startswith("final_conv."):
        return "head." + key[len("final_conv."):]
    raise KeyError(key)


def _double_conv(index: str, leaf: str) -> str:
    return f"{_DOUBLE_CONV[index]}.{leaf}"


def _block_key(rest: str) -> str:
    """Inside a transformer block (``legmN.blocks.i.<rest>``)."""
    table = (
        (r"norm1\.(weight|bias)", r"norm.\1"),
        (r"norm1\.meta1\.(.+)", r"norm.scale_proj.\1"),
        (r"norm1\.meta2\.(.+)", r"norm.shift_proj.\1"),
        (r"attn\.V\.(.+)", r"mixer.value.\1"),
        (r"attn\.conv\.(.+)", r"mixer.local.\1"),
        (r"attn\.proj\.(.+)", r"mixer.proj.\1"),
        (r"attn\.QK\.(.+)", r"mixer.qk.\1"),
        (r"attn\.attn\.meta\.([02])\.(.+)", r"mixer.attn.bias_mlp.\1.\2"),
        (r"mlp\.mlp\.0\.(.+)", r"fc1.\1"),
        (r"mlp\.mlp\.2\.(.+)", r"fc2.\1"),
    )
    for pattern, repl in table:
        if re.fullmatch(pattern, rest):
            return re.sub(pattern, repl, rest)
    raise KeyError(rest)


def _dehaze_key(key: str) -> str:
    m = re.fullmatch(r"Unet1\.inc\.conv\.(\d)\.(.+)", key)
    if m:
        return f"guide.stem.{_double_conv(m[1], m[2])}"
    m = re.fullmatch(r"Unet1\.down([1-4])\.mpconv\.1\.conv\.(\d)\.(.+)", key)
    if m:
        return f"guide.downs.{int(m[1]) - 1}.{_double_conv(m[2], m[3])}"
    m = re.fullmatch(r"Unet1\.up([1-4])\.conv\.conv\.(\d)\.(.+)", key)
    if m:
        return f"guide.ups.{int(m[1]) - 1}.{_double_conv(m[2], m[3])}"
    m = re.fullmatch(r"legm([1-5])\.blocks\.(\d+)\.(.+)", key)
    if m:
        return f"stages.{int(m[1]) - 1}.blocks.{m[2]}.{_block_key(m[3])}"
    m = re.fullmatch(r"dpn\.(.+)", key)
    if m:
        return "prior_net." + _depth_key(m[1])
    m = re.fullmatch(r"drdb\.(.+)", key)
    if m:
        return "prior_refine." + _drdb(m[1])
    simple = (
        (r"Unet1\.outc\.(.+)", r"guide.head.\1"),
        (r"d1_conv\.(.+)", r"guide_proj_coarse.\1"),
        (r"d2_conv\.(.+)", r"guide_proj_mid.\1"),
        (r"d3_conv\.(.+)", r"guide_proj_fine.\1"),
        (r"patch_embed\.proj\.(.+)", r"embed.\1"),
        (r"patch_unembed\.proj\.0\.(.+)", r"head.\1"),
        (r"ca\.0\.(.+)", r"msaam.score1.\1"),
        (r"ca\.2\.(.+)", r"msaam.score2.\1"),
        (r"fuse_conv2\.0\.(.+)", r"msaam.to_half.\1"),
        (r"fuse_conv3\.0\.(.+)", r"msaam.to_quarter.\1"),
    )
    for pattern, repl in simple:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    indexed = (
        (r"conv([1-5])\.(.+)", "stage_in"),
        (r"patch_merge([12])\.proj\.(.+)", "downs"),
        (r"patch_split([12])\.proj\.0\.(.+)", "ups", "conv"),
        (r"skip([12])\.(.+)", "skips"),
        (r"conv_d([12])\.(.+)", "dec_in"),
    )
    for pattern, ours, *inner in indexed:
        m = re.fullmatch(pattern, key)
        if m:
            mid = f".{inner[0]}" if inner else ""
            return f"{ours}.{int(m[1]) - 1}{mid}.{m[2]}"
    m = re.fullmatch(r"mfm([12])\.mlp\.([02])\.weight", key)
    if m:
        return f"fusions.{int(m[1]) - 1}.{'fc1' if m[2] == '0' else 'fc2'}.weight"
    raise KeyError(key)


def unwrap_state_dict(obj: Mapping, net_key: str) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or a whole upstream checkpoint; strip ``module.`` prefixes."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a state dict (a mapping of tensors), got {type(obj).__name__}")
    if net_key in obj and isinstance(obj[net_key], Mapping):
        obj = obj[net_key]
    sd = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise CheckpointError(f"state dict key {k!r} is not a string")
        if not isinstance(v, torch.Tensor):
            other = sorted(k for k, v in obj.items() if isinstance(v, Mapping))
            hint = f"; it holds the sub-dicts {other} (expected '{net_key}')" if other else ""
            raise CheckpointError(f"entry {k!r} is a {type(v).__name__}, not a tensor{hint}")
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    return sd


def _convert(sd: Mapping[str, torch.Tensor], rename: Callable[[str], str], model: torch.nn.Module,
             what: str, dropped: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    expected = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    unexpected, misshaped, bad_buffers = [], [], []
    for key, value in sd.items():
        if key.startswith(dropped):
            continue                      # knowingly unused by the published forward pass
        if key.endswith("relative_positions"):
            # A fixed buffer we rebuild ourselves; refuse weights made with another convention.
            ref = log_relative_coords(int(round(value.shape[0] ** 0.5))) if value.dim() == 3 else None
            if ref is None or ref.shape != value.shape or not torch.allclose(ref, value.float(), atol=1e-5):
                bad_buffers.append(key)
            continue
        try:
            ours = rename(key)
        except KeyError:
            unexpected.append(key)
            continue
        if ours not in expected:
            unexpected.append(key)
            continue
        if tuple(value.shape) != tuple(expected[ours].shape):
            misshaped.append(f"{key}: {tuple(value.shape)} (expected {tuple(expected[ours].shape)})")
            continue
        out[ours] = value
    missing = [k for k in expected if k not in out]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (our names): " + ", ".join(missing[:20])
                        + (" ..." if len(missing) > 20 else ""))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: " + ", ".join(unexpected[:20])
                        + (" ..." if len(unexpected) > 20 else ""))
    if misshaped:
        problems.append(f"{len(misshaped)} with wrong shape: " + "; ".join(misshaped[:20])
                        + (" ..." if len(misshaped) > 20 else ""))
    if bad_buffers:
        problems.append("relative-position buffers that differ from the published window layout: "
                        + ", ".join(bad_buffers[:5]))
    if problems:
        raise CheckpointError(f"{what} weights do not fit the network: " + " | ".join(problems))
    return out


def convert_dehaze_state_dict(sd: Mapping, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Upstream ``dehaze_net`` state dict (or whole checkpoint) -> state dict of ``DehazeNet``."""
    return _convert(unwrap_state_dict(sd, "dehaze_net"), _dehaze_key, model, "dehazing-network",
                    DEAD_UPSTREAM_PREFIXES)


def convert_depth_state_dict(sd: Mapping, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Upstream ``depth_net`` state dict (or whole checkpoint) -> state dict of ``DepthNet``."""
    return _convert(unwrap_state_dict(sd, "depth_net"), _depth_key, model, "DE-network")
