"""Building a :class:`~dcmpnet_core.models.dcmpnet.DCMPNet` from files, and writing one to a file.

The network module knows nothing about files; this is where a model meets its checkpoint (timm's
``build_model_with_cfg`` / ``load_checkpoint`` split):

* :func:`load_model`: a project checkpoint -> :class:`LoadedModel` (the model in eval mode and the
  checkpoint's ``meta``);
* :func:`save_model` / :func:`checkpoint_of`: the model (+ ``meta``) -> a project checkpoint;
* :func:`convert_upstream`: the original release's two weight files -> the model;
* :func:`load_networks`: the one strict load of both networks' state dicts, used by all of the above
  and by the trainer (``init_from``, ``--resume``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..models.config import ConfigError, ModelConfig, model_config_from
from ..models.dcmpnet import DCMPNet
from ..utils.depth_convention import RELATIVE_DISPARITY
from ..utils.fileio import atomic_torch_save
from .format import build_checkpoint, check_state_fits, load_state_strict, read_checkpoint, safe_torch_load
from .upstream import convert_dehaze_state_dict, convert_depth_state_dict

StateDictOrPath = Mapping[str, Any] | str | os.PathLike


@dataclass(frozen=True)
class LoadedModel:
    """What :func:`load_model` returns: the model (eval mode) and the checkpoint's ``meta`` entries."""

    model: DCMPNet
    meta: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def refine(self) -> str:
        """The output refinement the checkpoint asks for (``meta['refine']``): ``"guided"`` or ``"none"``."""
        return "guided" if self.meta.get("refine") == "guided" else "none"


def load_networks(model: DCMPNet, dehaze_sd: Mapping[str, torch.Tensor], depth_sd: Mapping[str, torch.Tensor],
                  where: str = "") -> None:
    """Strictly load both networks' state dicts into ``model``, in place.

    Every missing, unexpected, misshaped or non-finite tensor is reported in one
    :class:`~dcmpnet_core.checkpoints.upstream.CheckpointError`, prefixed with ``where`` (the file).
    """
    prefix = f"{where}: " if where else ""
    load_state_strict(model.dehaze_net, dehaze_sd, f"{prefix}dehazing-network")
    load_state_strict(model.depth_net, depth_sd, f"{prefix}DE-network")


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Load a project checkpoint (``torch.load(weights_only=True)``); the model is in eval mode.

    The tensors are checked against a network built on the ``meta`` device first, so a checkpoint
    that does not fit fails before real memory is spent.
    """
    where = repr(os.fspath(path))
    ckpt = read_checkpoint(path, map_location)
    try:
        config = model_config_from(ckpt["config"])  # sizes outside config.LIMITS fail here, before any layer
    except ConfigError as exc:
        raise ConfigError(f"{where}: invalid model config: {exc}") from None
    with torch.device("meta"):                       # shapes only: no memory until the tensors fit
        skeleton = DCMPNet(config, depth_kind=ckpt["depth_kind"])
    check_state_fits(skeleton.dehaze_net, ckpt["dehaze_net"], f"{where}: dehazing-network")
    check_state_fits(skeleton.depth_net, ckpt["depth_net"], f"{where}: DE-network")
    model = DCMPNet(config, depth_kind=ckpt["depth_kind"])
    load_networks(model, ckpt["dehaze_net"], ckpt["depth_net"], where)
    return LoadedModel(model.eval(), dict(ckpt.get("meta") or {}), Path(path))


def checkpoint_of(model: DCMPNet, meta: Mapping[str, Any] | None = None, half: bool = False) -> dict:
    """The project checkpoint of ``model`` as a plain dict (see :mod:`dcmpnet_core.checkpoints.format`)."""
    return build_checkpoint(model.config.to_dict(), model.dehaze_net.state_dict(), model.depth_net.state_dict(),
                            model.depth_kind, meta, half)


def save_model(model: DCMPNet, path: str | os.PathLike, meta: Mapping[str, Any] | None = None,
               half: bool = False) -> Path:
    """Write ``model``'s project checkpoint atomically; ``half`` stores floating tensors as float16."""
    return atomic_torch_save(checkpoint_of(model, meta, half), path)


def convert_upstream(dehaze_state_dict: StateDictOrPath, depth_state_dict: StateDictOrPath,
                     config: str | Mapping[str, Any] | ModelConfig = "paper",
                     depth_kind: str = RELATIVE_DISPARITY) -> DCMPNet:
    """Build the model from the original release's weights (state dicts, whole checkpoints or their paths).

    The tensors ``conv11``, ``conv22``, ``conv_fu``, ``ccc`` and ``fuse_conv1`` take no part in the
    published output and are dropped; any other mismatch raises one
    :class:`~dcmpnet_core.checkpoints.upstream.CheckpointError` listing every missing, unexpected and
    misshaped tensor.  Returns the model in eval mode.
    """
    model = DCMPNet(config, depth_kind=depth_kind)
    dehaze, depth = (safe_torch_load(sd) if isinstance(sd, (str, os.PathLike)) else sd
                     for sd in (dehaze_state_dict, depth_state_dict))
    load_networks(model, convert_dehaze_state_dict(dehaze, model.dehaze_net),
                  convert_depth_state_dict(depth, model.depth_net))
    return model.eval()
