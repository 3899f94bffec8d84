"""ONNX export: onnxruntime reproduces PyTorch (and so the engine) on real photos, fixed and dynamic sizes."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from dcmpnet_core.checkpoints.builder import save_model  # noqa: E402
from dcmpnet_core.inference.engine import Dehazer, raw_to_relative_depth  # noqa: E402
from dcmpnet_core.inference.export import DYNAMIC_MIN_SIDE, export_onnx, trtexec_fp16_command  # noqa: E402
from dcmpnet_core.models.dcmpnet import DCMPNet  # noqa: E402


def tiny_model() -> DCMPNet:
    torch.manual_seed(0)
    model = DCMPNet("tiny", depth_kind="relative_disparity")
    with torch.no_grad():
        model.depth_net.head.bias += 1.0
    return model.eval()


def photo_batch(hw, names=("astronaut",)) -> np.ndarray:
    """(B,3,H,W) float32 in [-1, 1] from real photos."""
    imgs = [cv2.resize(getattr(skimage.data, n)(), (hw[1], hw[0]), interpolation=cv2.INTER_AREA) for n in names]
    return (np.stack(imgs).transpose(0, 3, 1, 2).astype(np.float32) / 255 * 2 - 1).copy()


def torch_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = tiny_model()
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    return out.dehazed.numpy(), out.depth.numpy()


def run_onnx(path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"hazy": x})


def test_fixed_size_export_matches_pytorch_and_engine(tmp_path):
    path = tmp_path / "tiny.onnx"
    report = export_onnx(tiny_model(), path, 48, 64)
    assert report.path == path and report.opset == 18 and report.exporter == "dynamo"
    assert report.max_abs_diff_dehazed < 1e-4 and report.max_abs_diff_depth < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]          # no temporary files left

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["depth_kind"] == "relative_disparity" and meta["producer"] == "dcmpnet_ros"
    assert [i.name for i in proto.graph.input] == ["hazy"]
    assert [o.name for o in proto.graph.output] == ["dehazed", "depth"]
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 48, 64]
    _check_fp32_nodes(proto, path)

    x = photo_batch((48, 64), ("coffee",))
    dehazed, depth = run_onnx(path, x)
    ref_dehazed, ref_depth = torch_reference(x)
    np.testing.assert_allclose(dehazed, ref_dehazed, atol=1e-4, rtol=0)
    np.testing.assert_allclose(depth, ref_depth, atol=1e-4, rtol=0)

    # Post-processed as documented, the ONNX outputs give what the engine returns.
    image = ((x[0].transpose(1, 2, 0) + 1) / 2).astype(np.float32)
    res = Dehazer(tiny_model(), device="cpu", bypass_below=0.0)(image)   # the network on every frame
    np.testing.assert_allclose((np.clip(dehazed[0], -1, 1).transpose(1, 2, 0) + 1) / 2, res.dehazed, atol=1e-4)
    np.testing.assert_allclose(raw_to_relative_depth(depth[0, 0], "relative_disparity"), res.depth, atol=1e-3)


@pytest.mark.slow
def test_dynamic_export_runs_other_sizes_and_batches(tmp_path):
    path = tmp_path / "dyn.onnx"
    report = export_onnx(tiny_model(), path, dynamic=True)
    assert report.max_abs_diff_dehazed < 1e-4 and report.max_abs_diff_depth < 1e-4
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))
    for hw, names in [((48, 64), ("astronaut", "coffee")), ((45, 61), ("chelsea",)),
                      ((DYNAMIC_MIN_SIDE, 40), ("rocket",)), ((80, 96), ("astronaut",))]:
        x = photo_batch(hw, names)
        dehazed, depth = run_onnx(path, x)
        ref_dehazed, ref_depth = torch_reference(x)
        assert dehazed.shape == (len(names), 3, *hw) and depth.shape == (len(names), 1, *hw)
        np.testing.assert_allclose(dehazed, ref_dehazed, atol=1e-4, rtol=0, err_msg=str(hw))
        np.testing.assert_allclose(depth, ref_depth, atol=1e-4, rtol=0, err_msg=str(hw))
    with pytest.raises(Exception, match="Pad"):        # the documented lower limit is real
        run_onnx(path, photo_batch((DYNAMIC_MIN_SIDE - 1, 64)))


def _check_fp32_nodes(proto, path) -> None:
    """The nodes an fp16 TensorRT engine must keep in fp32: every instance norm, RescaleNorm's pow, the depth head."""
    fp32 = set({p.key: p.value for p in proto.metadata_props}["fp32_nodes"].split(","))
    by_op: dict[str, int] = {}
    for node in proto.graph.node:
        if node.name in fp32:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + 1
    norms = sum(1 for n in proto.graph.node if n.op_type == "InstanceNormalization")
    rescale_norms = sum(1 for m in tiny_model().modules() if type(m).__name__ == "RescaleNorm")
    assert by_op.get("InstanceNormalization", 0) == norms == 2
    assert by_op.get("Pow", 0) == rescale_norms > 0 and by_op.get("Sqrt", 0) == rescale_norms
    assert by_op.get("Conv", 0) == 2 * rescale_norms + 1          # scale/shift projections + the depth head
    command = trtexec_fp16_command(path)
    assert command.startswith(f"trtexec --onnx={path} --fp16 ") and "--precisionConstraints=obey" in command
    assert command.count(":fp32") == 2 * len(fp32)


