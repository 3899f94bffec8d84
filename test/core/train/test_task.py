"""The joint training objective: its terms, and which network each loss updates."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from hazy_photos import HazyPhotoPairs, batch_of, no_onednn

from dcmpnet_core import DCMPNet
from dcmpnet_core.evaluation.metrics import ssim
from dcmpnet_core.train.config import LossConfig, OptimConfig, PerceiverConfig
from dcmpnet_core.train.task import TrainingTask

TERMS = ("l_dehaze", "l_dehaze_weighted", "l_depth_to_dehaze", "l_depth", "l_depth_weighted")


@pytest.fixture()
def model() -> DCMPNet:
    torch.manual_seed(0)
    return DCMPNet("tiny").train()


@pytest.fixture(scope="module")
def batch() -> dict:
    return batch_of(HazyPhotoPairs(2, 32), [0, 1])


def _grads(params) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in params]


def test_terms_on_real_photos(model, batch):
    terms = TrainingTask(model).losses(batch)
    for name in TERMS + ("loss_dehaze", "loss_depth"):
        assert terms[name].dim() == 0 and terms[name].item() > 0, name
    assert terms["l_contrastive"].item() == 0.0 and terms["l_guidance"].item() == 0.0      # both off
    assert terms["perceiver_mean_dehaze"].item() == pytest.approx(1.0, abs=1e-5)
    assert terms["perceiver_mean_depth"].item() == pytest.approx(1.0, abs=1e-5)
    assert terms["perceiver_max_depth"].item() > 1.0
    assert terms["depth_valid_fraction"].item() == 1.0
    expected = terms["l_dehaze"] + terms["l_dehaze_weighted"] + 0.1 * terms["l_depth"]
    torch.testing.assert_close(terms["loss_dehaze"], expected)
    torch.testing.assert_close(terms["loss_depth"], terms["l_depth"] + terms["l_depth_weighted"])


def test_every_term_is_zero_when_prediction_equals_target(model, batch):
    model.eval()        # BatchNorm on running statistics: the same function on every call
    with torch.no_grad():
        out = model(batch["hazy"])
    perfect = dict(batch, clear=out.dehazed, depth=out.depth)
    task = TrainingTask(model, LossConfig(guidance=1.0))
    terms = task.losses(perfect)
    for name in TERMS:
        assert terms[name].item() == pytest.approx(0.0, abs=1e-6), name
    assert terms["l_guidance"].item() > 0          # hazy input != "clear" target
    # Guidance consistency compares the guide maps of the hazy and the clear image.
    same = dict(batch, clear=batch["hazy"])
    assert task.losses(same)["l_guidance"].item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_term_is_one_minus_ssim_and_zero_at_the_optimum(model, batch):
    """The structural term (off in the paper recipes): 1 - SSIM at full resolution, added with its weight."""
    model.eval()
    task = TrainingTask(model, LossConfig(dehaze_ssim=0.5))
    with torch.no_grad():
        out = model(batch["hazy"])
        terms = task.losses(batch)
        off = TrainingTask(model).losses(batch)
    want = 1 - ssim(out.dehazed.clamp(0, 1), batch["clear"], full_res=True).mean()
    torch.testing.assert_close(terms["l_ssim"], want)
    assert 0 < terms["l_ssim"].item() < 2 and off["l_ssim"].item() == 0.0
    torch.testing.assert_close(terms["loss_dehaze"], off["loss_dehaze"] + 0.5 * want)
    perfect = dict(batch, clear=out.dehazed.clamp(0, 1))
    with torch.no_grad():
        assert task.losses(perfect)["l_ssim"].item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="dehaze_ssim"):
        LossConfig(dehaze_ssim=-1.0)


def test_every_term_is_named_for_the_logs(model, batch):
    assert list(TrainingTask(model).losses(batch)) == [
        "loss_dehaze", "loss_depth", "l_dehaze", "l_dehaze_weighted", "l_depth_to_dehaze", "l_contrastive",
        "l_guidance", "l_ssim", "l_depth", "l_depth_weighted", "l_depth_clear", "perceiver_mean_dehaze",
        "perceiver_mean_depth", "perceiver_max_dehaze", "perceiver_max_depth", "depth_valid_fraction"]


def test_gradient_routing(model, batch):
    task = TrainingTask(model)
    dehaze_params, depth_params = task.dehaze_params, task.depth_params

    terms = task.losses(batch)
    want_depth = torch.autograd.grad(terms["loss_depth"], depth_params, retain_graph=True)
    want_dehaze = torch.autograd.grad(terms["loss_dehaze"], dehaze_params, retain_graph=True)
    # The depth loss depends on the dehazing network too, and the dehazing loss on the DE net:
    # without routing, each would leak into the other network.
    leak = torch.autograd.grad(terms["loss_depth"], dehaze_params, retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in leak)
    leak = torch.autograd.grad(terms["loss_dehaze"], depth_params, retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in leak)

    task.backward(terms)
    for p, g in zip(depth_params, want_depth):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(dehaze_params, want_dehaze):
        torch.testing.assert_close(p.grad, g)


def test_depth_to_dehaze_term_reaches_the_dehazing_net_through_the_de_net(model, batch):
    grads = {}
    for lam in (0.0, 0.1):
        model.zero_grad(set_to_none=True)
        task = TrainingTask(model, LossConfig(depth_to_dehaze=lam))
        task.backward(task.losses(batch))
        grads[lam] = (_grads(task.dehaze_params), _grads(task.depth_params))
    # The DE network's gradient does not depend on lambda ...
    for a, b in zip(grads[0.0][1], grads[0.1][1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # ... the dehazing network's does.
    assert any(not torch.allclose(a, b) for a, b in zip(grads[0.0][0], grads[0.1][0]))


def test_no_valid_depth_means_no_depth_terms(model):
    b = batch_of(HazyPhotoPairs(2, 32, invalid_depth=True), [0, 1])
    task = TrainingTask(model)
    terms = task.losses(b)
    assert terms["depth_valid_fraction"].item() == 0.0
    for name in ("l_depth", "l_depth_weighted", "l_depth_to_dehaze", "loss_depth"):
        assert terms[name].item() == 0.0, name
    # Without depth the dehazing weights are uniform: the weighted term equals the plain L1.
    torch.testing.assert_close(terms["l_dehaze_weighted"], terms["l_dehaze"])
    task.backward(terms)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in task.depth_params)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.dehaze_params)
    # A batch without depth entries at all is the same thing.
    nodepth = {k: v for k, v in b.items() if k not in ("depth", "depth_valid")}
    assert task.losses(nodepth)["loss_depth"].item() == 0.0


def test_invalid_pixels_are_excluded(model, batch):
    task = TrainingTask(model)
    half = batch["depth_valid"].clone()
    half[..., :16, :] = False
    corrupted = batch["depth"].clone()
    corrupted[..., :16, :] = 1e6                     # garbage where depth is invalid
    a = task.losses(dict(batch, depth_valid=half))
    b = task.losses(dict(batch, depth_valid=half, depth=corrupted))
    for name in ("l_depth", "l_depth_weighted", "l_dehaze_weighted"):
        torch.testing.assert_close(a[name], b[name])
    assert b["depth_valid_fraction"].item() == pytest.approx(0.5)


def test_upstream_perceiver_makes_weighted_terms_vanish(model, batch):
    cfg = LossConfig(perceiver=PerceiverConfig(form="upstream"))
    terms = TrainingTask(model, cfg).losses(batch)
    assert terms["perceiver_mean_depth"].item() == pytest.approx(1 / (32 * 32), rel=1e-3)
    assert terms["l_depth_weighted"].item() < 1e-2 * terms["l_depth"].item()
    ours = TrainingTask(model).losses(batch)
    assert ours["l_depth_weighted"].item() > 0.5 * ours["l_depth"].item()


def test_contrastive_term(model, batch, tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["E"]).state_dict().items()}, path)
    task = TrainingTask(model, LossConfig(vgg19_weights=str(path), contrastive=0.5))
    terms = task.losses(batch)
    assert terms["l_contrastive"].item() > 0
    base = terms["l_dehaze"] + terms["l_dehaze_weighted"] + 0.1 * terms["l_depth"]
    torch.testing.assert_close(terms["loss_dehaze"], base + 0.5 * terms["l_contrastive"])
    task.backward(terms)
    assert all(not p.requires_grad and p.grad is None for p in task.contrastive.parameters())
    with pytest.raises(FileNotFoundError, match="VGG19 weights"):
        TrainingTask(model, LossConfig(vgg19_weights=str(tmp_path / "nope.pth")))


def test_guidance_does_not_disturb_batchnorm_statistics(model, batch):
    task = TrainingTask(model, LossConfig(guidance=1.0))
    bn = model.dehaze_net.guide.stem.bn1
    plain = TrainingTask(DCMPNet("tiny").train(), LossConfig())
    plain.model.load_state_dict(model.state_dict())
    task.backward(task.losses(batch))
    plain.losses(batch)
    # The clear-image pass of the guide leaves BN statistics as the hazy pass alone would.
    torch.testing.assert_close(bn.running_mean, plain.model.dehaze_net.guide.stem.bn1.running_mean)


def test_batch_errors(model, batch):
    task = TrainingTask(model)
    with pytest.raises(KeyError, match="'clear'"):
        task.losses({"hazy": batch["hazy"]})
    with pytest.raises(ValueError, match="depth has shape"):
        task.losses(dict(batch, depth=batch["depth"][:, :, :16]))
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        task.losses(dict(batch, clear=batch["clear"][:, :2]))


def test_loss_config_is_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossConfig().depth_to_dehaze = 1.0
    from dcmpnet_core.models.config import ConfigError

    with pytest.raises(ConfigError, match="loss.depth_weighted"):
        LossConfig(depth_weighted=-1)
    with pytest.raises(ConfigError, match="loss.perceiver.form"):
        PerceiverConfig(form="max")


@pytest.fixture(autouse=True, scope="module")
def _no_onednn():
    yield from no_onednn()


def test_depth_clear_term_fits_the_de_net_on_clear_images(model, batch):
    cfg = LossConfig(depth_clear=1.0)
    task = TrainingTask(model, cfg)
    terms = task.losses(batch)
    assert terms["l_depth_clear"].item() > 0
    torch.testing.assert_close(terms["loss_depth"], terms["l_depth"] + terms["l_depth_weighted"]
                               + terms["l_depth_clear"])
    # the term moves only the DE network, and with a perfect DE prediction on the clear image it is zero
    model.zero_grad(set_to_none=True)
    terms["l_depth_clear"].backward(retain_graph=True)
    assert all(p.grad is None for p in model.dehaze_net.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.depth_net.parameters())
    with torch.no_grad():
        perfect = model.depth_net.predict(batch["clear"])
    same = dict(batch, depth=perfect, depth_valid=torch.ones_like(perfect, dtype=torch.bool))
    assert TrainingTask(model, cfg).losses(same)["l_depth_clear"].item() < 1e-6
    assert TrainingTask(model, LossConfig()).losses(batch)["l_depth_clear"].item() == 0.0


def test_optimize_takes_one_whole_step_and_skips_non_finite_batches(model, batch):
    """Losses, routed backward, clipping, both optimizer steps and the EMA: one call."""
    task = TrainingTask(model, optim=OptimConfig(clip_grad_norm=0.5), ema_decay=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema_before = {k: v.clone() for k, v in task.ema.module.state_dict().items()}
    result = task.optimize(batch)
    assert not result.skipped and set(result.terms) == set(task.losses(batch))
    assert all(isinstance(v, float) for v in result.terms.values())
    for net in ("dehaze_net.", "depth_net."):
        assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith(net)), net
    assert task.ema.updates == 1
    assert any(not torch.equal(v, ema_before[k]) for k, v in task.ema.module.state_dict().items())
    assert task.eval_model is task.ema.module
    # A non-finite loss leaves every weight and the EMA as they were.
    after = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    skipped = task.optimize(dict(batch, hazy=torch.full_like(batch["hazy"], float("nan"))))
    assert skipped.skipped and task.ema.updates == 1
    for n, p in model.named_parameters():
        assert torch.equal(p, after[n]), n


def test_optimisation_state_round_trips(model, batch):
    task = TrainingTask(model, ema_decay=0.5)
    task.optimize(batch)
    state = task.state_dict()
    assert set(state) == {"opt_dehaze", "opt_depth", "scaler", "ema"}
    other = TrainingTask(model, ema_decay=0.5)
    other.load_state_dict(state)
    assert other.ema.updates == 1
    assert other.opt_dehaze.state_dict()["state"].keys() == state["opt_dehaze"]["state"].keys()
    other.load_state_dict(dict(state, ema=None))           # a run saved without EMA: the EMA restarts
    assert other.ema.updates == 0
