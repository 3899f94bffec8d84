"""The inference engine: every path of Dehazer on real photos with a tiny random-weight DCMPNet."""
from __future__ import annotations

import re
import threading
import warnings

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from dcmpnet_core.checkpoints.builder import save_model
from dcmpnet_core.checkpoints.bundled import WeightsNotFoundError, default_weights_path
from dcmpnet_core.inference import engine as inference
from dcmpnet_core.inference.device import resolve_device
from dcmpnet_core.inference.engine import (
    DEPTH_FLOOR,
    DISPARITY_FLOOR,
    Dehazer,
    DehazeResult,
    guided_upsample,
    raw_to_relative_depth,
)
from dcmpnet_core.models.dcmpnet import DCMPNet


def make_model(depth_kind: str = "relative_depth") -> DCMPNet:
    """Tiny DCMPNet, fixed seed; the DE head is shifted so that random weights give positive depth."""
    torch.manual_seed(0)
    model = DCMPNet("tiny", depth_kind=depth_kind)
    with torch.no_grad():
        model.depth_net.head.bias += 1.0
    return model.eval()


def photo(name: str = "astronaut", hw: tuple[int, int] = (48, 64)) -> np.ndarray:
    img = getattr(skimage.data, name)()
    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def hazy_photo(name: str = "astronaut", hw: tuple[int, int] = (48, 64), beta: float = 1.5) -> np.ndarray:
    """Float32 RGB [0, 1] hazed with I = J t + A (1 - t), depth a vertical gradient (far at the top)."""
    clear = photo(name, hw).astype(np.float32) / 255.0
    depth = np.linspace(1.0, 0.2, hw[0], dtype=np.float32)[:, None] * np.ones(hw[1], np.float32)
    t = np.exp(-beta * depth)[..., None]
    return (clear * t + 0.85 * (1 - t)).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module", autouse=True)
