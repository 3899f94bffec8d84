"""Project checkpoints: bit-exact round trip, and a clear refusal of every kind of bad file."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from dcmpnet_core import CheckpointError, DCMPNet
from dcmpnet_core.checkpoints.builder import checkpoint_of, load_model, save_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    m = DCMPNet("tiny")
    with torch.no_grad():                          # non-default BN statistics must survive too
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    return m.eval()


@pytest.fixture()
def saved(model, tmp_path):
    path = tmp_path / "model.pt"
    save_model(model, path, meta={"step": 7, "note": "unit test"})
    return path


def test_round_trip_is_bit_exact(model, saved):
    result = load_model(saved)
    loaded = result.model
    assert not loaded.training
    assert loaded.config == model.config
    assert loaded.depth_kind == model.depth_kind
    assert result.meta == {"step": 7, "note": "unit test"} and result.path == saved
    a, b = model.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    x = torch.rand(1, 3, 24, 32)
    with torch.inference_mode():
        assert torch.equal(model(x).dehazed, loaded(x).dehazed)


def test_checkpoint_loads_with_weights_only(saved):
    obj = torch.load(saved, weights_only=True)
    assert obj["format"] == "dcmpnet_ros.checkpoint" and obj["config"]["dehaze"]["embed_dims"] == [8, 16, 24, 16, 8]


def test_half_storage_round_trips_within_fp16(model, tmp_path):
    path = tmp_path / "half.pt"
    save_model(model, path, half=True)
    assert path.stat().st_size < 0.6 * os.path.getsize(_save_full(model, tmp_path))
    loaded = load_model(path).model
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        if a.is_floating_point():
            assert b.dtype == torch.float32
            torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3, msg=k)


def _save_full(model, tmp_path):
    p = tmp_path / "full.pt"
    save_model(model, p)
    return p


def test_save_is_atomic_and_leaves_no_temporary_files(model, tmp_path):
    path = tmp_path / "sub" / "m.pt"
    save_model(model, path)
    save_model(model, path)                     # overwrite in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pt"]
    # readable like any file the user writes (a temporary file is owner-only until it is renamed)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_wrong_keys_are_listed(model, tmp_path):
    ckpt = checkpoint_of(model)
    ckpt["dehaze_net"]["surprise.weight"] = torch.zeros(1)
    del ckpt["depth_net"]["head.bias"]
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert "surprise.weight" in str(err.value)
    ckpt = checkpoint_of(model)
    del ckpt["depth_net"]["head.bias"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"DE-network weights do not fit.*missing: head\.bias"):
        load_model(path)


def test_wrong_shapes_are_listed(model, tmp_path):
    ckpt = checkpoint_of(model)
    ckpt["dehaze_net"]["embed.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"embed\.weight: \(3, 3, 3, 3\) \(expected \(8, 3, 3, 3\)\)"):
        load_model(path)


def test_config_that_does_not_match_the_weights(model, tmp_path):
    ckpt = checkpoint_of(model)
    ckpt["config"]["dehaze"]["depths"] = [2, 1, 2, 1, 1]
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_model(path)


def test_unknown_config_key_is_named(model, tmp_path):
    ckpt = checkpoint_of(model)
    ckpt["config"]["dehaze"]["wings"] = 2
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=r"model\.dehaze\.wings: unknown key; known: embed_dims"):
        load_model(path)


def test_nan_weights_are_refused(model, tmp_path):
    ckpt = checkpoint_of(model)
    ckpt["dehaze_net"]["embed.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="NaN or Inf.*embed.weight"):
        load_model(path)


def test_truncated_file(saved, tmp_path):
    data = saved.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "dcmpnet_ros.checkpoint", "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_model(path)
    raw = tmp_path / "evil.pkl"                    # a legacy (non-zip) pickle too
    raw.write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(CheckpointError, match="could run code|not a PyTorch checkpoint"):
        load_model(raw)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + b"\0" * 64, b"hello, I am text\n", b""])
def test_file_that_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "not_a_checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint|is empty"):
        load_model(path)


def test_torch_file_of_another_kind(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="not a DCMPNet checkpoint"):
        load_model(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=r"not a DCMPNet checkpoint \(top-level keys: \['state_dict'\]\)"):
        load_model(path)


def test_upstream_checkpoint_gets_a_conversion_hint(tmp_path):
    path = tmp_path / "DIACMPN-dehaze-Indoor.pth"
    torch.save({"dehaze_net": {}, "epoch_dehaze": 1}, path)
    with pytest.raises(CheckpointError, match="dcmpnet convert"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
