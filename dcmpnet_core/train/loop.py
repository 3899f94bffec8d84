"""The training loop: two optimizers, cosine schedule, AMP, EMA, validation, checkpoints, resume, DDP.

Run directory (``out``), written by rank 0 only and always atomically (temporary file + rename,
so an interrupted run keeps its last good files):

* ``config.yaml``: the fully resolved :class:`~dcmpnet_core.train.config.TrainConfig`;
* ``best.pt`` / ``last.pt``: project checkpoints (read with
  :func:`~dcmpnet_core.checkpoints.builder.load_model`); EMA weights when EMA is on; ``meta`` holds
  step, epoch, PSNR/SSIM and the depth convention;
* ``train_state.pt``: everything ``--resume`` needs (weights, both optimizers, the gradient scaler,
  EMA, step, epoch, validation history, RNG states), tensors and plain containers only, read
  with ``torch.load(weights_only=True)``;
* ``val_log.csv``, ``previews/step_NNNNNNN.png`` (hazy | dehazed | clear | depth), ``tb/``
  (TensorBoard scalars, when tensorboard is installed).

Multi-GPU: launch with ``torchrun --standalone --nproc_per_node N``; each network is wrapped in its own
DistributedDataParallel (see :mod:`dcmpnet_core.train.task` for why), every process reads a disjoint
part of each global batch, and validation is split over processes.  Gloo is used on CPU.
"""
from __future__ import annotations

import csv
import io
import math
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from timm.scheduler import CosineLRScheduler
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from ..checkpoints.builder import load_networks, save_model
from ..checkpoints.bundled import default_weights_path, missing_weights_message
from ..checkpoints.format import read_checkpoint, safe_torch_load
from ..data import build_dataset
from ..evaluation.metrics import evaluate_dataset
from ..inference.device import resolve_device
from ..models.dcmpnet import DCMPNet
from ..utils.depth_convention import CONVENTION, RELATIVE_DEPTH
from ..utils.fileio import atomic_torch_save, atomic_write_png, atomic_write_text
from ..utils.visualize import depth_to_color, to_uint8_rgb
from .config import TrainConfig, dump_train_config
from .task import TrainingTask

STATE_FORMAT = "dcmpnet_ros.train_state"
STATE_VERSION = 1
STATE_FILE = "train_state.pt"


class TrainError(RuntimeError):
    """A training run cannot start or continue; the message says why."""


# ------------------------------------------------------------------------------------ utilities
def make_scheduler(optimizer: torch.optim.Optimizer, total: int, lr_min: float, warmup: int = 0) -> Any:
    """Cosine learning-rate schedule (timm's ``CosineLRScheduler``), stepped per iteration.

    Linear warm-up from 1% of the base LR over ``warmup`` steps, then cosine decay to ``lr_min``
    at step ``total`` (and ``lr_min`` after).
    """
    base = optimizer.param_groups[0]["lr"]
    return CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=min(lr_min, base),
                             warmup_t=warmup, warmup_lr_init=0.01 * base if warmup > 0 else base,
                             warmup_prefix=True, t_in_epochs=False, cycle_limit=1)


