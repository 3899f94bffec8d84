"""Shapes, batching, gradients and upstream-weight mapping of the network."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from upstream_rule import upstream_state_dict

from dcmpnet_core import VARIANTS, DCMPNet, DehazeNet, DehazeNetConfig, DepthNet
from dcmpnet_core.checkpoints.builder import convert_upstream
from dcmpnet_core.checkpoints.upstream import CheckpointError
from dcmpnet_core.models.depth_net import predict_aligned


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return DCMPNet("tiny").eval()


@pytest.mark.parametrize("hw", [(16, 16), (17, 23), (20, 20), (24, 31), (33, 18), (50, 70)])
def test_any_size_at_least_16(tiny, hw):
    x = torch.rand(1, 3, *hw) * 2 - 1
    with torch.inference_mode():
        out = tiny(x)
    assert out.dehazed.shape == (1, 3, *hw)
    assert out.depth.shape == (1, 1, *hw)
    assert torch.isfinite(out.dehazed).all() and torch.isfinite(out.depth).all()
    hp, wp = -(-hw[0] // 4) * 4, -(-hw[1] // 4) * 4
    e = tiny.config.dehaze.embed_dims
    assert [tuple(g.shape[1:]) for g in out.guidance] == [
        (e[2], hp // 4, wp // 4), (e[1], hp // 2, wp // 2), (e[0], hp, wp)]


def test_paper_config_handles_smallest_and_odd_sizes():
    """Sizes where the original code's reflect padding fails (16-24 px) still work here."""
    model = DCMPNet("paper").eval()
    with torch.inference_mode():
        for hw in [(16, 16), (21, 19)]:
            assert model(torch.zeros(1, 3, *hw)).dehazed.shape == (1, 3, *hw)


def test_depth_net_output_size_rounds_up_to_16():
    net = DepthNet(VARIANTS["tiny"].depth).eval()
    with torch.inference_mode():
        assert net(torch.zeros(1, 3, 50, 70)).shape == (1, 1, 64, 80)
        assert net.predict(torch.zeros(1, 3, 50, 70)).shape == (1, 1, 50, 70)


def test_batch_equals_frame_by_frame(tiny):
    x = torch.rand(3, 3, 36, 44) * 2 - 1
    with torch.inference_mode():
        batch = tiny(x)
        single = [tiny(x[i:i + 1]) for i in range(3)]
    torch.testing.assert_close(batch.dehazed, torch.cat([s.dehazed for s in single]), atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.depth, torch.cat([s.depth for s in single]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["tiny", "paper"])
def test_every_parameter_gets_a_gradient(variant):
    torch.manual_seed(0)
    model = DCMPNet(variant).train()
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    out = model(x)
    loss = out.dehazed.abs().mean() + out.depth.abs().mean() + sum(g.abs().mean() for g in out.guidance)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero[:10]}"


def test_dead_upstream_branch_is_not_built():
    names = [n for n, _ in DehazeNet(DehazeNetConfig()).named_modules()]
    assert not any("fuse_conv1" in n or "ccc" in n or "conv_fu" in n for n in names)


def _upstream_pair(seed=1):
    return upstream_state_dict("dehaze", seed), upstream_state_dict("depth", seed)


def test_convert_upstream_accepts_whole_checkpoints_and_module_prefix():
    dehaze, depth = _upstream_pair()
    plain = convert_upstream(dehaze, depth)
    wrapped = convert_upstream(
        {"dehaze_net": {"module." + k: v for k, v in dehaze.items()}, "epoch_dehaze": 3,
         "dehaze_optimizer": {"state": {}, "param_groups": []}, "dehaze_net_best_psnr": 30.0},
        {"depth_net": depth, "epoch_depth": 3},
    )
    assert not wrapped.training
    for (k, a), (_, b) in zip(plain.state_dict().items(), wrapped.state_dict().items()):
        assert torch.equal(a, b), k
    assert plain.depth_kind == "relative_disparity"


def test_convert_upstream_reports_all_problems_at_once():
    dehaze, depth = _upstream_pair()
    del dehaze["legm2.blocks.3.attn.V.weight"]
    dehaze["legm1.blocks.0.mlp.mlp.0.weight"] = torch.zeros(5, 24, 1, 1)
    dehaze["brand_new.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        convert_upstream(dehaze, depth)
    msg = str(err.value)
    assert "stages.1.blocks.3.mixer.value.weight" in msg           # missing, in our names
    assert "brand_new.weight" in msg                               # unexpected, in upstream names
    assert "legm1.blocks.0.mlp.mlp.0.weight: (5, 24, 1, 1) (expected (48, 24, 1, 1))" in msg


def test_convert_upstream_drops_only_the_documented_dead_tensors():
    dehaze, depth = _upstream_pair()
    dead = [k for k in dehaze if k.split(".")[0] in ("conv11", "conv22", "conv_fu", "ccc", "fuse_conv1")]
    assert len(dead) == 10
    model = convert_upstream(dehaze, depth)
    n_used = sum(1 for k in dehaze if k not in dead and not k.endswith("relative_positions"))
    assert n_used == len(model.dehaze_net.state_dict())


def test_convert_upstream_refuses_swapped_files():
    dehaze, depth = _upstream_pair()
    with pytest.raises(CheckpointError, match="dehazing-network weights do not fit"):
        convert_upstream(depth, dehaze)


def test_convert_upstream_refuses_other_relative_position_layout():
    dehaze, depth = _upstream_pair()
    key = "legm3.blocks.7.attn.attn.relative_positions"
    dehaze[key] = dehaze[key].flip(-1)
    with pytest.raises(CheckpointError, match="relative-position"):
        convert_upstream(dehaze, depth)


def test_network_modules_import_no_file_or_training_code():
    """The networks only compute: loading, saving, training and inference live outside ``models/``."""
    code = ("import sys; import dcmpnet_core.models.dcmpnet; "
            "print(sorted(m for m in sys.modules if m.startswith(('dcmpnet_core.checkpoints', 'dcmpnet_core.train', "
            "'dcmpnet_core.inference', 'dcmpnet_core.utils.fileio', 'dcmpnet_core.data'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_guidance_and_aligned_depth_are_the_forward_pass_parts(tiny):
    x = torch.rand(2, 3, 21, 34) * 2 - 1
    with torch.no_grad():
        out = tiny(x)
        for a, b in zip(tiny.dehaze_net.guidance(x), out.guidance):
            assert torch.equal(a, b)
        assert torch.equal(predict_aligned(tiny.depth_net, out.dehazed), out.depth)
        assert out.depth.shape == (2, 1, 21, 34)
