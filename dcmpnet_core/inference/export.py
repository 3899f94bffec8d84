"""ONNX export of the whole DCMPNet: one graph with the dehazing network and the DE network.

The exported graph:

* input ``hazy``: (B,3,H,W) float32 RGB in [-1, 1] (``2 * image01 - 1``);
* output ``dehazed``: (B,3,H,W) float32, **unclamped** ([-1, 1] nominal; clamp, then ``(x + 1) / 2``);
* output ``depth``: (B,1,H,W) float32, the DE network's raw output on ``dehazed`` (reflect-padded
  to a multiple of 16 inside the graph and cropped back, exactly as :class:`~dcmpnet_core.inference.engine.Dehazer`
  runs it); its meaning is in the model metadata ``depth_kind`` and turns into the project's
  relative depth with :func:`dcmpnet_core.inference.engine.raw_to_relative_depth`.

Exporters and opsets: opset 18 (default) uses the dynamo-based exporter (``torch.export``), which
also supports ``dynamic=True`` (any batch size and any H, W >= :data:`DYNAMIC_MIN_SIDE`).  Opsets
below 18 (e.g. 17 for TensorRT 8.6 on JetPack 5) use the TorchScript exporter and a fixed input
size.  TensorRT 10 reads opset 18; build an engine with e.g.
``trtexec --onnx=model.onnx --fp16`` (fixed size) or with ``--minShapes/--optShapes/--maxShapes``
for a dynamic model.  Weights are exported in float32; reduced precision is the runtime's choice.

For an fp16 TensorRT engine, the nodes that the PyTorch fp16 path keeps in float32 (RescaleNorm's
statistics, whose ``(x - mean)^2`` overflows fp16, the instance norms and the depth head) are
listed in the metadata ``fp32_nodes``; :func:`trtexec_fp16_command` turns them into
``--layerPrecisions`` / ``--layerOutputTypes`` with ``--precisionConstraints=obey`` (TensorRT
names layers after the ONNX nodes).  Not run against TensorRT here: no GPU was available.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..utils.fileio import atomic_path

DEFAULT_OPSET = 18
# Sample size for dynamic export: sides that need padding at every padding step, so that the
# traced graph takes the general padding path (sizes that need no padding then also work).
_DYNAMIC_SAMPLE = (2, 37, 51)
# Smallest side a dynamic graph accepts: below it PyTorch pads in several reflection steps,
# which the exported general path does not contain (found by sweeping H, W in the tests).
DYNAMIC_MIN_SIDE = 25


class ExportReport(NamedTuple):
    """Where the model went and how well onnxruntime reproduces PyTorch (None if not checked)."""

    path: Path
    opset: int
    exporter: str
    input_shape: tuple
    max_abs_diff_dehazed: float | None
    max_abs_diff_depth: float | None


class _Whole(nn.Module):
    """Hazy (B,3,H,W) in [-1, 1] -> (dehazed unclamped (B,3,H,W), raw depth (B,1,H,W))."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, hazy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dehazed = self.model.dehaze_net(hazy).dehazed
        return dehazed, self.model.depth_net.predict(dehazed)


