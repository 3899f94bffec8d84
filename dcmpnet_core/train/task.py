"""DCMPNet's joint training objective and its optimisation step, separate from the networks and the loop.

The task owns everything that happens within one step: the losses, the routed backward pass,
both optimizers, the gradient scaler, gradient clipping and the EMA of the weights.  The loop
(:mod:`dcmpnet_core.train.loop`) owns the schedule, the data, validation, checkpoints, resume and logs.

The losses on a batch of hazy images ``ũ`` (B,3,H,W), clear images ``u`` (B,3,H,W), both in
[-1, 1], depth targets ``M(u)`` (B,1,H,W) (relative depth, see
:mod:`dcmpnet_core.utils.depth_convention`) and a validity mask (B,1,H,W):

* ``u* = dehaze_net(ũ)``, ``M(u*) = depth_net.predict(u*)``;
* DE loss: ``depth_l1 * L1(M(u*), M(u)) + depth_weighted * L1 weighted by A(d,r) = P(|u* - u|)``;
* dehazing loss: ``dehaze_l1 * L1(u*, u) + dehaze_weighted * L1 weighted by A(e,r) = P(|M(u*) - M(u)|)
  + depth_to_dehaze * L1(M(u*), M(u))`` (+ contrastive, + guidance consistency when enabled).

The perceiver maps ``P`` (see :mod:`dcmpnet_core.train.losses`) are computed from detached
differences.  Depth terms are means over valid pixels only; a batch without valid depth has
zero depth terms.  In ``A(e,r)`` pixels without a depth target get the neutral weight 1.

**Gradient routing.**  The DE loss updates only the DE network; the dehazing loss updates only
the dehazing network, its ``depth_to_dehaze`` term reaching it *through* the DE network (whose
parameters do not receive that gradient).  :meth:`TrainingTask.backward` does this with two
backward passes over one graph, each restricted to one network's parameters
(``Tensor.backward(inputs=...)``); that also works under DistributedDataParallel when each
network is wrapped separately, since each pass fires only its own network's reduction hooks.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3
from torch import nn

from ..checkpoints.format import load_state_strict
from ..evaluation.metrics import ssim
from ..models.dcmpnet import DCMPNet
from ..models.depth_net import predict_aligned
from .config import LossConfig, OptimConfig
from .losses import ContrastiveLoss, masked_l1, perceiver, resize_weights


class StepResult(NamedTuple):
    """What one optimisation step returns.

    ``terms``: every term of :meth:`TrainingTask.losses` as a float; ``skipped``: a loss was
    non-finite on some process, so no weights changed.
    """

    terms: dict[str, float]
    skipped: bool


class ModelEma:
    """timm's ``ModelEmaV3`` (EMA of weights and buffers, decay warm-up), with a resumable state dict."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self._ema = ModelEmaV3(model, decay=decay, use_warmup=True)
        self._ema.module.eval().requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self._ema.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        self._ema.update(model, step=self.updates)

    def state_dict(self) -> dict:
        return {"module": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
                "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        load_state_strict(self.module, sd["module"], "EMA")
        self.updates = int(sd["updates"])


def make_grad_scaler(enabled: bool) -> Any:
    try:
        return torch.amp.GradScaler("cuda", enabled=enabled)
    except (AttributeError, TypeError):            # torch < 2.3
        return torch.cuda.amp.GradScaler(enabled=enabled)


@contextlib.contextmanager
def _frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in its current mode but keep BatchNorm running statistics unchanged."""
    saved = [(m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None]
    try:
        yield
    finally:
        for m, mean, var, n in saved:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(n)


class TrainingTask:
    """The two losses of DCMPNet, their routed backward pass and the optimisation step of both networks.

    ``model`` owns the parameters (on its device already).  ``dehaze_module`` / ``depth_module`` are
    what the forward pass calls (default: ``model.dehaze_net`` / ``model.depth_net``); the trainer
    passes their DistributedDataParallel wrappers and ``distributed=True``, so that every process
    makes the same skip / update decisions.  ``optim``: the two optimizers (timm's factory; the
    learning rates are then set by the loop's schedule).  ``amp_dtype``: autocast dtype (None: off);
    float16 also enables the gradient scaler.  ``ema_decay`` > 0 keeps an EMA of the weights.
    """

    def __init__(self, model: DCMPNet, cfg: LossConfig | None = None, optim: OptimConfig | None = None, *,
                 dehaze_module: nn.Module | None = None, depth_module: nn.Module | None = None,
                 amp_dtype: torch.dtype | None = None, ema_decay: float = 0.0, distributed: bool = False) -> None:
        self.model = model
        self.cfg = cfg or LossConfig()
        self.optim = optim or OptimConfig()
        self.dehaze_module = dehaze_module if dehaze_module is not None else model.dehaze_net
        self.depth_module = depth_module if depth_module is not None else model.depth_net
        self.amp_dtype = amp_dtype
        self.distributed = distributed
        self.scaler = make_grad_scaler(amp_dtype == torch.float16)
        self.contrastive: ContrastiveLoss | None = None
        if self.cfg.contrastive_enabled:
            self.contrastive = ContrastiveLoss(self.cfg.vgg19_weights)
            self.contrastive.to(next(model.parameters()).device)
        oc = self.optim
        # timm's factory: no weight decay on biases and norm gains (when weight_decay > 0).
        kw = dict(opt=oc.name, betas=tuple(oc.betas), eps=oc.eps, weight_decay=oc.weight_decay)
        self.opt_dehaze = create_optimizer_v2(model.dehaze_net, lr=oc.lr_dehaze, **kw)
        self.opt_depth = create_optimizer_v2(model.depth_net, lr=oc.lr_depth, **kw)
        self.ema = ModelEma(model, ema_decay) if ema_decay > 0 else None

    def to(self, device: torch.device | str) -> "TrainingTask":
        if self.contrastive is not None:
            self.contrastive.to(device)
        return self

    @property
    def dehaze_params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.dehaze_net.parameters() if p.requires_grad]

    @property
    def depth_params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.depth_net.parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------------ forward
    @staticmethod
    def _unpack(batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        for key in ("hazy", "clear"):
            if key not in batch:
                raise KeyError(f"training batch has no {key!r} entry (keys: {sorted(batch)})")
        hazy, clear = batch["hazy"], batch["clear"]
        if hazy.dim() != 4 or hazy.shape[1] != 3 or hazy.shape != clear.shape:
            raise ValueError(f"training batch: expected hazy and clear of shape (B,3,H,W), got {tuple(hazy.shape)} "
                             f"and {tuple(clear.shape)}")
        b, _, h, w = hazy.shape
        depth = batch.get("depth")
        valid = batch.get("depth_valid")
        if depth is None:
            depth = hazy.new_zeros(b, 1, h, w)
            valid = torch.zeros(b, 1, h, w, dtype=torch.bool, device=hazy.device)
        if depth.shape != (b, 1, h, w):
            raise ValueError(f"training batch: depth has shape {tuple(depth.shape)}, expected {(b, 1, h, w)}")
        if valid is None:
            valid = torch.isfinite(depth)
        if valid.shape != (b, 1, h, w):
            raise ValueError(f"training batch: depth_valid has shape {tuple(valid.shape)}, expected {(b, 1, h, w)}")
        valid = valid.to(torch.bool) & torch.isfinite(depth)
        depth = torch.where(valid, depth, torch.zeros_like(depth))
        return hazy, clear, depth, valid

    def losses(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Forward both networks and compute every term; see the module docstring.

        Returns 0-d tensors: ``loss_dehaze`` and ``loss_depth`` (attached to the graph), the
        weighted terms' parts ``l_*`` (``l_depth_to_dehaze`` is the same tensor as ``l_depth``:
        only the routing differs), ``perceiver_mean/max_dehaze/depth`` diagnostics (the means are
        ~1 by construction) and ``depth_valid_fraction``.
        """
        cfg = self.cfg
        hazy, clear, depth_t, valid = self._unpack(batch)
        guide_target = None
        if cfg.guidance > 0:
            # Before the main forward: restoring the BN statistics afterwards would modify tensors
            # that the main forward saved for its backward pass.
            with torch.no_grad(), _frozen_bn_stats(self.model.dehaze_net):
                guide_target = self.model.dehaze_net.guidance(clear)
        out = self.dehaze_module(hazy)
        u_star = out.dehazed
        depth_p = predict_aligned(self.depth_module, u_star)

        u_star32, clear32 = u_star.float(), clear.float()
        depth_p32, depth_t32 = depth_p.float(), depth_t.float()
        upstream = cfg.perceiver.form == "upstream"
        pk = dict(form=cfg.perceiver.form, temperature=cfg.perceiver.temperature, power=cfg.perceiver.power)
        with torch.no_grad():
            img_diff = (u_star32 - clear32) if upstream else (u_star32 - clear32).abs()
            dep_diff = (depth_p32 - depth_t32) * valid
            dep_diff = dep_diff if upstream else dep_diff.abs()
            a_dr = resize_weights(perceiver(img_diff, **pk), depth_p32.shape[-2:])      # weights for the DE loss
            a_er = perceiver(dep_diff, **pk)                                    # weights for the dehazing loss
            if not upstream:
                # Pixels without a depth target say nothing about depth errors: neutral weight 1
                # (then back to mean 1), rather than the lowest weight that a zero error would get.
                a_er = torch.where(valid, a_er, torch.ones_like(a_er))
                a_er = a_er / a_er.flatten(1).mean(1).view(-1, 1, 1, 1)
            a_er = resize_weights(a_er, u_star32.shape[-2:])

        l_depth = masked_l1(depth_p32, depth_t32, valid)
        l_depth_weighted = masked_l1(depth_p32, depth_t32, valid, a_dr)
        loss_depth = cfg.depth_l1 * l_depth + cfg.depth_weighted * l_depth_weighted
        l_depth_clear = u_star32.new_zeros(())
        if cfg.depth_clear > 0:
            depth_c = predict_aligned(self.depth_module, clear)
            l_depth_clear = masked_l1(depth_c.float(), depth_t32, valid)
            loss_depth = loss_depth + cfg.depth_clear * l_depth_clear

        l_dehaze = F.l1_loss(u_star32, clear32)
        l_dehaze_weighted = masked_l1(u_star32, clear32, None, a_er)
        loss_dehaze = cfg.dehaze_l1 * l_dehaze + cfg.dehaze_weighted * l_dehaze_weighted \
            + cfg.depth_to_dehaze * l_depth
        zero = u_star32.new_zeros(())
        l_ssim = zero
        if cfg.dehaze_ssim > 0:
            l_ssim = 1 - ssim(u_star32.clamp(0, 1), clear32, full_res=True).mean()
            loss_dehaze = loss_dehaze + cfg.dehaze_ssim * l_ssim
        l_contrastive = zero
        if self.contrastive is not None:
            l_contrastive = self.contrastive(u_star, clear, hazy).float()
            loss_dehaze = loss_dehaze + cfg.contrastive * l_contrastive
        l_guidance = zero
        if guide_target is not None:
            l_guidance = sum(F.l1_loss(g.float(), t.float()) for g, t in zip(out.guidance, guide_target))
            loss_dehaze = loss_dehaze + cfg.guidance * l_guidance

        return {
            "loss_dehaze": loss_dehaze, "loss_depth": loss_depth,
            "l_dehaze": l_dehaze, "l_dehaze_weighted": l_dehaze_weighted, "l_depth_to_dehaze": l_depth,
            "l_contrastive": l_contrastive, "l_guidance": l_guidance, "l_ssim": l_ssim,
            "l_depth": l_depth, "l_depth_weighted": l_depth_weighted, "l_depth_clear": l_depth_clear,
            "perceiver_mean_dehaze": a_er.mean(), "perceiver_mean_depth": a_dr.mean(),
            "perceiver_max_dehaze": a_er.max(), "perceiver_max_depth": a_dr.max(),
            "depth_valid_fraction": valid.float().mean(),
        }

    # ----------------------------------------------------------------------------------- backward
    def backward(self, terms: Mapping[str, torch.Tensor], scaler: Any = None) -> None:
        """Accumulate ``loss_depth``'s gradient into the DE network only, ``loss_dehaze``'s into the dehazing one only.

        ``scaler`` is an optional (enabled or disabled) ``GradScaler``.
        """
        def scaled(t: torch.Tensor) -> torch.Tensor:
            return scaler.scale(t) if scaler is not None else t

        depth_params, dehaze_params = self.depth_params, self.dehaze_params
        scaled(terms["loss_depth"]).backward(inputs=depth_params, retain_graph=True)
        scaled(terms["loss_dehaze"]).backward(inputs=dehaze_params)

    # ------------------------------------------------------------------------------ optimisation
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=next(self.model.parameters()).device.type, dtype=self.amp_dtype)

    def optimize(self, batch: Mapping[str, Any]) -> StepResult:
        """One optimisation step of both networks on one (per-process) batch, already on the model's device.

        Losses under autocast, the routed backward pass, then (unless a loss is non-finite on any
        process: the batch is skipped) unscaling, gradient clipping, both optimizer steps (the DE
        network's only when some process had valid depth) and the EMA update.
        """
        clip = self.optim.clip_grad_norm
        self.opt_dehaze.zero_grad(set_to_none=True)
        self.opt_depth.zero_grad(set_to_none=True)
        with self._autocast():
            terms = self.losses(batch)
        self.backward(terms, self.scaler)

        # One all-reduce decides for every process: any valid depth? any non-finite loss?
        flags = torch.stack([(terms["depth_valid_fraction"] > 0).float(),
                             (~torch.isfinite(terms["loss_dehaze"] + terms["loss_depth"])).float()]).detach()
        if self.distributed:
            dist.all_reduce(flags)
        update_depth, nonfinite = bool(flags[0] > 0), bool(flags[1] > 0)
        if not nonfinite:
            self.scaler.unscale_(self.opt_dehaze)
            if update_depth:
                self.scaler.unscale_(self.opt_depth)
            if clip > 0:
                nn.utils.clip_grad_norm_(self.model.dehaze_net.parameters(), clip)
                if update_depth:
                    nn.utils.clip_grad_norm_(self.model.depth_net.parameters(), clip)
            self.scaler.step(self.opt_dehaze)
            if update_depth:
                self.scaler.step(self.opt_depth)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model)
        values = torch.stack([v.detach().float() for v in terms.values()]).tolist()     # one device sync
        return StepResult(dict(zip(terms, values)), nonfinite)

    @property
    def eval_model(self) -> DCMPNet:
        """The weights used for validation and checkpoints: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict:
        """The optimisation state (both optimizers, the gradient scaler, the EMA or None)."""
        return {"opt_dehaze": self.opt_dehaze.state_dict(), "opt_depth": self.opt_depth.state_dict(),
                "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; without a saved EMA, an enabled EMA restarts from the current weights."""
        self.opt_dehaze.load_state_dict(state["opt_dehaze"])
        self.opt_depth.load_state_dict(state["opt_depth"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state.get("ema") is None:
                self.ema = ModelEma(self.model, self.ema.decay)
            else:
                self.ema.load_state_dict(state["ema"])
