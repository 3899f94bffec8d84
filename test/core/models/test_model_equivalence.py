"""The network equals the original implementation: reference vectors of the original code."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from upstream_rule import upstream_state_dict

from dcmpnet_core.checkpoints.builder import convert_upstream

TOL = 1e-4


@pytest.fixture(scope="module", params=[1, 2], ids=["seed1", "seed2"])
def case(request, data_dir):
    seed = request.param
    ref = dict(np.load(data_dir / f"reference_seed{seed}.npz"))
    model = convert_upstream(upstream_state_dict("dehaze", seed), upstream_state_dict("depth", seed))
    return model, ref


def test_dehazing_network_matches_reference(case):
    model, ref = case
    assert not model.training
    with torch.inference_mode():
        out = model.dehaze_net(torch.from_numpy(ref["hazy"]))
    assert out.dehazed.shape == ref["dehazed"].shape
    np.testing.assert_allclose(out.dehazed.numpy(), ref["dehazed"], rtol=0, atol=TOL)
    for got, name in zip(out.guidance, ("unet_d1", "unet_d2", "unet_d3")):
        assert got.shape == ref[name].shape, name
        np.testing.assert_allclose(got.numpy(), ref[name], rtol=0, atol=TOL, err_msg=name)


def test_depth_network_matches_reference(case):
    model, ref = case
    with torch.inference_mode():
        depth = model.depth_net(torch.from_numpy(ref["depth_input"]))
    assert depth.shape == ref["depth"].shape
    np.testing.assert_allclose(depth.numpy(), ref["depth"], rtol=0, atol=TOL)


def test_reference_output_is_not_trivial(case):
    """The comparison means something: the residual branch changes the input substantially."""
    _, ref = case
    assert np.abs(ref["dehazed"] - ref["hazy"]).mean() > 0.1