def _dcmpnet(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dcmpnet_ros.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, **(env or {})))


def test_cli_export_opset17_for_tensorrt8(tmp_path):
    weights = tmp_path / "tiny.pt"
    save_model(tiny_model(), weights)
    out = tmp_path / "model.onnx"
    res = _dcmpnet("export", "--weights", weights, "--format", "onnx", "-o", out, "--size", "40x56", "--opset", "17")
    assert res.returncode == 0, res.stderr
    assert "opset 17, torchscript exporter, input hazy 1x3x40x56" in res.stdout
    assert re.search(r"max \|diff\| dehazed \d\.\d+e-\d+, depth \d\.\d+e-\d+", res.stdout)
    proto = onnx.load(str(out))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 17
    _check_fp32_nodes(proto, out)
    x = photo_batch((40, 56), ("chelsea",))
    dehazed, depth = run_onnx(out, x)
    ref_dehazed, ref_depth = torch_reference(x)
    np.testing.assert_allclose(dehazed, ref_dehazed, atol=1e-4, rtol=0)
    np.testing.assert_allclose(depth, ref_depth, atol=1e-4, rtol=0)

    again = _dcmpnet("export", "--weights", weights, "-o", out, "--size", "40x56", "--opset", "17")
    assert again.returncode == 2 and "exists; pass --overwrite to replace it" in again.stderr
    dyn17 = _dcmpnet("export", "--weights", weights, "-o", tmp_path / "d.onnx", "--dynamic", "--opset", "17")
    assert dyn17.returncode == 2 and "dynamic shapes need the dynamo exporter, i.e. opset >= 18" in dyn17.stderr


def test_cli_export_errors(tmp_path):
    res = _dcmpnet("export", "-o", tmp_path / "m.onnx", env={"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "none.pt")})
    assert res.returncode == 2 and "no DCMPNet weights given" in res.stderr and "--backend dcp" not in res.stderr
    res = _dcmpnet("export", "--weights", tmp_path / "x.pt", "-o", tmp_path / "m.onnx", "--size", "480by640")
    assert res.returncode == 2 and "expected HxW, e.g. 480x640, got '480by640'" in res.stderr
    res = _dcmpnet("export", "--weights", tmp_path / "x.pt", "-o", tmp_path / "m.pt")
    assert res.returncode == 2 and "output must end in .onnx, got 'm.pt'" in res.stderr
    with pytest.raises(ValueError, match="export size must be at least 16x16, got 8x64"):
        export_onnx(tiny_model(), tmp_path / "m.onnx", 8, 64)