def _network_on_every_frame():
    """These tests check the network path's contract on arbitrary images: no pass-through (see test_haze_level.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference, "DEFAULT_BYPASS_BELOW", 0.0)
        yield


@pytest.fixture(scope="module")
def dehazer(device):
    return Dehazer(make_model(), device=device)


def reference(image01: np.ndarray, depth_kind: str = "relative_depth") -> tuple[np.ndarray, np.ndarray]:
    """What the engine must return, computed directly from the network (float64 out)."""
    model = make_model(depth_kind)
    x = torch.from_numpy(image01.astype(np.float32)).permute(2, 0, 1)[None] * 2 - 1
    with torch.inference_mode():
        dehazed = model.dehaze_net(x).dehazed
        raw = model.depth_net.predict(dehazed)
    out = ((dehazed.clamp(-1, 1) + 1) / 2)[0].permute(1, 2, 0).numpy()
    return out, raw_to_relative_depth(raw[0, 0].numpy(), depth_kind)


# ------------------------------------------------------------------------------ basic contract
@pytest.mark.parametrize("hw", [(45, 61), (17, 33), (16, 16)])
def test_uint8_matches_network(dehazer, hw):
    img = photo("coffee", hw)
    res = dehazer(img)
    assert isinstance(res, DehazeResult)
    assert res.dehazed.dtype == np.uint8 and res.dehazed.shape == img.shape
    assert res.depth.dtype == np.float32 and res.depth.shape == hw
    assert res.latency_ms > 0 and res.scale == 1.0 and res.nonfinite_pixels == 0 and res.warnings == ()
    ref, ref_depth = reference(img.astype(np.float32) / 255)
    assert np.abs(res.dehazed.astype(np.float64) - ref * 255).max() <= 0.5 + 1e-3
    np.testing.assert_allclose(res.depth, ref_depth, atol=1e-5)
    assert res.depth.max() == pytest.approx(1.0) and res.depth.min() >= DEPTH_FLOOR


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_input_keeps_dtype_and_range(dehazer, dtype):
    img = hazy_photo(hw=(35, 50)).astype(dtype)
    res = dehazer(img)
    assert res.dehazed.dtype == dtype and res.dehazed.shape == img.shape
    assert 0.0 <= res.dehazed.min() and res.dehazed.max() <= 1.0
    ref, ref_depth = reference(img)
    np.testing.assert_allclose(res.dehazed, ref, atol=1e-5)
    np.testing.assert_allclose(res.depth, ref_depth, atol=1e-5)


def test_uint8_and_float_agree(dehazer):
    img = photo()
    a = dehazer(img).dehazed.astype(np.float64)
    b = dehazer(img.astype(np.float32) / 255).dehazed * 255
    assert np.abs(a - b).max() <= 0.5 + 1e-3


def test_dehazed_is_clamped_network_output(device):
    """A network that overshoots [-1, 1] gives saturated, not wrapped, uint8 output."""
    model = make_model()
    with torch.no_grad():
        model.dehaze_net.head.bias.fill_(3.0)     # push the residual far above +1
    res = Dehazer(model, device=device)(photo())
    assert (res.dehazed == 255).mean() > 0.9


def test_batch_equals_frame_by_frame(dehazer):
    images = [photo("astronaut"), photo("coffee", (45, 61)), hazy_photo("rocket", (48, 64)),
              photo("chelsea", (45, 61))]
    batch = dehazer.process_batch(images)
    assert len(batch) == len(images)
    for img, got in zip(images, batch):
        single = dehazer(img)
        assert got.dehazed.dtype == img.dtype and got.dehazed.shape == img.shape
        if img.dtype == np.uint8:
            assert np.abs(got.dehazed.astype(int) - single.dehazed.astype(int)).max() <= 1
        else:
            np.testing.assert_allclose(got.dehazed, single.dehazed, atol=1e-5)
        np.testing.assert_allclose(got.depth, single.depth, atol=1e-5)
    assert dehazer.process_batch([]) == []


# ------------------------------------------------------------------------- reduced resolution
@pytest.mark.parametrize("backend", ["dcmpnet", "dcp"])
def test_max_pixels_keeps_input_detail(device, backend):
    """Guided (affine) upsampling of the restoration beats upsampling the low-res output image."""
    img = hazy_photo("astronaut", (96, 128))
    make = (lambda **kw: Dehazer(make_model(), device=device, **kw)) if backend == "dcmpnet" \
        else (lambda **kw: Dehazer(backend="dcp", **kw))
    full_engine = make()
    full = full_engine(img)
    low = make(max_pixels=48 * 64)(img)
    assert low.scale == pytest.approx(0.5)
    assert low.dehazed.shape == img.shape and low.depth.shape == img.shape[:2]
    assert low.depth.max() == pytest.approx(1.0)
    # The naive alternative: run at low resolution, resize the output image.
    small = cv2.resize(img, (64, 48), interpolation=cv2.INTER_AREA)
    naive = cv2.resize(full_engine(small).dehazed, (128, 96), interpolation=cv2.INTER_LINEAR)
    gain = psnr(low.dehazed, full.dehazed) - psnr(naive, full.dehazed)
    assert gain > 1.5, f"guided upsampling gained only {gain:.2f} dB over naive upsampling"
    # inference_scale=0.5 is the same operating point.
    np.testing.assert_allclose(make(inference_scale=0.5)(img).dehazed, low.dehazed, atol=1e-5)


def test_max_pixels_larger_than_image_is_full_resolution(dehazer, device):
    img = photo()
    res = Dehazer(make_model(), device=device, max_pixels=10**6)(img)
    assert res.scale == 1.0
    np.testing.assert_array_equal(res.dehazed, dehazer(img).dehazed)


def test_guided_upsample_is_exact_for_a_global_affine_map():
    rng = np.random.default_rng(0)
    full = rng.random((40, 56, 3), dtype=np.float32)
    low = cv2.resize(full, (28, 20), interpolation=cv2.INTER_AREA)
    a, b = np.float32([1.4, 1.2, 1.1]), np.float32([-0.2, -0.1, 0.05])
    up = guided_upsample(low, low * a + b, full, eps=1e-8)
    np.testing.assert_allclose(up, full * a + b, atol=2e-3)


# ---------------------------------------------------------------------------------------- depth
def test_disparity_checkpoints_are_converted_to_depth(device):
    img = photo("chelsea")
    res = Dehazer(make_model("relative_disparity"), device=device)(img)
    _, ref_depth = reference(img.astype(np.float32) / 255, "relative_disparity")
    # depth = 1/disparity: the reciprocal turns the fast paths' float32 rounding (~1e-6 in
    # disparity) into a relative error of up to ~1e-4 where disparity is small.
    np.testing.assert_allclose(res.depth, ref_depth, rtol=3e-4, atol=1e-5)
    assert res.depth.max() == pytest.approx(1.0) and res.depth.min() >= DISPARITY_FLOOR - 1e-6


def test_raw_to_relative_depth_values():
    disparity = np.array([[4.0, 2.0], [1.0, 1.0 + 3 * 0.5]], np.float32)   # min 1, max 4
    depth = raw_to_relative_depth(disparity, "relative_disparity")
    # normalised disparity n = (d - 1) / 3 -> 1, 1/3, 0, 0.5; depth = 1 / max(n, 0.01), divided by 100
    np.testing.assert_allclose(depth, [[0.01, 0.03], [1.0, 0.02]], rtol=1e-5)
    rel = raw_to_relative_depth(np.array([[2.0, 1.0], [-1.0, 0.5]]), "relative_depth")
    np.testing.assert_allclose(rel, [[1.0, 0.5], [DEPTH_FLOOR, 0.25]], rtol=1e-6)
    assert (raw_to_relative_depth(np.full((3, 3), 7.0), "relative_disparity") == 1).all()
    assert (raw_to_relative_depth(-np.ones((3, 3)), "relative_depth") == 1).all()
    with pytest.raises(ValueError, match="depth_kind must be 'relative_depth' or 'relative_disparity', got 'x'"):
        raw_to_relative_depth(disparity, "x")


# ------------------------------------------------------------------------------------ bad input
BAD_INPUTS = [
    ([[1, 2, 3]], "image: expected a numpy.ndarray of shape (H, W, 3), got list"),
    (np.zeros((48, 64), np.uint8), "image: expected shape (H, W, 3) RGB, got shape (48, 64)"),
    (np.zeros((48, 64, 4), np.uint8), "image: expected shape (H, W, 3) RGB, got shape (48, 64, 4) (drop the alpha"),
    (np.zeros((48, 64, 3), np.uint16), "image: expected dtype uint8, float32 or float64, got uint16"),
    (np.zeros((48, 64, 3), np.int64), "image: expected dtype uint8, float32 or float64, got int64"),
    (np.zeros((0, 64, 3), np.uint8), "image: image is empty, shape (0, 64, 3)"),
    (np.zeros((15, 64, 3), np.uint8), "image: expected both sides >= 16 px, got 15x64 (H x W); smaller images "
                                      "are not upscaled"),
    (np.full((48, 64, 3), 255.0, np.float32), "image: float images must hold values in [0, 1], got range "
                                              "[255, 255] (for 0-255 data pass uint8 or divide by 255)"),
]


@pytest.mark.parametrize("image,message", BAD_INPUTS)
def test_bad_input_messages(dehazer, image, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dehazer(image)


def test_bad_frame_in_batch_is_named(dehazer):
    with pytest.raises(ValueError, match=re.escape("images[1]: expected dtype uint8, float32 or float64, got int16")):
        dehazer.process_batch([photo(), np.zeros((48, 64, 3), np.int16)])
    with pytest.raises(ValueError, match=re.escape("images: expected a sequence (list/tuple) of (H, W, 3) arrays")):
        dehazer.process_batch(photo())


def test_nonfinite_pixels_are_zeroed_counted_and_warned(dehazer):
    img = hazy_photo()
    img[3, 4, 0] = np.nan
    img[10, 20, :] = np.inf
    img[11, 21, 2] = -np.inf
    with pytest.warns(RuntimeWarning, match=re.escape("image: 3 pixel(s) with NaN/Inf replaced by 0")):
        res = dehazer(img)
    assert res.nonfinite_pixels == 3 and res.warnings == ("image: 3 pixel(s) with NaN/Inf replaced by 0",)
    assert np.isfinite(res.dehazed).all() and np.isfinite(res.depth).all()
    clean = img.copy()
    clean[~np.isfinite(clean)] = 0
    np.testing.assert_allclose(res.dehazed, dehazer(clean).dehazed, atol=1e-6)


def test_slight_overshoot_is_clipped(dehazer):
    img = hazy_photo()
    over = img.copy()
    over[0, 0] = [1.05, -0.02, 0.5]
    clipped = np.clip(over, 0, 1)
    np.testing.assert_array_equal(dehazer(over).dehazed, dehazer(clipped).dehazed)


@pytest.mark.parametrize("kwargs,message", [
    ({"precision": "fp8"}, "precision: expected one of: fp32, tf32, fp16, bf16, got 'fp8'"),
    ({"backend": "midas"}, "backend: expected one of: dcmpnet, dcp, got 'midas'"),
    ({"mode": "turbo"}, "mode: expected one of: auto, eager, fast, compile, cuda_graphs, got 'turbo'"),
    ({"max_pixels": 100}, "max_pixels: expected None or >= 256, got 100"),
    ({"max_pixels": 1e6}, "max_pixels: expected int, got float 1000000.0"),
    ({"inference_scale": 1.5}, "inference_scale: expected > 0 and <= 1, got 1.5"),
    ({"inference_scale": 0}, "inference_scale: expected > 0 and <= 1, got 0.0"),
    ({"device": "gpu"}, "device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Dehazer(make_model(), **kwargs)


# ------------------------------------------------------------------------------ weights, devices
def test_from_checkpoint(tmp_path, device):
    path = tmp_path / "tiny.pt"
    save_model(make_model(), path)
    engine = Dehazer.from_checkpoint(path, device=device)
    assert engine.depth_kind == "relative_depth" and engine.backend == "dcmpnet"
    img = photo()
    ref, ref_depth = reference(img.astype(np.float32) / 255)
    res = engine(img)
    assert np.abs(res.dehazed.astype(np.float64) - ref * 255).max() <= 0.5 + 1e-3
    np.testing.assert_allclose(res.depth, ref_depth, atol=1e-5)


def test_default_weights_are_used_when_installed(tmp_path, monkeypatch):
    path = tmp_path / "default.pt"
    save_model(make_model(), path)
    monkeypatch.setenv("DCMPNET_DEFAULT_WEIGHTS", str(path))
    assert default_weights_path() == path
    assert Dehazer.from_checkpoint(None, device="cpu").model is not None


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DCMPNET_DEFAULT_WEIGHTS", str(tmp_path / "absent.pt"))
    assert default_weights_path() is None
    with pytest.raises(WeightsNotFoundError) as info:
        Dehazer.from_checkpoint(None, device="cpu")
    msg = str(info.value)
    for part in ("no DCMPNet weights given", "absent.pt", "dcmpnet train", "dcmpnet convert",
                 "--backend dcp", "needs no weights"):
        assert part in msg, part
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Dehazer.from_checkpoint(tmp_path / "nope.pt", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_cuda_requested_but_absent(spec, tmp_path):
    with pytest.raises(RuntimeError, match=re.escape(f"device '{spec}' was requested but CUDA is not available "
                                                     "(torch.cuda.is_available() is False")):
        Dehazer(make_model(), device=spec)
    path = tmp_path / "tiny.pt"
    save_model(make_model(), path)
    with pytest.raises(RuntimeError, match="torch.cuda.is_available"):
        Dehazer.from_checkpoint(path, device=spec)


def test_auto_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert Dehazer(make_model(), device="auto").device.type == expected


def test_bf16_close_to_fp32(device):
    img = photo("astronaut", (32, 32))           # bf16 convolutions are slow on CPUs
    a = Dehazer(make_model(), device=device)(img)
    b = Dehazer(make_model(), device=device, precision="bf16")(img)
    assert b.dehazed.dtype == np.uint8
    assert psnr(a.dehazed.astype(np.float32) / 255, b.dehazed.astype(np.float32) / 255) > 30


# ------------------------------------------------------------------------------------- backends
def test_dcp_backend_through_dehazer():
    img = hazy_photo("coffee", (60, 80))
    engine = Dehazer.from_checkpoint(None, backend="dcp")
    res = engine(img)
    assert res.dehazed.dtype == np.float32 and res.depth.shape == (60, 80)
    clear = photo("coffee", (60, 80)).astype(np.float32) / 255
    assert psnr(res.dehazed, clear) > psnr(img, clear) + 5
    u8 = engine((img * 255).round().astype(np.uint8))
    assert u8.dehazed.dtype == np.uint8
    with pytest.raises(ValueError, match="backend 'dcp' uses no weights, got path='x.pt'"):
        Dehazer.from_checkpoint("x.pt", backend="dcp")
    with pytest.raises(ValueError, match="backend 'dcp' uses no network; pass model=None"):
        Dehazer(make_model(), backend="dcp")


# ------------------------------------------------------------------------------ out of memory
def inject_oom(engine: Dehazer, limit: int) -> list[tuple[int, ...]]:
    """Make the engine's dehazing network raise CUDA's out-of-memory error above ``limit`` input values / 3.

    This is the one place a stand-in is used: a real CUDA OOM cannot be produced on a machine
    without a GPU.  It is a forward pre-hook on the prepared network, so the engine's own
    forward path runs unchanged.  Returns the list of input shapes the network was called with.
    """
    calls: list[tuple[int, ...]] = []

    def hook(module, args):
        calls.append(tuple(args[0].shape))
        if args[0].shape[0] * args[0].shape[-2] * args[0].shape[-1] > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    engine.model.dehaze_net.register_forward_pre_hook(hook)
    return calls


def test_oom_retries_at_lower_resolution():
    engine = Dehazer(make_model(), device="cpu")
    calls = inject_oom(engine, limit=40 * 50)
    img = photo("astronaut", (96, 128))
    with pytest.warns(RuntimeWarning, match="out of memory on cpu at a 96x128 network input; retrying with "
                                            "max_pixels=6144"):
        res = engine(img)
    # 96x128 -> 67x90 (6144 px) -> 48x64 (3072) -> 33x45 (1485 <= 2000): three retries.
    assert [c[-2:] for c in calls] == [(96, 128), (67, 90), (48, 64), (33, 45)]
    assert len(res.warnings) == 3 and res.scale < 0.4
    assert res.dehazed.shape == img.shape and res.depth.shape == img.shape[:2]
    assert engine.max_pixels == 1536
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # the lowered limit holds: no new OOM, no new warning
        engine(img)
    assert len(calls) == 1


def test_resolution_changes_and_oom_retries_share_one_lock():
    """The node's parameter callback (set_resolution) and the worker's OOM retry never interleave their writes."""
    import threading

    engine = Dehazer(make_model(), device="cpu")
    inject_oom(engine, limit=40 * 50)
    img = photo("astronaut", (96, 128))
    engine._settings_lock.acquire()
    setter = threading.Thread(target=engine.set_resolution, args=(None, 0.5))
    setter.start()
    setter.join(0.2)
    assert setter.is_alive() and engine.inference_scale == 1.0     # waits for the lock
    engine._settings_lock.release()
    setter.join(5)
    assert engine.inference_scale == 0.5 and engine.max_pixels is None
    with pytest.warns(RuntimeWarning, match="retrying with max_pixels=1536"):
        engine(img)                 # 48x64 at scale 0.5 -> 33x45 under the 2000-pixel limit
    assert engine.max_pixels == 1536 and engine.inference_scale == 0.5
    with pytest.raises(ValueError, match=r"inference_scale: expected > 0 and <= 1, got 0\.0"):
        engine.set_resolution(None, 0.0)


def test_oom_gives_up_after_max_retries():
    engine = Dehazer(make_model(), device="cpu", max_oom_retries=2)
    calls = inject_oom(engine, limit=0)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match=re.escape(
            "out of memory on cpu at a 48x64 network input after 2 retries at reduced resolution")):
        engine(photo("astronaut", (96, 128)))
    assert len(calls) == 3


def test_oom_in_a_batch_splits_it():
    engine = Dehazer(make_model(), device="cpu")
    calls = inject_oom(engine, limit=48 * 64)
    images = [photo("astronaut"), photo("coffee")]
    with pytest.warns(RuntimeWarning, match="with a batch of 2; processing those frames one by one"):
        batch = engine.process_batch(images)
    assert [c[0] for c in calls] == [2, 1, 1]
    assert all(r.scale == 1.0 for r in batch)
    for img, got in zip(images, batch):
        np.testing.assert_array_equal(got.dehazed, engine(img).dehazed)


def test_non_oom_errors_propagate():
    engine = Dehazer(make_model(), device="cpu")

    def broken(module, args):
        raise RuntimeError("shape mismatch somewhere")

    engine.model.dehaze_net.register_forward_pre_hook(broken)
    with pytest.raises(RuntimeError, match="shape mismatch somewhere"):
        engine(photo())


def test_callers_model_is_left_alone():
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Dehazer(model, device="cpu", precision="bf16")
    assert all(v.dtype == before[k].dtype and torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("mode", ["fast", "auto"])
def test_fast_modes_match_eager(device, mode):
    """The exact fast paths against the plain eager network (the default mode is itself a fast path)."""
    img = hazy_photo(hw=(45, 61))
    model = make_model()
    eager = Dehazer(model, device=device, mode="eager", bypass_below=0.0)
    fast = Dehazer(model, device=device, mode=mode, bypass_below=0.0)
    assert eager.mode == "eager" and fast.mode != "eager"
    want, got = eager(img), fast(img)
    np.testing.assert_allclose(got.dehazed, want.dehazed, atol=1e-4)
    np.testing.assert_allclose(got.depth, want.depth, atol=1e-4)


def test_one_dehazer_shared_by_threads_serialises_calls(dehazer):
    img = photo()
    expected = dehazer(img).dehazed
    out: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: out.append(dehazer(img).dehazed)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and all(np.array_equal(o, expected) for o in out)


def test_guided_refinement_is_a_local_affine_map_of_the_input_and_follows_the_checkpoint(tmp_path):
    """refine='guided': the network's output re-expressed as a * input + b per window; 'auto' reads the checkpoint."""
    model = make_model()
    img = photo("astronaut", (96, 128))
    raw_res = Dehazer(model, device="cpu", bypass_below=0.0, refine="none")(img)
    ref_res = Dehazer(model, device="cpu", bypass_below=0.0, refine="guided")(img)
    raw, refined = raw_res.dehazed.astype(np.float32) / 255, ref_res.dehazed.astype(np.float32) / 255
    x = img.astype(np.float32) / 255
    want = np.clip(inference.guided_upsample(x, raw, x, round(0.1 * 96), inference.REFINE_EPS), 0, 1)
    # the same map (the engine fits the unclipped float output; raw here is clipped and rounded to 8 bits)
    assert np.abs(refined - want).mean() < 2e-3
    assert np.abs(refined - raw).mean() > 1e-3                      # and not a no-op
    # depth: guided-filtered with the grey input, still the convention (max 1, > 0)
    np.testing.assert_allclose(ref_res.depth, inference.refine_depth(x, raw_res.depth), atol=1e-6)
    assert ref_res.depth.max() == pytest.approx(1.0) and ref_res.depth.min() > 0
    passed = Dehazer(model, device="cpu", bypass_below=0.99, refine="guided")(img, stream=None)
    assert passed.weight == 0.0 and passed.depth is not None    # a passed-through frame's depth is refined too
    unrefined = Dehazer(model, device="cpu", bypass_below=0.99, refine="none")(img, stream=None).depth
    np.testing.assert_allclose(passed.depth, inference.refine_depth(x, unrefined), atol=1e-6)
    # 'auto': none for a checkpoint without the key (converted paper weights stay exact), guided when it says so
    plain, marked = tmp_path / "plain.pt", tmp_path / "marked.pt"
    save_model(model, plain)
    save_model(model, marked, meta={"refine": "guided"})
    assert Dehazer.from_checkpoint(plain, device="cpu").refine == "none"
    assert Dehazer.from_checkpoint(marked, device="cpu").refine == "guided"
    assert Dehazer.from_checkpoint(marked, device="cpu", refine="none").refine == "none"
    with pytest.raises(ValueError, match="refine: expected one of: auto, none, guided, got .sharpen."):
        Dehazer(model, device="cpu", refine="sharpen")
    # reduced resolution keeps its own guided upsampling: refine changes nothing there
    small = [Dehazer(model, device="cpu", bypass_below=0.0, refine=r, max_pixels=4096)(img).dehazed
             for r in ("none", "guided")]
    assert np.array_equal(small[0], small[1])
