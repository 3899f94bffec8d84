"""The default-weights campaign: a candidate replaces the bundled weights only when the benchmark improves."""
from __future__ import annotations

import shutil

import pytest
import torch
from hazy_photos import quarter_motorcycle_pairs

from dcmpnet_core import DCMPNet
from dcmpnet_core.checkpoints.builder import load_model, save_model
from dcmpnet_core.checkpoints.bundled import DEFAULT_WEIGHTS
from dcmpnet_core.cli import run as cli_run
from dcmpnet_core.evaluation.quality import QualityReport, Score
from dcmpnet_core.train.campaign import compare, promote, rounds_of


def _report(psnr: dict) -> QualityReport:
    """Hazy densities scored for the network, clear frames for the shipped engine (what compare reads)."""
    return QualityReport([Score(f"x_{d}", "x", d, "network" if d != "none" else "dcmpnet", v, 0.9, 0.5)
                          for d, v in psnr.items()])


def test_better_means_every_density_higher_and_clear_frames_not_lower():
    cur = _report({"none": 20.0, "light": 22.0, "medium": 19.0, "dense": 15.0})
    assert compare(_report({"none": 20.0, "light": 22.5, "medium": 19.1, "dense": 15.2}), cur).better
    assert not compare(_report({"none": 19.9, "light": 23.0, "medium": 20.0, "dense": 16.0}), cur).better
    worse_dense = compare(_report({"none": 25.0, "light": 23.0, "medium": 20.0, "dense": 15.0}), cur)
    assert not worse_dense.better and "[NOT better] dense haze PSNR: 15.00 dB (current 15.00 dB)" in worse_dense.lines


@pytest.fixture(scope="module")
def pairs():
    return quarter_motorcycle_pairs()


def test_promote_keeps_the_target_unless_the_candidate_is_better(tmp_path, pairs):
    torch.manual_seed(0)
    random_ckpt = tmp_path / "random.pt"
    save_model(DCMPNet("tiny"), random_ckpt)
    target = tmp_path / "default.pt"
    shutil.copy(DEFAULT_WEIGHTS, target)
    before = target.read_bytes()
    # random weights do not beat the bundled ones on the hazy cases: nothing is written
    verdict, cand, cur = promote(random_ckpt, target, pairs=pairs)
    assert not verdict.better and target.read_bytes() == before
    assert cand.mean("network", "psnr") < cur.mean("network", "psnr")
    # a candidate equal to the target is not better either (strictly higher PSNR at every density)
    assert not promote(DEFAULT_WEIGHTS, target, pairs=pairs)[0].better


def test_a_better_candidate_replaces_the_target_with_its_round_recorded(tmp_path, pairs):
    torch.manual_seed(1)
    target = tmp_path / "default.pt"
    save_model(DCMPNet("tiny"), target, meta={"step": 5})          # random weights: any trained ones beat them
    before = target.read_bytes()
    verdict = promote(DEFAULT_WEIGHTS, target, dry_run=True, pairs=pairs)[0]
    assert verdict.better, verdict.lines
    assert target.read_bytes() == before                                 # dry run: nothing written
    promote(DEFAULT_WEIGHTS, target, pairs=pairs)
    promoted, want = load_model(target), load_model(DEFAULT_WEIGHTS)
    for a, b in zip(promoted.model.state_dict().values(), want.model.state_dict().values()):
        assert torch.equal(a, b)
    rounds = rounds_of(promoted.meta)
    assert rounds[0]["step"] == 5 and "from scratch" in rounds[0]["note"]      # the replaced weights: round 1
    assert rounds[1]["step"] == want.meta["step"] and rounds[1]["psnr_dense"] > 0
    assert "psnr_none_shipped" in rounds[1]


def test_promote_command_names_a_missing_file(tmp_path, capsys):
    assert cli_run(["promote", str(tmp_path / "missing.pt")]) == 2
    assert "candidate" in capsys.readouterr().err


def test_a_candidate_without_post_processing_inherits_the_targets(tmp_path, pairs):
    """A fresh training checkpoint names no refine: it is scored and written with the bundled file's."""
    bundled = load_model(DEFAULT_WEIGHTS)
    assert bundled.meta.get("refine") == "guided"
    candidate = tmp_path / "fresh.pt"
    save_model(bundled.model, candidate, meta={"step": 9})                     # as a training run writes it
    torch.manual_seed(2)
    target = tmp_path / "default.pt"
    save_model(DCMPNet("tiny"), target, meta={"step": 1, "refine": "guided"})
    assert promote(candidate, target, pairs=pairs)[0].better
    assert load_model(target).meta["refine"] == "guided"
