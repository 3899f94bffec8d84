"""``dcmpnet bag`` as a real process: options, messages, exit codes, and Ctrl-C / kill leaving nothing behind."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
import yaml
from bag_factory import T0, TS2, Entry, camera_info, compressed, header, image, photos, read_bag, snapshot, write_bag2

STEP = 10**8
IMAGE, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
ROOT = Path(__file__).resolve().parents[2]
# This checkout first, then whatever the environment already has (a sourced ROS workspace, ...).
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def dcmpnet(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})}
    return subprocess.run([sys.executable, "-m", "dcmpnet_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    pics = photos()
    entries = []
    for i in range(4):
        t = T0 + i * STEP
        entries.append(Entry("/cam/image_raw", IMAGE, t, image(TS2, header(TS2, i), pics[i], "bgr8")))
        entries.append(Entry("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", t,
                             compressed(TS2, header(TS2, i), pics[i])))
        entries.append(Entry("/cam/camera_info", INFO, t, camera_info(TS2, header(TS2, i))))
    entries.append(Entry("/cam/image_raw", IMAGE, T0 + 9 * STEP, b"\x00\x01\x00\x00junk"))
    return write_bag2(tmp_path_factory.mktemp("cli") / "in", entries)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from dcmpnet_core.checkpoints.builder import save_model
    from dcmpnet_core.models.dcmpnet import DCMPNet

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_model(DCMPNet("tiny"), path)
    return path


def test_bag_command_writes_namespaced_outputs_and_prints_the_summary(tmp_path, bag):
    before = snapshot(bag)
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), "--backend", "dcp", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert snapshot(bag) == before
    out = read_bag(tmp_path / "out")
    assert {t: len(v) for t, v in out.items()} == {
        "/dehazed/cam/image_raw/image": 4, "/dehazed/cam/image_raw/depth": 4, "/dehazed/cam/image_raw/camera_info": 4,
        "/dehazed/cam/image_raw/compressed/image": 4, "/dehazed/cam/image_raw/compressed/depth": 4,
        "/dehazed/cam/image_raw/compressed/camera_info": 4, "/dehazed/cam/image_raw/haze_level": 4,
        "/dehazed/cam/image_raw/compressed/haze_level": 4}
    assert "/cam/image_raw [Image]: 5 in, 4 out, 1 skipped (deserialization_error 1)" in res.stdout
    assert "/cam/image_raw/compressed [CompressedImage]: 4 in, 4 out, 0 skipped" in res.stdout
    assert re.search(r"time: wall [\d.]+ s .*inference [\d.]+ s .*overhead [\d.]+ s", res.stdout)


def test_options_weights_topic_storage_no_depth(tmp_path, bag, tiny_ckpt):
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), "--weights", str(tiny_ckpt), "--device", "cpu",
                  "--image-topic", "/cam/image_raw/compressed", "--storage", "mcap", "--no-depth", "--scale", "0.5",
                  "--copy-all-topics", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "backend='dcmpnet'" in res.stdout and "inference_scale=0.5" in res.stdout
    meta = yaml.safe_load((tmp_path / "out" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts == {"/dehazed/image": 4, "/dehazed/camera_info": 4, "/dehazed/haze_level": 4, "/cam/image_raw": 5,
                      "/cam/image_raw/compressed": 4, "/cam/camera_info": 4}
    img = read_bag(tmp_path / "out")["/dehazed/image"][0][1]
    assert (img.width, img.height, img.encoding) == (80, 64, "bgr8")


def test_refuses_existing_output_until_overwrite(tmp_path, bag):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), "--backend", "dcp")
    assert res.returncode == 2
    assert "already exists" in res.stderr and "--overwrite" in res.stderr
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), "--backend", "dcp", "--overwrite")
    assert res.returncode == 2 and "not a rosbag2 directory" in res.stderr
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    assert dcmpnet("bag", str(bag), str(tmp_path / "bag2"), "--backend", "dcp").returncode == 0
    res = dcmpnet("bag", str(bag), str(tmp_path / "bag2"), "--backend", "dcp", "--overwrite", "--no-depth")
    assert res.returncode == 0, res.stderr
    assert not any("depth" in t for t in read_bag(tmp_path / "bag2"))


def test_user_errors_are_one_line_and_name_the_problem(tmp_path, bag):
    no_weights = {"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "none.pt")}
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), env=no_weights)
    assert res.returncode == 2 and "--backend dcp" in res.stderr and "--weights" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), "--backend", "dcp", "--image-topic", "/front/image")
    assert res.returncode == 2 and "'/front/image' is not in" in res.stderr and "/cam/image_raw" in res.stderr
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), "--backend", "dcp", "--scale", "2")
    assert res.returncode == 2 and "--scale" in res.stderr
    res = dcmpnet("bag", str(tmp_path / "missing"), str(tmp_path / "out"), "--backend", "dcp")
    assert res.returncode == 2 and "no such file or directory" in res.stderr
    res = dcmpnet("bag", str(bag), str(tmp_path / "out"), "--backend", "dcp", "--bypass-below", "1.5")
    assert res.returncode == 2 and "--bypass-below: expected a haze level in [0, 1), got 1.5" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_bag_of_only_malformed_frames_exits_1(tmp_path):
    bad = image(TS2, header(TS2, 0), photos()[0], "rgb8")
    bad.encoding = "nv21"
    src = write_bag2(tmp_path / "in", [Entry("/cam/image_raw", IMAGE, T0, bad)])
    res = dcmpnet("bag", str(src), str(tmp_path / "out"), "--backend", "dcp", "--no-progress")
    assert res.returncode == 1
    assert "unsupported_encoding 1" in res.stdout and "none of the 1 frames" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_kill_leave_no_output_and_no_temp(tmp_path, tiny_ckpt, sig):
    # Many frames, so the replay is still running when the signal arrives even on a fast machine.
    frame = cv2.resize(photos()[0], (64, 48))
    src = write_bag2(tmp_path / "in", [Entry("/cam/image_raw", IMAGE, T0 + i * STEP,
                                             image(TS2, header(TS2, i), frame, "rgb8")) for i in range(600)])
    proc = subprocess.Popen([sys.executable, "-m", "dcmpnet_ros.cli", "bag", str(src), str(tmp_path / "out"),
                             "--weights", str(tiny_ckpt), "--device", "cpu"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": PYTHONPATH})
    err = bytearray()

    def drain() -> None:
        while chunk := proc.stderr.read1(4096):
            err.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not re.search(rb"\b[1-9]\d*/600\b", bytes(err)):       # the progress bar shows frames done
            assert proc.poll() is None, bytes(err).decode(errors="replace")
            assert time.monotonic() < deadline, "the replay never started"
            time.sleep(0.05)
        temp = [p.name for p in tmp_path.iterdir() if ".dcmpnet-tmp-" in p.name]
        assert temp, "the replay writes beside OUTPUT while it runs"
        proc.send_signal(sig)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert b"interrupted" in bytes(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_bypass_below_zero_dehazes_every_frame_and_the_default_passes_clear_ones(tmp_path, bag):
    res = dcmpnet("bag", str(bag), str(tmp_path / "all"), "--backend", "dcp", "--bypass-below", "0", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "bypass_below=0.0" in res.stdout and "; 0 passed through undehazed" in res.stdout
    res = dcmpnet("bag", str(bag), str(tmp_path / "aware"), "--backend", "dcp", "--no-progress")
    assert res.returncode == 0, res.stderr
    # the fixture's frames are clear photos: every good one is passed through
    assert "/cam/image_raw [Image]: 5 in, 4 out, 1 skipped (deserialization_error 1); 4 passed through" in res.stdout

