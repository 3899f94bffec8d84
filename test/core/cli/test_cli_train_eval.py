"""``dcmpnet train`` then ``dcmpnet eval``, end to end in real subprocesses, on real photos written to disk."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hazy_photos import write_pairs_layout
from skimage.metrics import peak_signal_noise_ratio

ROOT = Path(__file__).resolve().parents[3]

FAST = ["train.max_steps=3", "train.batch_size=2", "data.crop=32", "data.workers=0", "val.every_steps=3",
        "val.max_images=2", "train.checkpoint_every=100"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "2"
    return env


def _dcmpnet(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dcmpnet_ros.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=timeout)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_pairs_layout(tmp_path_factory.mktemp("data") / "photos", train=6, test=2, size=40)


def test_train_then_eval(dataset, tmp_path):
    run = tmp_path / "run"
    # timm's / BasicSR's spelling: --config FILE --max-steps N (the positional form is tested below)
    fast = [f for f in FAST if not f.startswith("train.max_steps=")]
    res = _dcmpnet("train", "--config", "synthetic", "--max-steps", 3, "--data", dataset,
                   "--out", run, "--no-progress", *fast)
    assert res.returncode == 0, res.stderr
    assert "trained 3 steps" in res.stdout and "val PSNR" in res.stderr
    for name in ("best.pt", "last.pt", "train_state.pt", "config.yaml", "val_log.csv"):
        assert (run / name).is_file(), name

    # Continue the same run for two more steps, with the config saved in the state.
    more = _dcmpnet("train", "--resume", run, "train.max_steps=5", "--no-progress")
    assert more.returncode == 0, more.stderr
    assert "resumed" in more.stderr and "trained 5 steps" in more.stdout

    out = tmp_path / "eval"
    ev = _dcmpnet("eval", "--weights", run / "last.pt", "--data", dataset, "--out", out, "--save-images")
    assert ev.returncode == 0, ev.stderr
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert [list(r) for r in rows[:1]] == [["name", "psnr", "ssim", "hazy_psnr", "hazy_ssim"]] and len(rows) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2
    assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=1e-3)
    assert f"PSNR {summary['psnr']:.3f} dB" in ev.stdout

    # The plain network forward scores the same as the inference engine in fp32.
    net = _dcmpnet("eval", "--weights", run / "last.pt", "--data", dataset, "--engine", "network")
    assert net.returncode == 0, net.stderr
    assert f"PSNR {summary['psnr']:.3f} dB" in net.stdout

    # The hazy baseline, recomputed independently from the files on disk.
    for r in rows:
        hazy = cv2.imread(str(dataset / "test" / "hazy" / f"{r['name']}.png"))[..., ::-1] / 255.0
        clear = cv2.imread(str(dataset / "test" / "GT" / f"{r['name']}.png"))[..., ::-1] / 255.0
        assert float(r["hazy_psnr"]) == pytest.approx(peak_signal_noise_ratio(clear, hazy, data_range=1), abs=1e-3)
    # The dehazed score, recomputed from the checkpoint in this process.
    from dcmpnet_core.checkpoints.builder import load_model
    from dcmpnet_core.evaluation.metrics import psnr, to_unit

    loaded = load_model(run / "last.pt")
    model = loaded.model
    assert loaded.meta["step"] == 5
    r = rows[0]
    hazy = cv2.imread(str(dataset / "test" / "hazy" / f"{r['name']}.png"))[..., ::-1].astype(np.float32) / 127.5 - 1
    clear = cv2.imread(str(dataset / "test" / "GT" / f"{r['name']}.png"))[..., ::-1].astype(np.float32) / 127.5 - 1
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    with torch.no_grad():
        out_img = model.dehaze_net(to_t(hazy)).dehazed
    assert float(r["psnr"]) == pytest.approx(psnr(to_unit(out_img), to_unit(to_t(clear))).item(), abs=2e-3)
    saved = cv2.imread(str(out / "images" / f"{r['name']}.png"))
    assert saved is not None and saved.shape == (40, 40, 3)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_torchrun_two_processes(dataset, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dcmpnet_ros.cli", "train", "synthetic", "--data", str(dataset), "--out", str(run),
           "--no-progress", "train.bn=frozen", *FAST]
    env = _env()
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("trained 3 steps") == 1            # only rank 0 prints
    assert "on 2 x cpu" in res.stderr
    assert (run / "best.pt").is_file() and (run / "train_state.pt").is_file()


def test_cli_errors(tmp_path):
    res = _dcmpnet("train", "synthetic", "--out", tmp_path / "r", "optim.lr=1")
    assert res.returncode == 2 and "config.optim.lr: unknown key; known: name, lr_dehaze" in res.stderr
    res = _dcmpnet("train", "--out", tmp_path / "r")
    assert res.returncode == 2 and "give a training CONFIG" in res.stderr
    recipe_file = ROOT / "dcmpnet_core" / "train" / "recipes" / "synthetic.yaml"     # a path works as well as a name
    res = _dcmpnet("train", recipe_file, "--out", tmp_path / "r")
    assert res.returncode == 2 and "data.root" in res.stderr
    res = _dcmpnet("train", "synthetc", "--out", tmp_path / "r")
    assert res.returncode == 2 and ("training config 'synthetc' is neither a file nor a bundled recipe "
                                    "(recipes: default, its, ots, synthetic)") in res.stderr
    res = _dcmpnet("train", "a.yaml", "b.yaml", "--out", tmp_path / "r")
    assert res.returncode == 2 and "at most one CONFIG" in res.stderr
    res = _dcmpnet("train", "a.yaml", "--config", "b.yaml", "--out", tmp_path / "r")
    assert res.returncode == 2 and "two training configs: a.yaml and --config b.yaml" in res.stderr
    res = _dcmpnet("train", "--config", "synthetic", "--max-steps", 0, "--out", tmp_path / "r")
    assert res.returncode == 2 and "--max-steps: expected a positive integer, got 0" in res.stderr
    res = _dcmpnet("eval", "--weights", tmp_path / "missing.pt", "--data", tmp_path)
    assert res.returncode == 2 and "missing.pt does not exist" in res.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = _dcmpnet("eval", "--weights", bad, "--data", tmp_path)
    assert res.returncode == 2 and "not a PyTorch checkpoint" in res.stderr
    assert "Traceback" not in res.stderr
