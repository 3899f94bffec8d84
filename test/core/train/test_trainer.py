"""The training loop: learning, schedule, checkpoints, resume, interruption, config files."""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import cv2
import pytest
import torch
from hazy_photos import HazyPhotoPairs, batch_of, no_onednn

from dcmpnet_core import DCMPNet
from dcmpnet_core.checkpoints.builder import load_model, save_model
from dcmpnet_core.checkpoints.format import safe_torch_load
from dcmpnet_core.models.config import ConfigError
from dcmpnet_core.train.config import load_train_config, train_config_from_dict
from dcmpnet_core.train.loop import STATE_FILE, EpochSampler, Trainer, TrainError, lr_at
from dcmpnet_core.train.recipes import RECIPES_DIR, recipe_names, resolve_recipe
from dcmpnet_core.utils.depth_convention import CONVENTION

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True, scope="module")
def _no_onednn():
    yield from no_onednn()


def _cfg(**sections):
    raw = {"model": "tiny", "data": {"workers": 0},
           "train": {"batch_size": 2, "max_steps": 4, "device": "cpu", "log_every": 1, "checkpoint_every": 2},
           "val": {"every_steps": 2, "max_images": 2}}
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return train_config_from_dict(raw)


class InterruptAfter(torch.utils.data.Dataset):
    """Raises KeyboardInterrupt (as Ctrl-C would) once ``n`` items have been read."""

    def __init__(self, base, n):
        self.base, self.n, self.reads = base, n, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.n:
            raise KeyboardInterrupt
        return self.base[i]


def test_a_few_steps_on_one_batch_lower_both_losses(tmp_path):
    cfg = _cfg(optim={"lr_dehaze": 1e-3, "lr_depth": 1e-3, "lr_min": 1e-3})
    tr = Trainer(cfg, tmp_path, train_set=HazyPhotoPairs(4, 32), progress=False)
    batch = batch_of(tr.train_set, [0, 1])
    tr._set_train_mode()
    first = tr.train_step(batch)
    for _ in range(4):
        last = tr.train_step(batch)
    assert tr.step == 5
    assert last["loss_dehaze"] < first["loss_dehaze"]
    assert last["loss_depth"] < first["loss_depth"]


def test_lr_schedule():
    assert lr_at(0, 100, 1e-4, 1e-6) == pytest.approx(1e-4)
    assert lr_at(50, 100, 1e-4, 1e-6) == pytest.approx(1e-6 + 0.5 * (1e-4 - 1e-6))
    assert lr_at(100, 100, 1e-4, 1e-6) == pytest.approx(1e-6)
    assert lr_at(500, 100, 1e-4, 1e-6) == pytest.approx(1e-6)
    # Linear warm-up from 1% of the base rate, then the cosine over the remaining steps.
    assert [lr_at(s, 100, 1.0, 0.0, warmup=4) for s in range(4)] == pytest.approx([0.01, 0.2575, 0.505, 0.7525])
    assert lr_at(4, 100, 1.0, 0.0, warmup=4) == pytest.approx(1.0)
    assert lr_at(52, 100, 1.0, 0.0, warmup=4) == pytest.approx(0.5)
    values = [lr_at(s, 100, 1.0, 0.1, warmup=4) for s in range(4, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_epoch_sampler_splits_global_batches():
    single = list(EpochSampler(10, 4, 0, 1, seed=3))
    r0, r1 = list(EpochSampler(10, 2, 0, 2, seed=3)), list(EpochSampler(10, 2, 1, 2, seed=3))
    assert len(single) == 8 and len(r0) == len(r1) == 4               # 2 full global batches of 4
    for k in range(2):
        assert sorted(single[4 * k:4 * k + 4]) == sorted(r0[2 * k:2 * k + 2] + r1[2 * k:2 * k + 2])
    s = EpochSampler(10, 4, seed=3)
    s.set_epoch(0, start_step=1)
    assert list(s) == single[4:] and len(s) == 4
    s.set_epoch(1)
    assert list(s) != single


def test_train_validate_checkpoint_interrupt_and_resume(tmp_path):
    """One uninterrupted run against one interrupted by Ctrl-C after step 2 and resumed."""
    cfg = _cfg(train={"ema_decay": 0.9})
    train_set, val_set = HazyPhotoPairs(8, 32), HazyPhotoPairs(2, 32, offset=50)

    ref = Trainer(cfg, tmp_path / "ref", train_set=train_set, val_set=val_set, progress=False)
    summary = ref.fit()
    assert summary["step"] == 4 and summary["best_step"] in (2, 4)

    # Interrupted after two steps (4 images): the checkpoint of step 2 stays as written.
    run = tmp_path / "run"
    broken = Trainer(cfg, run, train_set=InterruptAfter(train_set, 4), val_set=val_set, progress=False)
    with pytest.raises(KeyboardInterrupt):
        broken.fit()
    state = safe_torch_load(run / STATE_FILE)
    assert state["step"] == 2 and broken.step == 2
    assert load_model(run / "last.pt").meta["step"] == 2
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))

    # Starting again in the same directory without --resume is refused.
    with pytest.raises(TrainError, match="--resume"):
        Trainer(cfg, run, train_set=train_set, progress=False)

    resumed = Trainer(cfg, run, train_set=train_set, val_set=val_set, resume=run, progress=False)
    assert resumed.step == 2
    for opt, key in ((resumed.task.opt_dehaze, "opt_dehaze"), (resumed.task.opt_depth, "opt_depth")):
        saved = state[key]["state"]
        assert set(opt.state_dict()["state"]) == set(saved)
        for idx, entry in opt.state_dict()["state"].items():
            for name, value in entry.items():
                torch.testing.assert_close(value, saved[idx][name], rtol=0, atol=0)
    torch.testing.assert_close(resumed.task.ema.module.state_dict(), state["ema"]["module"], rtol=0, atol=0)
    resumed.fit()
    assert resumed.step == 4
    # The resumed run ends where the uninterrupted one did.
    for a, b in ((ref.model, resumed.model), (ref.task.ema.module, resumed.task.ema.module)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=name)
    assert [h["step"] for h in resumed.history] == [2, 4]


