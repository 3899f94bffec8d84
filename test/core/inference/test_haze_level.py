"""Haze level, pass-through gate and blend; the engine's pass-through; the haze-level message and diagnostics.

Real photos: scikit-image's and, where the Debian package opencv-doc is installed, OpenCV's sample photos.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from dcmpnet_core.data.haze import apply_haze
from dcmpnet_core.data.photos import motorcycle_scene, photo_pairs
from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_core.inference.haze_level import (
    DEFAULT_BYPASS_BAND,
    DEFAULT_BYPASS_BELOW,
    HazeGate,
    blend,
    estimate_haze_level,
    target_weight,
)

OPENCV_SAMPLES = "/usr/share/doc/opencv-doc/examples/data"
# Clear real photos: street, building, car on a road, indoor (a room, a desk), animal, outdoor.
OPENCV_CLEAR = ("leuvenA.jpg", "building.jpg", "licenseplate_motion.jpg", "home.jpg", "stuff.jpg", "squirrel_cls.jpg")
SKIMAGE_CLEAR = ("astronaut", "coffee", "chelsea", "rocket")
TOP = DEFAULT_BYPASS_BELOW + DEFAULT_BYPASS_BAND


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()[..., :3]


def _opencv_sample(name: str) -> np.ndarray:
    import cv2

    cv2.samples.addSamplesDataSearchPath(OPENCV_SAMPLES)
    path = cv2.samples.findFile(name, required=False)
    if not path:
        pytest.skip(f"OpenCV sample photo {name} not installed (Debian package opencv-doc, {OPENCV_SAMPLES})")
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)


def _ground_plane_m(h: int, w: int) -> np.ndarray:
    """Depth in metres: 2 m at the bottom row to 20 m at the top (a road or floor seen by a camera)."""
    return np.broadcast_to(np.linspace(20.0, 2.0, h, dtype=np.float32)[:, None], (h, w)).copy()


def _hazed(rgb: np.ndarray, t_median: tuple) -> list[np.ndarray]:
    depth = _ground_plane_m(*rgb.shape[:2])
    return [p.hazy for p in photo_pairs(rgb, depth_m=depth, t_median=t_median, airlights=[(0.85, 0.85, 0.85)])]


# ------------------------------------------------------------------------------------------------ estimator
@pytest.mark.parametrize("name", SKIMAGE_CLEAR)
def test_level_rises_with_haze_density_on_a_ramp(name):
    rgb = _skimage(name)
    levels = [estimate_haze_level(rgb)] + [estimate_haze_level(h) for h in _hazed(rgb, (0.9, 0.7, 0.5, 0.3, 0.15))]
    assert all(b > a for a, b in zip(levels, levels[1:])), levels
    assert 0.0 <= levels[0] and levels[-1] < 1.0


def test_level_is_monotone_in_beta_on_the_motorcycle_scene_with_real_depth():
    rgb, depth_m, _, _ = motorcycle_scene()
    betas = np.linspace(0.0, 0.6, 9)
    levels = [estimate_haze_level(apply_haze(rgb, depth_m, b, (0.8, 0.83, 0.9))) for b in betas]
    assert spearmanr(betas, levels)[0] == 1.0, levels


def test_level_accepts_uint8_and_float_alike_and_rejects_bad_input():
    rgb = _skimage("coffee")
    assert estimate_haze_level(rgb) == pytest.approx(estimate_haze_level(rgb.astype(np.float64) / 255), abs=0.01)
    nan = rgb.astype(np.float32) / 255
    nan[:5, :5] = np.nan
    assert np.isfinite(estimate_haze_level(nan))
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) RGB array, got \(4, 4\)"):
        estimate_haze_level(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="expected dtype uint8 or float, got int32"):
        estimate_haze_level(np.zeros((4, 4, 3), np.int32))


@pytest.mark.parametrize("source,name", [("skimage", n) for n in SKIMAGE_CLEAR] +
                         [("opencv", n) for n in OPENCV_CLEAR])
def test_clear_real_photos_pass_and_medium_and_dense_haze_do_not(source, name):
    rgb = _skimage(name) if source == "skimage" else _opencv_sample(name)
    assert estimate_haze_level(rgb) < DEFAULT_BYPASS_BELOW
    medium, dense = _hazed(rgb, (0.5, 0.25))
    assert estimate_haze_level(medium) > DEFAULT_BYPASS_BELOW and estimate_haze_level(dense) > TOP


# --------------------------------------------------------------------------------------------- gate, blend
def test_target_weight_ramp_disable_and_step():
    assert target_weight(0.2, 0.5, 0.1) == 0.0 and target_weight(0.55, 0.5, 0.1) == pytest.approx(0.5)
    assert target_weight(0.7, 0.5, 0.1) == 1.0
    assert target_weight(0.0, 0.0, 0.1) == 1.0, "bypass_below 0 disables the pass-through"
    assert (target_weight(0.49, 0.5, 0.0), target_weight(0.5, 0.5, 0.0)) == (0.0, 1.0)


def test_gate_first_frame_takes_its_weight_at_once_and_reset_forgets():
    gate = HazeGate()
    assert gate.step(0.9, 0.5, 0.1).weight == 1.0
    weights = [gate.step(0.1, 0.5, 0.1).weight for _ in range(40)]
    assert weights[0] == 1.0, "smoothing: one clear frame does not yet move the weight"
    assert all(0 <= a - b <= gate.max_step + 1e-12 for a, b in zip([1.0] + weights, weights)), "later frames fade"
    assert 0.0 < weights[5] < 1.0 and weights[-1] == 0.0
    gate.reset()
    assert gate.step(0.1, 0.5, 0.1).mode == "passthrough"


def _modes(levels, gate=None):
    gate = gate or HazeGate()
    return [gate.step(level, 0.5, 0.1) for level in levels]


def _switches(steps) -> int:
    on = [s.weight > 0 for s in steps]
    return sum(a != b for a, b in zip(on, on[1:]))


def test_gate_does_not_toggle_on_a_noisy_level_hovering_at_the_threshold():
    rng = np.random.default_rng(0)
    steps = _modes(0.5 + rng.uniform(-0.03, 0.03, 300))
    assert _switches(steps) <= 1


def test_gate_switches_at_most_twice_per_crossing_on_a_noisy_ramp_and_fades_slowly():
    rng = np.random.default_rng(1)
    ramp = np.concatenate([np.linspace(0.2, 0.8, 120), np.linspace(0.8, 0.2, 120)]) + rng.normal(0, 0.015, 240)
    steps = _modes(ramp)
    assert _switches(steps) <= 4, "two crossings"
    weights = np.array([s.weight for s in steps])
    assert np.abs(np.diff(weights)).max() <= HazeGate().max_step + 1e-12
    assert weights[0] == 0.0 and weights[120] == 1.0 and weights[-1] == 0.0, "exactly 0 and 1 at the ends"


def test_gate_validates_its_settings():
    with pytest.raises(ValueError, match="smoothing: expected a number in"):
        HazeGate(smoothing=0)
    with pytest.raises(ValueError, match="max_step: expected a number in"):
        HazeGate(max_step=2)


def test_blend_is_exact_at_the_ends_and_linear_between():
    a = np.full((2, 2, 3), 0.2, np.float32)
    b = np.full((2, 2, 3), 0.6, np.float32)
    assert blend(a, b, 0.0) is a and blend(a, b, 1.0) is b
    np.testing.assert_allclose(blend(a, b, 0.25), 0.3, rtol=1e-6)


# ------------------------------------------------------------------------------------------------- engine
@pytest.fixture(scope="module")
def clear_and_hazy():
    import cv2

    rgb = cv2.resize(_skimage("chelsea"), (96, 64), interpolation=cv2.INTER_AREA)
    dense = np.round(_hazed(rgb, (0.25,))[0] * 255).astype(np.uint8)
    return rgb, dense


def test_engine_passes_clear_frames_through_unchanged_with_depth(clear_and_hazy):
    rgb, _ = clear_and_hazy
    res = Dehazer(backend="dcp")(rgb)
    assert res.mode == "passthrough" and res.weight == 0.0 and res.scale == 0.0
    assert res.dehazed is not rgb and np.array_equal(res.dehazed, rgb) and res.dehazed.dtype == np.uint8
    assert res.depth.shape == rgb.shape[:2] and res.haze_level < DEFAULT_BYPASS_BELOW
    f64 = rgb.astype(np.float64) / 255
    out = Dehazer(backend="dcp")(f64).dehazed
    assert out.dtype == np.float64 and np.array_equal(out, f64), "float input comes back bit for bit"
    assert Dehazer(backend="dcp", passthrough_depth=False)(rgb).depth is None


def test_engine_hazy_frames_equal_the_engine_without_pass_through(clear_and_hazy):
    _, dense = clear_and_hazy
    aware, plain = Dehazer(backend="dcp")(dense), Dehazer(backend="dcp", bypass_below=0.0)(dense)
    assert aware.mode == "dehaze" and aware.haze_level > TOP
    assert np.array_equal(aware.dehazed, plain.dehazed) and np.array_equal(aware.depth, plain.depth)


def test_engine_streams_keep_state_and_batches_of_independent_images_do_not(clear_and_hazy):
    rgb, dense = clear_and_hazy
    engine = Dehazer(backend="dcp")
    assert engine(dense, stream="cam").weight == 1.0
    faded = [engine(rgb, stream="cam") for _ in range(30)]
    blended = next(r for r in faded if r.mode == "blend")
    assert faded[-1].mode == "passthrough" and np.array_equal(faded[-1].dehazed, rgb)
    plain = Dehazer(backend="dcp", bypass_below=0.0)(rgb).dehazed.astype(np.float32)
    np.testing.assert_allclose(blended.dehazed, rgb + blended.weight * (plain - rgb), atol=1.0)
    assert engine(rgb, stream="other").mode == "passthrough", "another stream has its own state"
    batch = engine.process_batch([dense, rgb])
    assert [r.mode for r in batch] == ["dehaze", "passthrough"]
    assert np.array_equal(batch[1].dehazed, rgb)
    engine.reset_stream("cam")
    assert engine(rgb, stream="cam").mode == "passthrough"
    with pytest.raises(ValueError, match=r"bypass_below: expected a number in \[0, 1\), got 1.5"):
        Dehazer(backend="dcp", bypass_below=1.5)


def test_engine_depth_network_alone_on_a_passed_through_frame(clear_and_hazy):
    """The dcmpnet backend: pass-through depth is the DE network on the input, as the full model would compute it."""
    import torch

    from dcmpnet_core.inference.engine import raw_to_relative_depth
    from dcmpnet_core.models.dcmpnet import DCMPNet

    rgb, _ = clear_and_hazy
    torch.manual_seed(0)
    model = DCMPNet("tiny").eval()
    res = Dehazer(model, device="cpu", mode="eager")(rgb)
    assert res.mode == "passthrough" and np.array_equal(res.dehazed, rgb)
    x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        raw = model.depth_net.predict(x)[0, 0].numpy()
    np.testing.assert_allclose(res.depth, raw_to_relative_depth(raw, model.depth_kind), atol=1e-5)


# ------------------------------------------------------------------------------ messages and diagnostics
def test_haze_level_message_with_the_rosbags_classes_round_trips():
    from rosbags.typesys import Stores, get_typestore

    from dcmpnet_ros.conversions import HAZE_LEVEL_TYPE, encode_haze_level

    store = get_typestore(Stores.ROS2_HUMBLE)
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=5, nanosec=7), frame_id="cam")
    msg = encode_haze_level(t[HAZE_LEVEL_TYPE], header, 0.625)
    back = store.deserialize_cdr(store.serialize_cdr(msg, HAZE_LEVEL_TYPE), HAZE_LEVEL_TYPE)
    assert (back.header.stamp.sec, back.header.frame_id, back.relative_humidity, back.variance) == (5, "cam", 0.625,
                                                                                                      0.0)
    with pytest.raises(ValueError, match=r"level: expected a haze level in \[0, 1\], got 1.5"):
        encode_haze_level(t[HAZE_LEVEL_TYPE], header, 1.5)


def test_diagnostics_warn_when_visibility_is_reduced_with_the_rosbags_classes():
    from msg_kinds import kit

    from dcmpnet_ros.diagnostics import OK, WARN, NodeStats, build_diagnostic_array

    now = [100.0]
    stats = NodeStats(clock=lambda: now[0], haze_warn_level=0.6)
    for level, mode in ((0.2, "passthrough"), (0.7, "dehaze")):
        now[0] += 0.1
        stats.on_input()
        stats.on_output(5.0)
        stats.on_haze(level, level, mode)
        if mode == "passthrough":
            assert stats.level() == OK and "haze level 0.20 (passthrough)" in stats.message()
    assert stats.level() == WARN and stats.message().startswith("visibility reduced: haze level above 0.60")
    k = kit("rosbags")
    msg = build_diagnostic_array(k.DiagnosticArray, k.DiagnosticStatus, k.KeyValue, k.Time(sec=1, nanosec=0),
                                 "dehaze_node: dehazing", "cpu", stats)
    values = {v.key: v.value for v in msg.status[0].values}
    assert msg.status[0].level == WARN
    assert (values["haze level (smoothed)"], values["frames passed through"], values["frames dehazed"]) == \
        ("0.700", "1", "1")
    with pytest.raises(ValueError, match="mode: expected one of"):
        stats.on_haze(0.1, 0.1, "off")


def test_bag_replay_writes_the_haze_level_and_passes_clear_frames_through(tmp_path, clear_and_hazy):
    from bag_factory import T0, TS2, Entry, header, image, image_pixels, read_bag, write_bag2

    from dcmpnet_ros.replay import replay_bag

    rgb, dense = clear_and_hazy
    # Two cameras (each topic is its own pass-through stream): one clear, one in dense fog.
    cams = {"/clear/image_raw": [rgb, rgb], "/fog/image_raw": [dense, dense]}
    entries = [Entry(topic, "sensor_msgs/msg/Image", T0 + 10 * i + k, image(TS2, header(TS2, i), f, "rgb8"))
               for k, (topic, frames) in enumerate(cams.items()) for i, f in enumerate(frames)]
    write_bag2(tmp_path / "in", sorted(entries, key=lambda e: e.log_time))
    summary = replay_bag(tmp_path / "in", tmp_path / "out", Dehazer(backend="dcp"), progress=False)
    assert [t.passed_through for t in summary.topics] == [2, 0]
    assert "2 passed through undehazed" in summary.format()
    out = read_bag(tmp_path / "out")
    for topic in cams:
        levels = out[f"/dehazed{topic}/haze_level"]
        assert [m.header.stamp.sec for _, m, _ in levels] == [1_600_000_000, 1_600_000_001]
        images = [image_pixels(m) for _, m, _ in out[f"/dehazed{topic}/image"]]
        if topic.startswith("/clear"):
            assert all(m.relative_humidity < DEFAULT_BYPASS_BELOW for _, m, _ in levels)
            assert all(np.array_equal(img, rgb) for img in images), "clear frames written unchanged"
        else:
            assert all(m.relative_humidity > TOP for _, m, _ in levels)
            plain = Dehazer(backend="dcp", bypass_below=0.0)(dense).dehazed
            assert all(np.array_equal(img, plain) for img in images), "foggy frames: the network's output"
