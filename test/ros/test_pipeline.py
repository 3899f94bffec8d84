"""FramePipeline (the work both dehazing nodes share) without ROS: real photos, the real dcp engine, real threads.

Messages are rclpy-style (test/helpers/rclpy_style_msgs.py); ``publish`` records what the node would publish.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from msg_kinds import kit, photo

from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_ros.conversions import decode_image, encode_depth, encode_image, output_encoding_for
from dcmpnet_ros.diagnostics import OK, WARN
from dcmpnet_ros.params import NodeParams
from dcmpnet_ros.pipeline import (
    FramePipeline,
    StartupError,
    apply_torch_threads,
    depth_mode_line,
    load_engine,
    release_accelerator_memory,
    warm_up,
)

K = kit("rclpy")
STAMP_NS = 1_700_000_000 * 1_000_000_000 + 123_456_789


def _rgb_msg(rgb: np.ndarray, sec: int = 1700000000, nanosec: int = 123456789):
    h, w = rgb.shape[:2]
    return K.image(rgb.tobytes(), h, w, "rgb8", 3 * w, hdr=K.header(sec, nanosec))


class Recorder:
    """publish callback: encodes like the node and records (stamp, image msg, depth msg)."""

    def __init__(self):
        self.out: list = []
        self.done = threading.Event()

    def __call__(self, header, result, decoded):
        image = encode_image(K.Image, header, result.dehazed, output_encoding_for(decoded.source_encoding))
        self.out.append((header.stamp.sec, image, encode_depth(K.Image, header, result.depth)))
        self.done.set()


@pytest.fixture(scope="module")
def dcp():
    return Dehazer.from_checkpoint(None, backend="dcp", device="cpu")


def _pipeline(engine, rec, params=None, warnings=None, now_ns=lambda: STAMP_NS + 40_000_000):
    return FramePipeline(engine, params or NodeParams(backend="dcp", device="cpu"), rec,
                         (warnings if warnings is not None else []).append, now_ns=now_ns)


def test_a_frame_goes_through_with_its_header_and_age(dcp):
    rec = Recorder()
    pipe = _pipeline(dcp, rec)
    pipe.start()
    try:
        rgb = photo("chelsea")
        pipe.accept(_rgb_msg(rgb), decode_image, source="/cam/image_raw")
        assert rec.done.wait(30)
    finally:
        pipe.stop()
    sec, image, depth = rec.out[0]
    assert sec == 1700000000 and image.header.stamp.nanosec == 123456789 and image.encoding == "rgb8"
    expected = dcp(rgb)
    got = np.frombuffer(bytes(image.data), np.uint8).reshape(rgb.shape)
    np.testing.assert_array_equal(got, expected.dehazed)
    kv = dict(pipe.stats.to_key_values())
    assert kv["frames published"] == "1" and kv["frame age mean (ms)"] == "40.0"
    assert not pipe.running


def test_rejected_message_is_counted_and_warned_once(dcp):
    warnings: list[str] = []
    pipe = _pipeline(dcp, Recorder(), warnings=warnings)
    bad = K.image(b"\x00" * 10, 4, 4, "rgb8", 12)                # 10 bytes for 48
    for _ in range(3):
        pipe.accept(bad, decode_image, source="/cam/image_raw")
    assert pipe.stats.rejected["truncated_data"] == 3
    assert len(warnings) == 1 and warnings[0].startswith("dropped a message from /cam/image_raw: ")


def test_newest_frame_wins_while_the_engine_is_busy(dcp):
    gate = threading.Event()

    class Slow:
        device = "cpu"

        def __call__(self, rgb):
            gate.wait(10)
            return dcp(rgb)

    rec = Recorder()
    pipe = _pipeline(Slow(), rec)
    pipe.start()
    try:
        rgb = photo("coffee")
        pipe.accept(_rgb_msg(rgb, sec=1), decode_image)
        deadline = time.monotonic() + 10
        while pipe._slot.pending() and time.monotonic() < deadline:   # the worker took frame 1
            time.sleep(0.01)
        for sec in (2, 3, 4):
            pipe.accept(_rgb_msg(rgb, sec=sec), decode_image)
        gate.set()
        deadline = time.monotonic() + 30
        while len(rec.out) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        pipe.stop()
    assert [o[0] for o in rec.out] == [1, 4]
    assert pipe.stats.dropped_stale == 2


def test_a_failing_frame_is_counted_and_the_worker_goes_on(dcp):
    calls = []

    class FailsFirst:
        device = "cpu"

        def __call__(self, rgb):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("injected")
            return dcp(rgb)

    rec, warnings = Recorder(), []
    pipe = _pipeline(FailsFirst(), rec, warnings=warnings)
    pipe.start()
    try:
        pipe.accept(_rgb_msg(photo("coffee"), sec=1), decode_image)
        deadline = time.monotonic() + 10
        while not pipe.stats.failed.total and time.monotonic() < deadline:
            time.sleep(0.01)
        pipe.accept(_rgb_msg(photo("coffee"), sec=2), decode_image)
        assert rec.done.wait(30)
    finally:
        pipe.stop()
    assert pipe.stats.failed["RuntimeError"] == 1 and rec.out[0][0] == 2
    assert "failed (RuntimeError): injected" in warnings[0]


def test_stop_and_start_again(dcp):
    rec = Recorder()
    pipe = _pipeline(dcp, rec)
    pipe.start()
    pipe.stop()
    pipe.accept(_rgb_msg(photo("coffee"), sec=5), decode_image)     # stopped: nothing queued, nothing published
    assert not rec.out
    pipe.start()
    try:
        pipe.accept(_rgb_msg(photo("coffee"), sec=6), decode_image)
        assert rec.done.wait(30)
    finally:
        pipe.stop()
    assert [o[0] for o in rec.out] == [6]


def test_camera_info_size_check_through_the_pipeline(dcp):
    params = NodeParams(backend="dcp", device="cpu", use_camera_info=True)
    pipe = _pipeline(dcp, Recorder(), params=params)
    pipe.on_camera_info(1280, 720)
    pipe.accept(_rgb_msg(photo("coffee")), decode_image)
    pipe.count(pipe.stats.on_output, 10.0)
    assert pipe.stats.level() == WARN and "camera_info is 1280x720 but the images are 128x96" in pipe.stats.message()
    pipe.on_camera_info(128, 96)
    assert pipe.stats.level() == OK


def test_warm_up_runs_one_frame_of_the_expected_size():
    seen = []

    def engine(rgb):
        seen.append(rgb.shape)

    assert warm_up(engine, None) is None and not seen
    assert warm_up(engine, (48, 64)) >= 0 and seen == [(48, 64, 3)]


def test_load_engine_and_its_errors(tmp_path):
    engine = load_engine(NodeParams(backend="dcp", device="cpu"))
    assert str(engine.device) == "cpu"
    with pytest.raises(StartupError, match="backend:=dcp"):
        load_engine(NodeParams(weights=str(tmp_path / "missing.pt"), device="cpu"))


def test_torch_threads_and_memory_release():
    import torch

    before = torch.get_num_threads()
    try:
        assert apply_torch_threads(0) == before
        assert apply_torch_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert release_accelerator_memory("cpu") is False


def test_depth_units_in_diagnostics_follow_the_parameters(dcp):
    pipe = _pipeline(dcp, Recorder())
    assert dict(pipe.stats.to_key_values())["depth units"] == "relative, not metres (depth_scale 0)"
    pipe.update_params(pipe.params.replace(depth_scale=80.0, inference_scale=0.5))
    assert dict(pipe.stats.to_key_values())["depth units"] == "relative x depth_scale 80 (metres if calibrated)"
    assert pipe.engine.inference_scale == 0.5
    pipe.update_params(pipe.params.replace(publish_depth=False, inference_scale=1.0))
    assert dict(pipe.stats.to_key_values())["depth units"] == "off"


def test_depth_mode_line_says_relative_is_not_metres():
    assert "RELATIVE" in depth_mode_line(NodeParams()) and "NOT metres" in depth_mode_line(NodeParams())
    assert "depth_scale 80" in depth_mode_line(NodeParams(depth_scale=80.0))
    assert depth_mode_line(NodeParams(publish_depth=False)).endswith("off (publish_depth: false)")


def test_pipeline_bench_measures_output_rate_and_frame_age(dcp):
    from dcmpnet_ros.pipeline_bench import camera_frames, engine_fps, pipeline_run

    frames = camera_frames(48, 64, count=2)
    assert engine_fps(dcp, frames, 0.3) > 1.0
    run = pipeline_run(dcp, frames, rate_hz=20.0, seconds=1.0)
    assert 5.0 < run["input_hz"] < 25.0
    assert 0.0 < run["output_hz"] <= run["input_hz"] + 1.0
    assert 0.0 <= run["age_median_ms"] <= run["age_p95_ms"] < 1000.0


def test_pipeline_bench_command(capsys):
    from dcmpnet_ros.pipeline_bench import main

    assert main(["--backend", "dcp", "--size", "48x64", "--rate", "20", "--seconds", "0.5",
                 "--torch-threads", "1"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("| torch threads | engine alone (fps) |") and rows[2].startswith("| 1 | ")


def _dense_haze(rgb: np.ndarray) -> np.ndarray:
    from dcmpnet_core.data.haze import apply_haze

    depth_m = np.broadcast_to(np.linspace(20.0, 2.0, rgb.shape[0], dtype=np.float32)[:, None], rgb.shape[:2])
    return np.round(apply_haze(rgb.astype(np.float32) / 255, depth_m, 0.2, (0.85, 0.85, 0.85)) * 255).astype(np.uint8)


def test_clear_frames_pass_through_after_warm_up_and_the_mode_is_counted():
    engine = Dehazer.from_checkpoint(None, backend="dcp", device="cpu")
    warm_up(engine, (96, 128))           # a grey frame reads as fog: it must not start the camera's stream
    rec = Recorder()
    pipe = _pipeline(engine, rec)
    clear = photo("coffee")
    msg = _rgb_msg(clear)
    pipe.process(msg.header, decode_image(msg, pipe.params.max_input_pixels))
    got = np.frombuffer(bytes(rec.out[-1][1].data), np.uint8).reshape(clear.shape)
    assert np.array_equal(got, clear), "a clear frame is published unchanged"
    kv = dict(pipe.stats.to_key_values())
    assert (kv["mode (last frame)"], kv["frames passed through"]) == ("passthrough", "1")
    assert float(kv["haze level (last frame)"]) < NodeParams().bypass_below
    pipe.update_params(pipe.params.replace(bypass_below=0.2, bypass_band=0.1, haze_warn_level=0.9))
    assert (engine.bypass_below, engine.bypass_band, pipe.stats.haze_warn_level) == (0.2, 0.1, 0.9)


def test_hazy_frames_are_dehazed_and_visibility_reduced_warns(dcp):
    rec = Recorder()
    pipe = _pipeline(Dehazer.from_checkpoint(None, backend="dcp", device="cpu"), rec)
    hazy = _dense_haze(photo("chelsea"))
    pipe.start()
    try:
        pipe.accept(_rgb_msg(hazy), decode_image, source="/cam/image_raw")
        assert rec.done.wait(30)
    finally:
        pipe.stop()
    got = np.frombuffer(bytes(rec.out[-1][1].data), np.uint8).reshape(hazy.shape)
    assert np.array_equal(got, Dehazer(backend="dcp", bypass_below=0.0)(hazy).dehazed)
    assert pipe.stats.level() == WARN and pipe.stats.message().startswith("visibility reduced: haze level above 0.60")
