"""``dcmpnet convert`` end to end, in a real subprocess, on upstream-format checkpoint files."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from upstream_rule import upstream_state_dict

from dcmpnet_core.checkpoints.builder import load_model


def _dcmpnet(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dcmpnet_ros.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_convert_end_to_end(tmp_path, data_dir):
    dehaze = tmp_path / "DIACMPN-dehaze-Indoor.pth"
    depth = tmp_path / "DIACMPN-depth-Indoor.pth"
    # As the original training script saves them, optimizer state and DataParallel prefix included.
    torch.save({"dehaze_net": {"module." + k: v for k, v in upstream_state_dict("dehaze", 2).items()},
                "dehaze_optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
                "epoch_dehaze": 5, "dehaze_net_best_psnr": 38.2}, dehaze)
    torch.save({"depth_net": upstream_state_dict("depth", 2), "epoch_depth": 5,
                "depth_optimizer": {"state": {}, "param_groups": []}}, depth)
    out = tmp_path / "model.pt"
    res = _dcmpnet("convert", "--dehaze", dehaze, "--depth", depth, "-o", out)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and out.exists()

    model = load_model(out).model
    assert model.depth_kind == "relative_disparity"
    ref = np.load(data_dir / "reference_seed2.npz")
    with torch.inference_mode():
        got = model.dehaze_net(torch.from_numpy(ref["hazy"])).dehazed.numpy()
    np.testing.assert_allclose(got, ref["dehazed"], atol=1e-4, rtol=0)

    again = _dcmpnet("convert", "--dehaze", dehaze, "--depth", depth, "-o", out)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_convert_reports_bad_input_without_traceback(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not weights")
    res = _dcmpnet("convert", "--dehaze", bad, "--depth", bad, "-o", tmp_path / "m.pt")
    assert res.returncode == 2
    assert "not a PyTorch checkpoint" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m.pt").exists()
    res = _dcmpnet("convert", "--dehaze", tmp_path / "missing.pth", "--depth", bad, "-o", tmp_path / "m.pt")
    assert res.returncode == 2 and "does not exist" in res.stderr
