"""Depth targets: stored depth files, transmission -> depth, TorchScript and ONNX depth models."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from dcmpnet_core.data.depth_targets import (
    DepthError,
    DepthModel,
    depth_from_transmission,
    load_stored_depth,
    load_transmission,
    relative_from_transmission,
)
from dcmpnet_core.utils.depth_convention import disparity_to_depth, normalize_depth


def test_png_millimetres_and_npy_metres(tmp_path):
    rng = np.random.default_rng(0)
    mm = rng.integers(500, 20000, (12, 16)).astype(np.uint16)
    mm[0, 0] = 0                                     # no measurement
    cv2.imwrite(str(tmp_path / "d.png"), mm)
    d, valid = load_stored_depth(tmp_path / "d.png")
    assert d.dtype == np.float32 and valid.dtype == bool
    assert not valid[0, 0] and valid.sum() == mm.size - 1
    np.testing.assert_allclose(d[valid], mm[valid] / 1000.0, rtol=1e-6)

    m = rng.uniform(1, 50, (12, 16)).astype(np.float32)
    m[1, 2], m[3, 4] = np.nan, -1
    np.save(tmp_path / "d.npy", m)
    d, valid = load_stored_depth(tmp_path / "d.npy")
    assert not valid[1, 2] and not valid[3, 4]
    np.testing.assert_array_equal(d[valid], m[valid])


def test_stored_depth_refuses_8bit_png_and_other_types(tmp_path):
    cv2.imwrite(str(tmp_path / "vis.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DepthError, match="16-bit"):
        load_stored_depth(tmp_path / "vis.png")
    (tmp_path / "d.txt").write_text("1 2 3")
    with pytest.raises(DepthError, match=r"\.txt"):
        load_stored_depth(tmp_path / "d.txt")
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(DepthError, match="shape"):
        load_stored_depth(tmp_path / "bad.npy")


def test_transmission_to_depth_matches_minus_log_over_beta(tmp_path):
    # a transmission map from a real depth-like ramp, stored as ITS does (8-bit grey)
    depth = np.linspace(1.0, 8.0, 40 * 30).reshape(30, 40)
    beta = 0.7
    t8 = np.round(np.exp(-beta * depth) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "t.png"), t8)
    t = load_transmission(tmp_path / "t.png")
    d, valid = depth_from_transmission(t, beta)
    assert valid.all()
    np.testing.assert_allclose(d, -np.log(t8 / 255.0) / beta, rtol=1e-5)
    rel, _ = relative_from_transmission(t, beta)
    expected = -np.log(t8 / 255.0)
    np.testing.assert_allclose(rel, expected / expected.max(), rtol=1e-5)
    # beta only scales depth: relative depth does not depend on it
    np.testing.assert_allclose(relative_from_transmission(t, 3.0)[0], rel, rtol=1e-6)


def test_transmission_edges():
    t = np.array([[0.0, 1.0, 0.5]], np.float32)
    d, valid = depth_from_transmission(t)
    assert valid.tolist() == [[False, True, True]]
    assert 0 < d[0, 1] < d[0, 2]                   # t = 1 means "nearer than one step", not zero depth
    with pytest.raises(DepthError, match="beta"):
        depth_from_transmission(t, beta=-1.0)


def _photo(h=64, w=96):
    return cv2.resize(skimage.data.coffee(), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


class _Disparity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 + x.mean(dim=1, keepdim=True)


def test_torchscript_depth_model_disparity_and_depth(tmp_path):
    path = tmp_path / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)      # TorchScript is deprecated upstream but still loads
        torch.jit.script(_Disparity()).save(str(path))
    rgb = _photo()
    expected = 1.0 + rgb.mean(axis=2)
    m = DepthModel(path, output="disparity")
    np.testing.assert_allclose(m.raw(rgb), expected, rtol=1e-5)
    rel, valid = m(rgb)
    assert valid.all()
    np.testing.assert_allclose(rel, disparity_to_depth(expected), rtol=1e-5)
    rel_d, _ = DepthModel(path, output="depth")(rgb)
    np.testing.assert_allclose(rel_d, normalize_depth(expected), rtol=1e-5)
    # a size that is not a multiple of 32 is resized in and out
    out = m.raw(_photo(50, 70))
    assert out.shape == (50, 70) and np.isfinite(out).all()


def test_onnx_depth_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, None, None])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1),
                               helper.make_node("Add", ["m", "one"], ["y"])], "tiny", [x], [y], [axes, one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "tiny.onnx"))
    rgb = _photo()
    rel, valid = DepthModel(tmp_path / "tiny.onnx", output="disparity")(rgb)
    np.testing.assert_allclose(rel, disparity_to_depth(1.0 + rgb.mean(axis=2)), rtol=1e-5)


def test_torch_export_depth_model(tmp_path):
    prog = torch.export.export(_Disparity(), (torch.rand(1, 3, 64, 96),))
    torch.export.save(prog, str(tmp_path / "tiny.pt2"))
    rgb = _photo()
    rel, _ = DepthModel(tmp_path / "tiny.pt2", output="depth")(rgb)
    np.testing.assert_allclose(rel, normalize_depth(1.0 + rgb.mean(axis=2)), rtol=1e-5)


def test_depth_model_errors(tmp_path):
    with pytest.raises(DepthError, match="does not exist"):
        DepthModel(tmp_path / "none.pt")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(DepthError, match=r"\.bin"):
        DepthModel(tmp_path / "m.bin")
    (tmp_path / "m.pt").write_bytes(b"not torchscript")
    with pytest.raises(DepthError, match="TorchScript"):
        DepthModel(tmp_path / "m.pt")
    with pytest.raises(DepthError, match="depth_model_output"):
        DepthModel(tmp_path / "m.pt", output="inverse")
