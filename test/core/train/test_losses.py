"""The difference perceiver, masked/weighted L1 and the VGG19 contrastive loss."""
from __future__ import annotations

import pytest
import torch
import torchvision
from hazy_photos import HazyPhotoPairs, batch_of

from dcmpnet_core.train.losses import (
    ContrastiveLoss,
    load_vgg19_features,
    masked_l1,
    perceiver,
    resize_weights,
)


def _photo_diff() -> torch.Tensor:
    """|hazy - clear| of two real hazed photos: (2,3,32,32), larger where the haze is thicker."""
    b = batch_of(HazyPhotoPairs(2, 32), [0, 1])
    return (b["hazy"] - b["clear"]).abs()


@pytest.mark.parametrize("form", ["softmax", "linear", "power"])
def test_perceiver_weights_average_one_and_follow_the_error(form):
    d = _photo_diff()
    w = perceiver(d, form=form)
    assert w.shape == (2, 1, 32, 32) and (w >= 0).all()
    torch.testing.assert_close(w.flatten(1).mean(1), torch.ones(2), rtol=0, atol=1e-5)
    # Higher error, higher weight: the weights rank pixels like the channel-mean error does.
    err = d.mean(1, keepdim=True)
    hi, lo = err > err.quantile(0.9), err < err.quantile(0.1)
    assert w[hi].mean() > 1.0 > w[lo].mean()


def test_perceiver_scale_free_and_uniform_on_zero():
    d = _photo_diff()
    torch.testing.assert_close(perceiver(d), perceiver(d * 0.01), rtol=1e-4, atol=1e-5)
    for form in ("softmax", "linear", "power"):
        torch.testing.assert_close(perceiver(torch.zeros(1, 3, 8, 8), form=form), torch.ones(1, 1, 8, 8))


def test_temperature_and_power_sharpen():
    d = _photo_diff()
    peaks = [perceiver(d, temperature=t).max() for t in (0.25, 1.0, 4.0)]
    assert peaks[0] > peaks[1] > peaks[2]
    assert perceiver(d, "power", power=3).max() > perceiver(d, "linear").max() > perceiver(d, "power", power=0.5).max()
    torch.testing.assert_close(perceiver(d, "power", power=1.0), perceiver(d, "linear"))
    torch.testing.assert_close(perceiver(d, "power", power=0.0), torch.ones(2, 1, 32, 32))


def test_upstream_form_reproduces_the_vanishing_weights():
    d = _photo_diff()
    w = perceiver(d, form="upstream")
    # The release: softmax over all C*H*W values, summed over channels -> sums to 1 per image.
    torch.testing.assert_close(w.flatten(1).sum(1), torch.ones(2))
    assert w.mean() == pytest.approx(1 / (32 * 32), rel=1e-4)
    ref = torch.softmax(d.permute(0, 2, 3, 1).reshape(2, -1), -1).reshape(2, 32, 32, 3).sum(-1)
    torch.testing.assert_close(w[:, 0], ref)
    pred, target = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    assert masked_l1(pred, target, weight=w) < 1e-3 * masked_l1(pred, target)


def test_bad_perceiver_arguments():
    with pytest.raises(ValueError, match="form must be one of"):
        perceiver(torch.ones(1, 1, 4, 4), form="gauss")
    with pytest.raises(ValueError, match=r"\(B,C,H,W\)"):
        perceiver(torch.ones(4, 4))
    with pytest.raises(ValueError, match="temperature"):
        perceiver(torch.ones(1, 1, 4, 4), temperature=0)


@pytest.mark.parametrize("form,kw", [("softmax", {"temperature": 0.7}), ("linear", {}), ("power", {"power": 2.0}),
                                     ("upstream", {})])
def test_perceiver_gradcheck(form, kw):
    gen = torch.Generator().manual_seed(0)
    d = (torch.rand(2, 3, 5, 6, generator=gen, dtype=torch.float64) + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: perceiver(x, form=form, **kw), (d,))


def test_weighted_masked_l1_gradcheck():
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 1, 5, 6, generator=gen, dtype=torch.float64).requires_grad_()
    target = torch.rand(2, 1, 5, 6, generator=gen, dtype=torch.float64)
    mask = torch.rand(2, 1, 5, 6, generator=gen) > 0.3
    diff = (torch.rand(2, 3, 5, 6, generator=gen, dtype=torch.float64) + 0.05).requires_grad_()

    def weighted(p, d):
        return masked_l1(p, target, mask, perceiver(d))

    assert torch.autograd.gradcheck(weighted, (pred, diff))


def test_masked_l1_values_and_empty_mask():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.zeros_like(pred)
    mask = torch.tensor([[[[True, False], [False, True]]]])
    assert masked_l1(pred, target).item() == pytest.approx(2.5)
    assert masked_l1(pred, target, mask).item() == pytest.approx(2.5)          # (1 + 4) / 2
    assert masked_l1(pred, target, mask, weight=torch.full_like(pred, 2.0)).item() == pytest.approx(5.0)
    assert masked_l1(pred, pred.clone(), mask).item() == 0.0
    p = pred.clone().requires_grad_()
    loss = masked_l1(p, target, torch.zeros_like(mask))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(p.grad, torch.zeros_like(p))
    with pytest.raises(ValueError, match="differ in shape"):
        masked_l1(pred, torch.zeros(1, 1, 2, 3))


def test_resize_weights_keeps_mean_one():
    w = perceiver(_photo_diff())
    r = resize_weights(w, (20, 24))
    assert r.shape == (2, 1, 20, 24)
    torch.testing.assert_close(r.flatten(1).mean(1), torch.ones(2))
    assert resize_weights(w, (32, 32)) is w


# ------------------------------------------------------------------------------------ contrastive
@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    """A torchvision VGG19 ``features`` state dict (random weights: nothing is downloaded), as a file."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["E"])
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path, features


def test_vgg19_features_load_like_torchvision(vgg19_file):
    path, reference = vgg19_file
    ours = load_vgg19_features(path)
    assert not any(p.requires_grad for p in ours.parameters()) and not ours.training
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference[:30](x))        # same layers up to relu5_1


def test_contrastive_loss_zero_at_the_positive_and_positive_elsewhere(vgg19_file):
    loss = ContrastiveLoss(vgg19_file[0])
    b = batch_of(HazyPhotoPairs(2, 32), [0, 1])
    assert loss(b["clear"], b["clear"], b["hazy"]).item() == pytest.approx(0.0, abs=1e-7)
    # Moving the output from the negative towards the positive lowers the loss.
    values = [loss(a * b["clear"] + (1 - a) * b["hazy"], b["clear"], b["hazy"]).item() for a in (0.25, 0.5, 0.75)]
    assert values[0] > values[1] > values[2] > 0
    out = (b["hazy"] * 0.5 + b["clear"] * 0.5).requires_grad_()
    loss(out, b["clear"], b["hazy"]).backward()
    assert out.grad.abs().sum() > 0
    loss.train()
    assert not loss.features.training


def test_contrastive_weight_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG19 weights .*missing.pth"):
        load_vgg19_features(tmp_path / "missing.pth")
    resnet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), resnet)
    with pytest.raises(ValueError, match="not a torchvision VGG19 state dict: tensor '0.weight' is missing"):
        load_vgg19_features(resnet)
    from torchvision.models.vgg import cfgs, make_layers

    vgg16 = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, vgg16)
    with pytest.raises(ValueError, match="features.16.weight' is missing"):
        load_vgg19_features(vgg16)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(Exception, match="not a PyTorch checkpoint"):
        load_vgg19_features(text)