def export_onnx(model: nn.Module, path: str | os.PathLike, height: int = 480, width: int = 640,
                dynamic: bool = False, opset: int = DEFAULT_OPSET, verify: bool = True) -> ExportReport:
    """Export ``model`` (a :class:`~dcmpnet_core.models.dcmpnet.DCMPNet`) to one ONNX file, written atomically.

    ``height`` x ``width``: the fixed input size (ignored with ``dynamic=True``, which needs
    ``opset >= 18``).  ``verify``: run the file with onnxruntime (if installed) on a random input
    and report the largest absolute differences to PyTorch.
    """
    if opset < 13:
        raise ValueError(f"opset must be >= 13, got {opset}")
    if dynamic and opset < DEFAULT_OPSET:
        raise ValueError(f"dynamic shapes need the dynamo exporter, i.e. opset >= {DEFAULT_OPSET}, got opset {opset}")
    if not dynamic and (height < 16 or width < 16):
        raise ValueError(f"export size must be at least 16x16, got {height}x{width}")
    # optional: onnx (the [onnx] extra) only when exporting
    import onnx

    model = copy.deepcopy(model).float().eval().cpu()         # the caller's model stays where it is
    whole = _Whole(model).eval()
    shape = (_DYNAMIC_SAMPLE[0], 3, *_DYNAMIC_SAMPLE[1:]) if dynamic else (1, 3, height, width)
    generator = torch.Generator().manual_seed(0)
    sample = torch.rand(shape, generator=generator) * 2 - 1
    exporter = "dynamo" if opset >= DEFAULT_OPSET else "torchscript"
    out = Path(path)
    with atomic_path(out, keep_suffix=True) as tmp_file:      # an interrupted export leaves no partial file
        kwargs: dict = {"input_names": ["hazy"], "output_names": ["dehazed", "depth"], "opset_version": opset}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # exporter chatter (constant folding, deprecations)
            if exporter == "dynamo":
                if dynamic:
                    auto = torch.export.Dim.AUTO
                    kwargs["dynamic_shapes"] = {"hazy": {0: auto, 2: auto, 3: auto}}
                torch.onnx.export(whole, (sample,), str(tmp_file), dynamo=True, external_data=False,
                                  verbose=False, **kwargs)
            else:
                torch.onnx.export(whole, (sample,), str(tmp_file), dynamo=False, **kwargs)
        proto = onnx.load(str(tmp_file))
        got_opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        if got_opset != opset:
            raise RuntimeError(f"the {exporter} exporter produced opset {got_opset}, not the requested {opset}")
        meta = {
            "producer": "dcmpnet_ros",
            "depth_kind": getattr(model, "depth_kind", "relative_depth"),
            "input": "hazy (B,3,H,W) float32 RGB in [-1, 1]",
            "outputs": "dehazed (B,3,H,W) unclamped; depth (B,1,H,W) raw DE output on dehazed",
            "model_config": json.dumps(model.config.to_dict()) if hasattr(model, "config") else "",
            "min_side": str(DYNAMIC_MIN_SIDE if dynamic else min(height, width)),
        }
        meta["fp32_nodes"] = ",".join(fp32_node_names(proto))
        for k, v in meta.items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp_file))

    diffs: tuple[float | None, float | None] = (None, None)
    if verify:
        diffs = _compare(whole, out, sample)
    return ExportReport(out, opset, exporter, tuple(shape) if not dynamic else ("B", 3, "H", "W"), *diffs)


def fp32_node_names(proto) -> list[str]:
    """ONNX nodes to keep in float32 in a half-precision engine: RescaleNorm, instance norms, the depth head.

    Found by module scope: the dynamo exporter records it in each node's metadata
    (``pkg.torch.onnx.name_scopes``), the TorchScript exporter in the node name (``/a/b/Op``).
    """
    names = []
    for node in proto.graph.node:
        meta = {m.key: m.value for m in node.metadata_props}
        scope = meta.get("pkg.torch.onnx.name_scopes", "") + meta.get("pkg.torch.onnx.class_hierarchy", "")
        scope += node.name.replace("/", ".")
        if (node.op_type == "InstanceNormalization" or "RescaleNorm" in scope or ".norm." in scope
                or "depth_net.head" in scope):
            names.append(node.name)
    return names


def trtexec_fp16_command(onnx_path: str | os.PathLike) -> str:
    """A ``trtexec`` command line for an fp16 engine that keeps :func:`fp32_node_names` in float32."""
    # optional: onnx (the [onnx] extra) only when checking an export
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    nodes = next((p.value for p in proto.metadata_props if p.key == "fp32_nodes"), "")
    base = f"trtexec --onnx={os.fspath(onnx_path)} --fp16 --saveEngine={Path(onnx_path).with_suffix('.engine')}"
    if not nodes:
        return base
    spec = ",".join(f"{name}:fp32" for name in nodes.split(","))
    return f"{base} --precisionConstraints=obey --layerPrecisions={spec} --layerOutputTypes={spec}"


def _compare(whole: nn.Module, path: Path, sample: torch.Tensor) -> tuple[float | None, float | None]:
    try:
        # optional: onnxruntime (the [onnx] extra) only when checking an export
        import onnxruntime as ort
    except ImportError:
        return None, None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"hazy": sample.numpy()})
    with torch.inference_mode():
        ref = whole(sample)
    return tuple(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref))  # type: ignore[return-value]