def test_run_directory_contents(tmp_path):
    cfg = _cfg(train={"ema_decay": 0.5, "max_steps": 2}, val={"every_steps": 2})
    tr = Trainer(cfg, tmp_path, train_set=HazyPhotoPairs(4, 32), val_set=HazyPhotoPairs(2, 32, offset=50),
                 progress=False)
    tr.fit()
    loaded = load_model(tmp_path / "best.pt")
    best, meta = loaded.model, loaded.meta
    assert meta["step"] == 2 and meta["depth_convention"] == CONVENTION and meta["weights"] == "ema"
    assert math.isfinite(meta["psnr"]) and 0 < meta["ssim"] < 1 and best.depth_kind == "relative_depth"
    # Saved weights are the EMA, not the raw weights.
    ema_sd = tr.task.ema.module.dehaze_net.state_dict()
    for k, v in best.dehaze_net.state_dict().items():
        torch.testing.assert_close(v, ema_sd[k])
    raw = safe_torch_load(tmp_path / STATE_FILE)["dehaze_net"]
    assert any(not torch.equal(raw[k], v) for k, v in best.dehaze_net.state_dict().items())
    # The resolved config loads back to the same config.
    assert load_train_config(tmp_path / "config.yaml") == cfg
    rows = list(csv.DictReader((tmp_path / "val_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [2] and float(rows[0]["psnr"]) == pytest.approx(meta["psnr"])
    preview = cv2.imread(str(tmp_path / "previews" / "step_0000002.png"))
    assert preview.shape == (32, 4 * 32, 3)          # hazy | dehazed | clear | depth
    assert (tmp_path / "tb").is_dir() and any((tmp_path / "tb").iterdir())


def test_no_valid_depth_leaves_the_de_network_alone(tmp_path):
    tr = Trainer(_cfg(), tmp_path, train_set=HazyPhotoPairs(4, 32, invalid_depth=True), progress=False)
    before_de = {k: v.clone() for k, v in tr.model.depth_net.state_dict().items()}
    before_dh = {k: v.clone() for k, v in tr.model.dehaze_net.state_dict().items()}
    tr._set_train_mode()
    terms = tr.train_step(batch_of(tr.train_set, [0, 1]))
    assert terms["loss_depth"] == 0.0
    for k, v in tr.model.depth_net.state_dict().items():
        assert torch.equal(v, before_de[k]), k
    assert tr.task.opt_depth.state_dict()["state"] == {}
    assert any(not torch.equal(v, before_dh[k]) for k, v in tr.model.dehaze_net.state_dict().items())


def test_setup_errors(tmp_path):
    with pytest.raises(TrainError, match="fewer than one global batch"):
        Trainer(_cfg(train={"batch_size": 8}), tmp_path / "b", train_set=HazyPhotoPairs(4, 32), progress=False)
    with pytest.raises(TrainError, match="data.root"):
        Trainer(_cfg(), tmp_path / "c", progress=False)
    model_file = tmp_path / "model.pt"
    save_model(DCMPNet("tiny"), model_file)
    with pytest.raises(TrainError, match="not a dcmpnet training state"):
        Trainer(_cfg(), tmp_path / "d", train_set=HazyPhotoPairs(4, 32), resume=model_file, progress=False)
    with pytest.raises(TrainError, match="CUDA"):
        Trainer(_cfg(train={"bn": "sync"}), tmp_path / "e", train_set=HazyPhotoPairs(4, 32), progress=False)


def test_global_batch_must_split_over_processes(tmp_path, monkeypatch):
    # As under torchrun with 2 processes; the check comes before any collective call.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    with pytest.raises(TrainError, match="batch_size=3 must be divisible by the number of processes"):
        Trainer(_cfg(train={"batch_size": 3}), tmp_path, train_set=HazyPhotoPairs(4, 32), progress=False)


def test_config_files_and_overrides(tmp_path):
    cfg = load_train_config(RECIPES_DIR / "its.yaml")
    assert (cfg.train.batch_size, cfg.data.crop, cfg.optim.name, cfg.optim.lr_dehaze, cfg.optim.lr_min) == \
        (8, 256, "adam", 1e-4, 1e-6)
    assert cfg.train.epochs == 600 and cfg.model.dehaze.depths == (8, 8, 8, 4, 4)
    assert load_train_config(resolve_recipe("ots")).train.epochs == 30
    syn = load_train_config(resolve_recipe("synthetic"), ["optim.lr_dehaze=2e-4", "data.crop=128", "train.amp=off",
                                                          "model.depth.growth=2"])
    assert syn.optim.lr_dehaze == 2e-4 and syn.data.crop == 128 and syn.train.amp == "off"
    assert syn.model.depth.growth == 2 and syn.model.dehaze.embed_dims == (8, 16, 24, 16, 8)     # tiny + override
    with pytest.raises(ConfigError, match=r"yaml: config\.optim\.lr: unknown key; known: name, lr_dehaze"):
        load_train_config(RECIPES_DIR / "synthetic.yaml", ["optim.lr=2e-4"])
    with pytest.raises(ConfigError, match=r"^config\.data\.crop: expected int, got float 12\.5"):
        load_train_config(None, ["data.crop=12.5"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_train_config(None, ["optim.lr_dehaze"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: 8\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: config\.train\.epoch: unknown key; known: batch_size, epochs"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="model variant"):
        load_train_config(None, ["model=huge"])


def test_bundled_recipes_are_package_data_and_load(tmp_path):
    """The recipes ship inside the package (config/ holds ROS parameter files only); names or paths select them."""
    assert recipe_names() == ["default", "its", "ots", "synthetic"]
    for name in recipe_names():
        assert resolve_recipe(name) == RECIPES_DIR / f"{name}.yaml"
        load_train_config(resolve_recipe(name))
    own = tmp_path / "synthetic"                      # an existing file wins over a recipe of the same name
    own.write_text("model: tiny\n")
    assert resolve_recipe(own) == own
    with pytest.raises(FileNotFoundError, match=r"'its.yml' is neither a file nor a bundled recipe \(recipes: default"):
        resolve_recipe("its.yml")
    setup = (ROOT / "setup.py").read_text()
    assert '"train/recipes/*.yaml"' in setup
    package_data = re.search(r"package_data=\{\"dcmpnet_core\": \[([^\]]*)\]", setup)[1]
    for pattern in re.findall(r'"([^"]+)"', package_data):        # every listed pattern matches a real file
        assert list((ROOT / "dcmpnet_core").glob(pattern)), pattern
    assert sorted(p.name for p in (ROOT / "config").glob("*.yaml")) == ["dehaze.yaml", "dehaze_cpu_live.yaml"]