def lr_at(step: int, total: int, base: float, lr_min: float, warmup: int = 0) -> float:
    """Learning rate of :func:`make_scheduler`'s schedule at 0-based ``step`` (for logs and tests)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = make_scheduler(opt, total, lr_min, warmup)
    sched.step_update(step)
    return opt.param_groups[0]["lr"]


class EpochSampler(Sampler[int]):
    """Shuffled indices for one process: a fixed permutation per (seed, epoch), full global batches only.

    Used instead of ``DistributedSampler`` (the same split of each permutation over processes)
    because a resumed run must be able to start in the middle of an epoch.

    With ``world`` processes of ``batch`` images each, global batch ``k`` is
    ``perm[k*world*batch : (k+1)*world*batch]`` and process ``rank`` takes every ``world``-th
    of it, so the union over processes is the same set of images a single process with batch
    ``world*batch`` would see.  ``set_epoch(epoch, start_step)`` skips the first steps (resume).
    """

    def __init__(self, n: int, batch: int, rank: int = 0, world: int = 1, seed: int = 0) -> None:
        self.n, self.batch, self.rank, self.world, self.seed = n, batch, rank, world, seed
        self.steps_per_epoch = n // (batch * world)
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)[: self.steps_per_epoch * self.batch * self.world]
        mine = perm.view(self.steps_per_epoch, self.batch * self.world)[:, self.rank::self.world]
        return iter(mine[self.start_step:].reshape(-1).tolist())

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.batch


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"name": np_state[0], "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                       "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_worker(_: int) -> None:
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


# ------------------------------------------------------------------------------------- trainer
class Trainer:
    """Train DCMPNet jointly (see :mod:`dcmpnet_core.train.task`) according to a :class:`TrainConfig`.

    ``train_set`` / ``val_set`` (items as :func:`dcmpnet_core.data.build_dataset` returns them)
    override the datasets named in ``cfg.data``.  ``resume`` is a ``train_state.pt`` file or a
    run directory.  Launched by ``torchrun``, it joins the process group from the environment.
    """

    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike, *, train_set: Dataset | None = None,
                 val_set: Dataset | None = None, resume: str | os.PathLike | None = None, overwrite: bool = False,
                 progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.progress = progress
        self._init_distributed()
        self.is_main = self.rank == 0
        self._check_out_dir(resume, overwrite)

        tc = cfg.train
        if tc.batch_size % self.world:
            raise TrainError(f"train.batch_size={tc.batch_size} must be divisible by the number of processes "
                             f"({self.world})")
        self.batch_per_rank = tc.batch_size // self.world
        if tc.threads > 0:
            torch.set_num_threads(tc.threads)
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed % 2 ** 32)
        random.seed(tc.seed)

        self.train_set, self.val_set = self._build_datasets(train_set, val_set)
        self.sampler = EpochSampler(len(self.train_set), self.batch_per_rank, self.rank, self.world, tc.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        if self.steps_per_epoch < 1:
            raise TrainError(f"the training set has {len(self.train_set)} images, fewer than one global batch "
                             f"(train.batch_size={tc.batch_size})")
        self.total_steps = tc.max_steps if tc.max_steps is not None else tc.epochs * self.steps_per_epoch
        self.loader = DataLoader(self.train_set, batch_size=self.batch_per_rank, sampler=self.sampler,
                                 num_workers=cfg.data.workers, pin_memory=self.device.type == "cuda",
                                 worker_init_fn=_seed_worker, drop_last=False,
                                 persistent_workers=cfg.data.workers > 0)

        self.model = DCMPNet(cfg.model, depth_kind=RELATIVE_DEPTH).to(self.device)
        if cfg.init_from:
            self._init_weights(cfg.init_from)
        if tc.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.bn_mode = self._resolve_bn()
        if self.bn_mode == "sync":
            self.model.dehaze_net = nn.SyncBatchNorm.convert_sync_batchnorm(self.model.dehaze_net)
        self.amp_dtype = self._resolve_amp()

        dehaze_module, depth_module = self.model.dehaze_net, self.model.depth_net
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            dehaze_module = DDP(self.model.dehaze_net, device_ids=ids)
            depth_module = DDP(self.model.depth_net, device_ids=ids)
        self.task = TrainingTask(self.model, cfg.loss, cfg.optim, dehaze_module=dehaze_module,
                                 depth_module=depth_module, amp_dtype=self.amp_dtype, ema_decay=tc.ema_decay,
                                 distributed=self.world > 1).to(self.device)
        self.schedulers = [make_scheduler(opt, self.total_steps, cfg.optim.lr_min, cfg.optim.warmup_steps)
                           for opt in (self.task.opt_dehaze, self.task.opt_depth)]

        self.step = 0
        self.best_psnr = -math.inf
        self.best_step = -1
        self.history: list[dict] = []
        self.skipped_nonfinite = 0
        self.train_seconds = 0.0
        self.writer = None
        if resume is not None:
            self._load_state(resume)

    # ------------------------------------------------------------------------------------ setup
    def _init_distributed(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want = str(self.cfg.train.device)
        try:
            device = resolve_device(want)
        except (ValueError, RuntimeError) as exc:
            raise TrainError(f"train.device: {exc}") from None
        if device.type == "cuda":
            if ":" not in want:                 # no index given: one GPU per torchrun process
                device = torch.device("cuda", self.local_rank if self.world > 1 else 0)
            torch.cuda.set_device(device)
        self.device = device
        self.owns_group = False
        if self.world > 1 and not (dist.is_available() and dist.is_initialized()):
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            self.owns_group = True

    def _check_out_dir(self, resume: Any, overwrite: bool) -> None:
        if resume is None and not overwrite and (self.out / STATE_FILE).exists():
            raise TrainError(f"{self.out} already holds a training run ({STATE_FILE}); pass --resume to continue it "
                             "or --overwrite to start again")
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)

    def _build_datasets(self, train_set: Dataset | None, val_set: Dataset | None) -> tuple[Dataset, Dataset | None]:
        dc = self.cfg.data
        if train_set is None:
            if dc.root is None:
                raise TrainError("no training data: set data.root (e.g. data.root=/path/to/RESIDE-IN)")

            kw = dict(layout=dc.layout, depth=dc.depth, depth_model=dc.depth_model,
                      depth_model_output=dc.depth_model_output, seed=self.cfg.train.seed)
            train_set = build_dataset(dc.root, split=dc.train_split, crop=dc.crop, augment=dc.augment,
                                      hflip_only=dc.hflip_only, **kw)
            if val_set is None:
                try:
                    # Validation scores images only: no depth targets to read or compute.
                    val_set = build_dataset(dc.root, split=dc.val_split, crop=None, augment=False,
                                            **dict(kw, depth="none", depth_model=None))
                except (FileNotFoundError, ValueError) as exc:
                    self._say(f"note: no validation set ({exc}); training without validation")
        if len(train_set) == 0:
            raise TrainError("the training set is empty")
        return train_set, val_set

    def _init_weights(self, path: str) -> None:
        if path == "default":               # the bundled default weights: each campaign round starts there
            found = default_weights_path()
            if found is None:
                raise TrainError(f"init_from: default: {missing_weights_message(dcp_hint=False)}")
            path = str(found)
        ckpt = read_checkpoint(path)
        load_networks(self.model, ckpt["dehaze_net"], ckpt["depth_net"], f"init_from {path!r}")
        if ckpt["depth_kind"] != RELATIVE_DEPTH:
            self._say(f"note: {path} has a DE network trained for {ckpt.get('depth_kind')}; training targets "
                      "are relative depth, so its output convention will be re-learned")

    def _resolve_bn(self) -> str:
        mode = self.cfg.train.bn
        if mode == "auto":
            return "sync" if self.world > 1 and self.device.type == "cuda" else "batch"
        if mode == "sync" and self.device.type != "cuda":
            raise TrainError("train.bn=sync needs CUDA devices (SyncBatchNorm); use batch or frozen on CPU")
        return mode

    def _resolve_amp(self) -> torch.dtype | None:
        mode = self.cfg.train.amp
        if self.device.type != "cuda":
            if mode == "bf16":
                return torch.bfloat16          # CPU autocast: worthwhile on CPUs with AMX / AVX512-BF16
            if mode == "fp16":
                self._say(f"note: train.amp=fp16 applies to CUDA only; training in float32 on {self.device}")
            return None
        if mode == "off":
            return None
        if mode == "auto":
            mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return torch.bfloat16 if mode == "bf16" else torch.float16

    def _say(self, msg: str) -> None:
        if self.rank == 0:
            tqdm.write(msg, file=sys.stderr)

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.bn_mode == "frozen":
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    # --------------------------------------------------------------------------------- training
    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Schedule, move one (per-process) batch to the device, let the task take one step; returns the terms."""
        for sched in self.schedulers:
            sched.step_update(self.step)
        batch = {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                 for k, v in batch.items()}
        if self.cfg.train.channels_last:
            batch = {k: (v.contiguous(memory_format=torch.channels_last)
                         if isinstance(v, torch.Tensor) and v.dim() == 4 else v) for k, v in batch.items()}
        result = self.task.optimize(batch)
        if result.skipped:
            self.skipped_nonfinite += 1
            self._say(f"warning: non-finite loss at step {self.step}; batch skipped "
                      f"({self.skipped_nonfinite} so far)")
            if self.skipped_nonfinite > 50:
                raise TrainError("more than 50 batches had non-finite losses; lower optim.lr_* or set train.amp=off")
        self.step += 1
        out = dict(result.terms)
        out["lr_dehaze"] = self.task.opt_dehaze.param_groups[0]["lr"]
        out["lr_depth"] = self.task.opt_depth.param_groups[0]["lr"]
        return out

    def _val_due(self) -> bool:
        vc = self.cfg.val
        if self.val_set is None:
            return False
        if self.step >= self.total_steps:
            return True
        if vc.every_steps > 0:
            return self.step % vc.every_steps == 0
        return self.step % self.steps_per_epoch == 0 and (self.step // self.steps_per_epoch) % vc.every_epochs == 0

    def fit(self) -> dict:
        """Train to ``total_steps`` (continuing a resumed run); returns a summary dict."""
        if self.is_main:
            atomic_write_text(self.out / "config.yaml", dump_train_config(self.cfg))
            self._open_writer()
        self._say(f"training {self.total_steps} steps ({self.steps_per_epoch} per epoch, global batch "
                  f"{self.cfg.train.batch_size} on {self.world} x {self.device}, amp "
                  f"{self.amp_dtype or 'off'}, bn {self.bn_mode}) -> {self.out}")
        first_step, started = self.step, time.perf_counter()
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True, smoothing=0.05,
                   disable=not (self.progress and self.is_main), desc="train")
        last_saved = self.step
        try:
            while self.step < self.total_steps:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_epoch(epoch, start)
                self._set_train_mode()
                t0 = time.perf_counter()
                for batch in self.loader:
                    terms = self.train_step(batch)
                    bar.update(1)
                    if self.step % self.cfg.train.log_every == 0 or self.step == 1:
                        bar.set_postfix(dehaze=f"{terms['loss_dehaze']:.4f}", depth=f"{terms['loss_depth']:.4f}",
                                        lr=f"{terms['lr_dehaze']:.2e}", refresh=False)
                        self._log_scalars("train", terms)
                        if not self.progress:          # no bar (e.g. logs to a file): one line instead
                            rate = (self.step - first_step) / max(time.perf_counter() - started, 1e-9)
                            eta = (self.total_steps - self.step) / max(rate, 1e-9)
                            self._say(f"step {self.step}/{self.total_steps}  loss_dehaze {terms['loss_dehaze']:.4f}"
                                      f"  loss_depth {terms['loss_depth']:.4f}  lr {terms['lr_dehaze']:.2e}"
                                      f"  {rate:.2f} steps/s  ETA {eta / 60:.1f} min")
                    validated = False
                    if self._val_due():
                        self.train_seconds += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        self.validate_and_save()
                        self._set_train_mode()
                        validated = True
                        last_saved = self.step
                    if not validated and self.step - last_saved >= self.cfg.train.checkpoint_every:
                        self.save(improved=False)
                        last_saved = self.step
                    if self.step >= self.total_steps:
                        break
                self.train_seconds += time.perf_counter() - t0
            if last_saved != self.step:
                self.save(improved=False)
        except KeyboardInterrupt:
            bar.close()
            self._say(f"interrupted at step {self.step}; the last checkpoint ({self.out / STATE_FILE}, step "
                      f"{last_saved}) is intact: continue with --resume {self.out}")
            raise
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        summary = {"step": self.step, "epochs": self.step / self.steps_per_epoch, "best_psnr": self.best_psnr,
                   "best_step": self.best_step, "out": str(self.out), "train_seconds": self.train_seconds}
        if self.history:
            summary.update(last_psnr=self.history[-1]["psnr"], last_ssim=self.history[-1]["ssim"])
        return summary

    def close(self) -> None:
        """Leave the process group if this trainer created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False

    # ------------------------------------------------------------------------------- validation
    @property
    def eval_model(self) -> DCMPNet:
        """The weights used for validation and checkpoints: the EMA when enabled."""
        return self.task.eval_model

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR/SSIM over the validation set (split over processes), full images, batch 1, fp32, clamped."""
        model = self.eval_model
        was_training = model.training
        model.eval()
        n = len(self.val_set)
        if self.cfg.val.max_images:
            n = min(n, self.cfg.val.max_images)

        def preview(i: int, item: Mapping[str, Any], out: torch.Tensor) -> None:
            if i != 0 or not self.is_main or not self.cfg.val.preview:
                return
            out = out.clamp(-1, 1)
            depth = model.depth_net.predict(out)[0, 0].float().cpu().numpy()
            row = np.concatenate([to_uint8_rgb(item["hazy"]), to_uint8_rgb(out[0]), to_uint8_rgb(item["clear"]),
                                  depth_to_color(depth)], axis=1)
            atomic_write_png(self.out / "previews" / f"step_{self.step:07d}.png", row)

        records = evaluate_dataset(lambda x: model.dehaze_net(x).dehazed, self.val_set,
                                   range(self.rank, n, self.world), self.device, self.cfg.val.full_res_ssim,
                                   hazy_baseline=False, callback=preview)
        # Identical images give an infinite PSNR; cap it so one of them cannot swamp the mean.
        sums = torch.tensor([sum(min(r["psnr"], 100.0) for r in records), sum(r["ssim"] for r in records),
                             float(len(records))], dtype=torch.float64)
        if self.world > 1:
            sums = sums.to(self.device)
            dist.all_reduce(sums)
            sums = sums.cpu()
        model.train(was_training)
        count = max(1.0, float(sums[2]))
        return {"psnr": float(sums[0]) / count, "ssim": float(sums[1]) / count, "images": int(sums[2])}

    def validate_and_save(self) -> dict[str, float]:
        metrics = self.validate()
        improved = metrics["psnr"] > self.best_psnr
        if improved:
            self.best_psnr, self.best_step = metrics["psnr"], self.step
        record = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4), "psnr": metrics["psnr"],
                  "ssim": metrics["ssim"], "images": metrics["images"], "best_psnr": self.best_psnr}
        self.history.append(record)
        self._log_scalars("val", {"psnr": metrics["psnr"], "ssim": metrics["ssim"]})
        self._say(f"step {self.step} (epoch {record['epoch']:.2f}): val PSNR {metrics['psnr']:.3f} dB, SSIM "
                  f"{metrics['ssim']:.4f} on {metrics['images']} images (best {self.best_psnr:.3f} dB at step "
                  f"{self.best_step})")
        self.save(improved=improved, metrics=metrics)
        return metrics

    # ------------------------------------------------------------------------------ checkpoints
    def _meta(self, metrics: Mapping[str, float] | None) -> dict:
        meta = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                "depth_convention": CONVENTION, "weights": "ema" if self.task.ema is not None else "raw",
                "source": "dcmpnet train"}
        if metrics:
            meta.update(psnr=float(metrics["psnr"]), ssim=float(metrics["ssim"]))
        return meta

    def state_dict(self) -> dict:
        """The resumable training state: tensors and plain containers only."""
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION,
            "step": self.step, "epoch": self.step // self.steps_per_epoch, "total_steps": self.total_steps,
            "world_size": self.world, "batch_size": self.cfg.train.batch_size,
            "best_psnr": self.best_psnr, "best_step": self.best_step, "history": list(self.history),
            "skipped_nonfinite": self.skipped_nonfinite, "train_seconds": self.train_seconds,
            "config": self.cfg.to_dict(),
            "dehaze_net": self.model.dehaze_net.state_dict(), "depth_net": self.model.depth_net.state_dict(),
            **self.task.state_dict(),           # opt_dehaze, opt_depth, scaler, ema
            "rng": _rng_state(),
        }

    def save(self, improved: bool, metrics: Mapping[str, float] | None = None) -> None:
        """Write last.pt (+ best.pt when ``improved``), train_state.pt and val_log.csv (rank 0 only)."""
        if not self.is_main:
            return
        meta = self._meta(metrics)
        model = self.eval_model
        save_model(model, self.out / "last.pt", meta)
        if improved:
            save_model(model, self.out / "best.pt", meta)
        atomic_torch_save(self.state_dict(), self.out / STATE_FILE)
        if self.history:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(self.history[0]))
            w.writeheader()
            w.writerows(self.history)
            atomic_write_text(self.out / "val_log.csv", buf.getvalue())

    def _load_state(self, resume: str | os.PathLike) -> None:
        path = Path(resume)
        if path.is_dir():
            path = path / STATE_FILE
        state = safe_torch_load(path, map_location="cpu")
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise TrainError(f"{path} is not a dcmpnet training state (expected {STATE_FILE} written by dcmpnet train;"
                             " a model checkpoint can start a new run with init_from=PATH)")
        if state.get("version") != STATE_VERSION:
            raise TrainError(f"{path} has training-state version {state.get('version')!r}; expected {STATE_VERSION}")
        if state["batch_size"] != self.cfg.train.batch_size:
            raise TrainError(f"{path} was trained with train.batch_size={state['batch_size']}, the config says "
                             f"{self.cfg.train.batch_size}: the data order and schedule would not continue")
        load_networks(self.model, state["dehaze_net"], state["depth_net"], str(path))
        if self.task.ema is not None and state.get("ema") is None:
            self._say("note: the resumed state has no EMA; starting the EMA from the current weights")
        self.task.load_state_dict(state)
        self.step = int(state["step"])
        self.best_psnr = float(state["best_psnr"])
        self.best_step = int(state["best_step"])
        self.history = [dict(h) for h in state.get("history", [])]
        self.skipped_nonfinite = int(state.get("skipped_nonfinite", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        _set_rng_state(state["rng"])
        if state["total_steps"] != self.total_steps:
            self._say(f"note: the run had {state['total_steps']} steps planned, now {self.total_steps}; the cosine "
                      "schedule follows the new length")
        self._say(f"resumed {path} at step {self.step}")

    # ---------------------------------------------------------------------------------- logging
    def _open_writer(self) -> None:
        try:
            # optional: tensorboard (the [tensorboard] extra) only when train.tensorboard is on
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self._say("note: tensorboard is not installed; no TensorBoard scalars (pip install tensorboard)")
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.writer = SummaryWriter(log_dir=str(self.out / "tb"), purge_step=self.step or None)

    def _log_scalars(self, prefix: str, values: Mapping[str, float]) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(f"{prefix}/{k}", v, self.step)


def train(cfg: TrainConfig, out_dir: str | os.PathLike, resume: str | os.PathLike | None = None,
          overwrite: bool = False, train_set: Dataset | None = None, val_set: Dataset | None = None,
          progress: bool = True) -> dict:
    """Build a :class:`Trainer`, run it to the end and leave the process group; returns its summary."""
    trainer = Trainer(cfg, out_dir, train_set=train_set, val_set=val_set, resume=resume, overwrite=overwrite,
                      progress=progress)
    try:
        return trainer.fit()
    finally:
        trainer.close()


__all__: Sequence[str] = ("Trainer", "TrainError", "train", "lr_at", "make_scheduler", "EpochSampler")
