"""``dcmpnet train``: joint training of the dehazing and DE networks from a YAML config."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..train.recipes import resolve_recipe
from .common import CommandError

EPILOG = """examples:
  dcmpnet train synthetic --data data/synth --out runs/synth
  dcmpnet train --config synthetic --max-steps 300 --data data/synth --out runs/short
  dcmpnet train its --out runs/its data.root=data/RESIDE-IN train.ema_decay=0.999
  dcmpnet train my_recipe.yaml --data data/synth --out runs/mine   # a YAML file of your own
  dcmpnet train --resume runs/its                       # continue where it stopped
  torchrun --standalone --nproc_per_node 4 -m dcmpnet_ros.cli train its --out runs/its4

bundled recipes (dcmpnet_core/train/recipes/NAME.yaml): default, its, ots, synthetic
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train DCMPNet (dehazing + DE networks, jointly) from a YAML config",
                       description="Train DCMPNet's dehazing and depth-estimation networks jointly. Settings come "
                                   "from CONFIG (a training YAML file, or the name of a bundled recipe: default, "
                                   "its, ots, synthetic) and KEY=VALUE overrides with dotted keys "
                                   "(optim.lr_dehaze=2e-4 data.crop=128 model=tiny).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="*", metavar="CONFIG|KEY=VALUE",
                   help="a training YAML or bundled recipe name (at most one) and dotted overrides")
    p.add_argument("--config", "-c", dest="config", type=Path, metavar="CONFIG",
                   help="the training YAML or bundled recipe name (the same as giving it as the first argument)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimiser steps (train.max_steps=N)")
    p.add_argument("--out", type=Path, help="run directory for checkpoints, logs and previews "
                                            "(default with --resume: the resumed run's directory)")
    p.add_argument("--data", help="dataset root (same as data.root=...)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (same as train.device=...)")
    p.add_argument("--resume", type=Path, metavar="STATE",
                   help="continue a run: its train_state.pt or its directory (the config saved there is used "
                        "unless CONFIG is given)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out that already holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(handler=run, extra_positionals="items")


def _split_items(items: list[str]) -> tuple[Path | None, list[str]]:
    configs = [i for i in items if "=" not in i]
    overrides = [i for i in items if "=" in i]
    if len(configs) > 1:
        raise CommandError(f"expected at most one CONFIG file, got {configs}; overrides look like KEY=VALUE")
    return (Path(configs[0]) if configs else None), overrides


def run(args: argparse.Namespace) -> int:
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..checkpoints.format import safe_torch_load
    from ..checkpoints.upstream import CheckpointError
    from ..models.config import ConfigError

    config_path, overrides = _split_items(args.items)
    if args.config is not None:
        if config_path is not None and config_path != args.config:
            raise CommandError(f"two training configs: {config_path} and --config {args.config}; give one")
        config_path = args.config
    if args.max_steps is not None:
        if args.max_steps <= 0:
            raise CommandError(f"--max-steps: expected a positive integer, got {args.max_steps}")
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    out = args.out
    if out is None:
        if args.resume is None:
            raise CommandError("--out DIR is required (where checkpoints and logs go)")
        out = args.resume if args.resume.is_dir() else args.resume.parent
    if config_path is None and args.resume is None:
        raise CommandError("give a training CONFIG (a YAML file or a bundled recipe, e.g. synthetic) or --resume a run")
    if config_path is not None:
        try:
            config_path = resolve_recipe(config_path)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None

    # here, not at the top: `dcmpnet --help` must not import torch
    from ..train.config import load_train_config, train_config_from_dict
    from ..train.loop import STATE_FILE, TrainError, train

    try:
        if config_path is not None:
            cfg = load_train_config(config_path, overrides)
        else:
            state_path = args.resume / STATE_FILE if args.resume.is_dir() else args.resume
            state = safe_torch_load(state_path)
            if not isinstance(state, dict) or "config" not in state:
                raise CommandError(f"{state_path} is not a dcmpnet training state (no saved config)")
            cfg = train_config_from_dict(state["config"], overrides)
            del state
        summary = train(cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    except (ConfigError, TrainError, CheckpointError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:          # dataset errors (dcmpnet_core.data.DatasetError is a ValueError)
        raise CommandError(str(exc)) from None


    if int(os.environ.get("RANK", "0")) == 0:
        best = (f"best val PSNR {summary['best_psnr']:.3f} dB at step {summary['best_step']}"
                if summary.get("best_step", -1) >= 0 else "no validation")
        print(f"trained {summary['step']} steps ({summary['epochs']:.2f} epochs, "
              f"{summary['train_seconds']:.1f} s of training): {best}")
        print(f"checkpoints: {Path(out) / 'last.pt'}" + (f", {Path(out) / 'best.pt'}" if summary["best_step"] >= 0
                                                         else ""))
    return 0
