"""Deterministic upstream-format DCMPNet weights, rebuilt from the documented rule.

The reference vectors in ``test/data/reference_seed*.npz`` were computed by the original
implementation with weights produced by this rule (see the project's shared reference README);
``upstream_keys.tsv`` lists the upstream tensor names, dtypes and shapes.  For every tensor a
generator seeded with ``(seed, crc32(name))`` first draws a standard-normal array of the tensor's
shape, which is then scaled according to the tensor's role.
"""
from __future__ import annotations

import csv
import zlib
from pathlib import Path

import numpy as np
import torch

LAYOUT = Path(__file__).resolve().parents[1] / "data" / "upstream_keys.tsv"


def upstream_layout(network: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, dtype, shape) of every tensor of ``"dehaze"`` or ``"depth"``, in upstream order."""
    with open(LAYOUT, newline="") as f:
        rows = [(key, dtype, tuple(int(s) for s in shape.split(",") if s))
                for net, key, dtype, shape in csv.reader(f, delimiter="\t") if net == network]
    if not rows:
        raise ValueError(f"no tensors listed for network {network!r}")
    return rows


def _window_coords(n_tokens: int) -> np.ndarray:
    ws = int(round(n_tokens ** 0.5))
    grid = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
    diff = (grid[:, :, None] - grid[:, None, :]).transpose(1, 2, 0).astype(np.float32)
    return np.sign(diff) * np.log1p(np.abs(diff))


def rule_tensor(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    gen = np.random.default_rng([seed, zlib.crc32(name.encode())])
    parent, leaf = name.rsplit(".", 1)
    owner = parent.rsplit(".", 1)[-1]
    z = gen.standard_normal(shape)                  # always drawn first
    if leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    if leaf == "relative_positions":
        return _window_coords(shape[0])
    if leaf == "running_mean":
        value = 0.1 * z
    elif leaf == "running_var":
        value = 1.0 + 0.5 * gen.random(shape)
    elif owner in ("meta1", "meta2"):
        value = (1.0 if owner == "meta1" and leaf == "bias" else 0.0) + 0.02 * z
    elif leaf == "weight" and (len(shape) == 1 or owner.startswith("norm")):
        value = 1.0 + 0.1 * z                       # BatchNorm and RLN gains
    elif leaf == "bias":
        value = 0.02 * z
    else:
        fan_in = max(int(np.prod(shape[1:])) if len(shape) > 1 else 1, 1)
        in_residual = ".blocks." in name and owner != "QK" and ".attn.attn." not in name
        value = (0.25 if in_residual else 1.0) * z / np.sqrt(fan_in)
    return value.astype(np.float32)


def upstream_state_dict(network: str, seed: int) -> dict[str, torch.Tensor]:
    """A complete upstream-format state dict of ``"dehaze"`` or ``"depth"`` for ``seed``."""
    return {name: torch.from_numpy(rule_tensor(name, shape, seed)) for name, _, shape in upstream_layout(network)}
