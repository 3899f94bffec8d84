"""dcmpnet_ros.replay: real rosbag2 / ROS 1 files in, real rosbag2 out, read back with rosbags, sqlite3 and mcap."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
import yaml
from bag_factory import (
    T0,
    TS1,
    TS2,
    Entry,
    camera_info,
    compressed,
    header,
    image,
    image_pixels,
    imu,
    photos,
    read_bag,
    snapshot,
    write_bag1,
    write_bag2,
)

from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_ros.replay import (
    BagError,
    BagReplay,
    BagWriteError,
    camera_info_topic_for,
    output_topics_for,
    replay_bag,
    stop_on_signals,
)
from dcmpnet_ros.replay.decoding import MessageDecoder
from dcmpnet_ros.replay.pipeline import FrameProcessor
from dcmpnet_ros.replay.writer import FrameWriter, write_cause

STEP = 10**8                                     # 10 Hz
IMAGE, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
GOOD_ENCODINGS = ["rgb8", "bgr8", "mono8", "bayer_rggb8", "16UC1", "rgba8"]


@pytest.fixture(scope="module")
def pics() -> list[np.ndarray]:
    return photos()


@pytest.fixture(scope="module")
def dcp() -> Dehazer:
    return Dehazer.from_checkpoint(None, backend="dcp", device="cpu")


def string_msg(text: str):
    return TS2.types["std_msgs/msg/String"](data=text)


def raw_bag_entries(pics):
    """6 good frames in 6 encodings, 4 malformed ones, camera_info after each image (fx = 70 + i), /imu, /chatter."""
    entries, good = [], []
    for i, enc in enumerate(GOOD_ENCODINGS):
        t = T0 + i * STEP
        entries.append(Entry("/cam/image_raw", IMAGE, t, image(TS2, header(TS2, i), pics[i % 4], enc)))
        entries.append(Entry("/cam/camera_info", INFO, t + 1, camera_info(TS2, header(TS2, i), fx=70.0 + i)))
        entries.append(Entry("/imu", "sensor_msgs/msg/Imu", t + 2, imu(TS2, header(TS2, i, "imu"), i)))
        good.append((t, i, enc))
    base = T0 + 10 * STEP
    truncated = image(TS2, header(TS2, 20), pics[0], "rgb8")
    truncated.data = truncated.data[: truncated.data.size // 2]
    unsupported = image(TS2, header(TS2, 21), pics[1], "rgb8")
    unsupported.encoding = "nv21"
    tiny = image(TS2, header(TS2, 22), pics[2][:8, :8], "rgb8")
    entries += [Entry("/cam/image_raw", IMAGE, base, truncated),
                Entry("/cam/image_raw", IMAGE, base + STEP, unsupported),
                Entry("/cam/image_raw", IMAGE, base + 2 * STEP, b"\x00\x01\x00\x00not a sensor_msgs/Image"),
                Entry("/cam/image_raw", IMAGE, base + 3 * STEP, tiny),
                Entry("/chatter", "std_msgs/msg/String", base + 4 * STEP, string_msg("hello"))]
    return entries, good


def test_topic_names():
    assert camera_info_topic_for("/cam/image_raw") == "/cam/camera_info"
    assert camera_info_topic_for("/cam/image_raw/compressed") == "/cam/camera_info"
    assert camera_info_topic_for("/front/left/image_rect") == "/front/left/camera_info"
    assert camera_info_topic_for("/image") == "/camera_info"
    expected = ("/dehazed/image", "/dehazed/depth", "/dehazed/camera_info", "/dehazed/haze_level")
    assert output_topics_for("/cam/image_raw", several=False) == expected
    assert output_topics_for("/cam/image_raw/compressed", several=True).image == \
        "/dehazed/cam/image_raw/compressed/image"


def test_sqlite_raw_images_headers_encodings_camera_info_and_skips(tmp_path, pics, dcp):
    entries, good = raw_bag_entries(pics)
    src = write_bag2(tmp_path / "in", entries, "sqlite3")
    before = snapshot(src)
    summary = replay_bag(src, tmp_path / "out", dcp, progress=False)
    assert snapshot(src) == before                                  # input bytes and mtimes untouched

    out = read_bag(tmp_path / "out")
    assert set(out) == {"/dehazed/image", "/dehazed/depth", "/dehazed/camera_info", "/dehazed/haze_level"}
    assert [len(out[t]) for t in sorted(out)] == [6, 6, 6, 6]
    for (log_t, i, _), (th, level, htype) in zip(good, out["/dehazed/haze_level"]):
        assert th == log_t and htype == "sensor_msgs/msg/RelativeHumidity"
        assert (level.header.stamp.sec, level.header.stamp.nanosec) == (1_600_000_000 + i, 123_000 + i)
        assert 0.0 <= level.relative_humidity < 1.0 and level.variance == 0.0
    for (log_t, i, enc), (ti, img, _), (td, dep, _), (tc, info, ctype) in zip(
            good, out["/dehazed/image"], out["/dehazed/depth"], out["/dehazed/camera_info"]):
        assert ti == td == tc == log_t                               # receive timestamps preserved
        for msg in (img, dep, info):
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_600_000_000 + i, 123_000 + i)
            assert msg.header.frame_id == "cam_optical"
        assert (img.width, img.height, dep.width, dep.height) == (80, 64, 80, 64)
        assert img.encoding == (enc if enc in ("rgb8", "bgr8") else "rgb8")
        assert dep.encoding == "32FC1" and dep.step == 80 * 4 and img.step == 80 * 3
        depth = image_pixels(dep)
        assert np.isfinite(depth).all() and depth.min() > 0 and depth.max() == pytest.approx(1.0)
        # camera_info: the latest recorded before the frame (first one for frame 0), re-stamped
        assert ctype == INFO and info.k[0] == pytest.approx(70.0 + max(0, i - 1))
        assert info.width == 80 and info.distortion_model == "plumb_bob" and list(info.d)[:2] == [-0.1, 0.01]
        if enc in ("rgb8", "bgr8"):                                  # exactly what the engine makes of the photo
            expected = dcp(pics[i % 4])
            np.testing.assert_array_equal(image_pixels(img), expected.dehazed)
            np.testing.assert_array_equal(depth, expected.depth)
    assert summary.frames_in == 10 and summary.frames_out == 6
    assert summary.topics[0].skipped.counts() == {"deserialization_error": 1, "too_small": 1, "truncated_data": 1,
                                                  "unsupported_encoding": 1}
    text = summary.format()
    for word in ("truncated_data 1", "unsupported_encoding 1", "deserialization_error 1", "too_small 1",
                 "10 in, 6 out, 4 skipped", "inference", "overhead"):
        assert word in text
    assert summary.inference_s > 0 and summary.wall_s >= summary.inference_s

    # what `ros2 bag info` reads: metadata.yaml, and the definitions stored in the sqlite3 file itself
    meta = yaml.safe_load((tmp_path / "out" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "sqlite3" and meta["message_count"] == 24
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert topics["/dehazed/depth"]["topic_metadata"]["type"] == IMAGE
    assert topics["/dehazed/camera_info"]["message_count"] == 6
    assert all(t["topic_metadata"]["type_description_hash"].startswith("RIHS01_") for t in topics.values())
    db = sqlite3.connect(tmp_path / "out" / meta["relative_file_paths"][0])
    defs = dict(db.execute("SELECT topic_type, encoded_message_definition FROM message_definitions"))
    assert set(defs) >= {IMAGE, INFO, "sensor_msgs/msg/RelativeHumidity"} and "uint32 height" in defs[IMAGE]
    db.close()


def test_mcap_compressed_read_with_independent_mcap_reader(tmp_path, pics, dcp):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    entries, jpegs = [], []
    for i in range(4):
        t = T0 + i * STEP
        msg = compressed(TS2, header(TS2, i, "front"), pics[i], "jpeg" if i % 2 == 0 else "png")
        jpegs.append(np.asarray(msg.data))
        entries.append(Entry("/cam/image_raw/compressed", COMPRESSED, t, msg))
        entries.append(Entry("/cam/camera_info", INFO, t - 1, camera_info(TS2, header(TS2, i, "front"))))
    broken = compressed(TS2, header(TS2, 9), pics[0], "jpeg")
    broken.data = broken.data[: broken.data.size // 2]
    empty = compressed(TS2, header(TS2, 10), pics[0], "jpeg")
    empty.data = np.zeros(0, np.uint8)
    entries += [Entry("/cam/image_raw/compressed", COMPRESSED, T0 + 9 * STEP, broken),
                Entry("/cam/image_raw/compressed", COMPRESSED, T0 + 10 * STEP, empty)]
    src = write_bag2(tmp_path / "in", entries, "mcap")
    summary = replay_bag(src, tmp_path / "out", dcp, progress=False)
    assert summary.topics[0].skipped.counts() == {"empty_compressed": 1, "truncated_compressed": 1}

    files = list((tmp_path / "out").glob("*.mcap"))
    assert len(files) == 1                                            # storage follows the input's
    got: dict[str, list] = {}
    with open(files[0], "rb") as f:
        for schema, channel, message, ros_msg in make_reader(f, decoder_factories=[DecoderFactory()]) \
                .iter_decoded_messages(log_time_order=True):
            got.setdefault(channel.topic, []).append((schema.name, message.log_time, ros_msg))
    assert {t: len(v) for t, v in got.items()} == {"/dehazed/image": 4, "/dehazed/depth": 4,
                                                   "/dehazed/camera_info": 4, "/dehazed/haze_level": 4}
    assert {m[0] for v in got.values() for m in v} == {IMAGE, INFO, "sensor_msgs/msg/RelativeHumidity"}
    assert [m[2].header.stamp.sec for m in got["/dehazed/haze_level"]] == [1_600_000_000 + i for i in range(4)]
    for i, (img, dep, info) in enumerate(zip(got["/dehazed/image"], got["/dehazed/depth"],
                                             got["/dehazed/camera_info"])):
        assert img[1] == dep[1] == info[1] == T0 + i * STEP
        img, dep, info = img[2], dep[2], info[2]
        for m in (img, dep, info):
            assert (m.header.stamp.sec, m.header.frame_id) == (1_600_000_000 + i, "front")
        assert img.encoding == "bgr8"                                # "bgr8; jpeg compressed bgr8" -> bgr8
        assert (img.height, img.width, dep.encoding) == (64, 80, "32FC1")
        assert len(dep.data) == 64 * 80 * 4
        rgb = cv2.imdecode(jpegs[i], cv2.IMREAD_COLOR)[..., ::-1]    # decoded independently of the package
        dehazed = np.frombuffer(bytes(img.data), np.uint8).reshape(64, 80, 3)[..., ::-1]
        np.testing.assert_array_equal(dehazed, dcp(np.ascontiguousarray(rgb)).dehazed)
        assert list(info.k) == pytest.approx([70.0, 0, 40.0, 0, 70.0, 32.0, 0, 0, 1])


def test_several_topics_are_namespaced_and_copy_all_topics_keeps_bytes_types_times_and_qos(tmp_path, pics, dcp):
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(0x7FFFFFFF, 0xFFFFFFFF)
    reliable = Qos(QosHistory.KEEP_LAST, 5, QosReliability.RELIABLE, QosDurability.VOLATILE, never, never,
                   QosLiveliness.AUTOMATIC, never, avoid_ros_namespace_conventions=False)
    entries = []
    for i in range(3):
        t = T0 + i * STEP
        entries.append(Entry("/front/image_raw", IMAGE, t, image(TS2, header(TS2, i, "front"), pics[i], "rgb8")))
        entries.append(Entry("/front/camera_info", INFO, t, camera_info(TS2, header(TS2, i, "front"))))
        entries.append(Entry("/rear/image_raw/compressed", COMPRESSED, t + 5,
                             compressed(TS2, header(TS2, i, "rear"), pics[3 - i])))
        entries.append(Entry("/imu", "sensor_msgs/msg/Imu", t + 7, imu(TS2, header(TS2, i, "imu"), i)))
    entries.append(Entry("/chatter", "std_msgs/msg/String", T0 + 50, string_msg("fog ahead")))
    src = write_bag2(tmp_path / "in", entries, "sqlite3", qos={"/front/image_raw": [reliable]})
    summary = replay_bag(src, tmp_path / "out", dcp, copy_all_topics=True, progress=False)
    assert summary.copied == {"/front/image_raw": 3, "/front/camera_info": 3, "/rear/image_raw/compressed": 3,
                              "/imu": 3, "/chatter": 1}

    def raw_messages(path):
        with AnyReader([path]) as reader:
            conns = {c.topic: c for c in reader.connections}
            msgs: dict[str, list] = {}
            for conn, t, raw in reader.messages():
                msgs.setdefault(conn.topic, []).append((t, bytes(raw)))
            return conns, msgs

    in_conns, in_msgs = raw_messages(src)
    out_conns, out_msgs = raw_messages(tmp_path / "out")
    assert set(out_conns) == set(in_conns) | {
        "/dehazed/front/image_raw/image", "/dehazed/front/image_raw/depth", "/dehazed/front/image_raw/camera_info",
        "/dehazed/front/image_raw/haze_level", "/dehazed/rear/image_raw/compressed/image",
        "/dehazed/rear/image_raw/compressed/depth", "/dehazed/rear/image_raw/compressed/haze_level"}
    for topic in in_conns:                       # unchanged: type, log times, bytes
        assert out_conns[topic].msgtype == in_conns[topic].msgtype
        assert out_msgs[topic] == in_msgs[topic]
    assert out_conns["/dehazed/front/image_raw/image"].ext.offered_qos_profiles == [reliable]
    assert out_conns["/front/image_raw"].ext.offered_qos_profiles == [reliable]
    rear = read_bag(tmp_path / "out")["/dehazed/rear/image_raw/compressed/image"]
    assert [m.header.frame_id for _, m, _ in rear] == ["rear"] * 3
    # written in the input's time order
    db = sqlite3.connect(next((tmp_path / "out").glob("*.db3")))
    stamps = [t for (t,) in db.execute("SELECT timestamp FROM messages ORDER BY id")]
    db.close()
    assert stamps == sorted(stamps)

    # one chosen topic -> plain /dehazed/... names
    summary = replay_bag(src, tmp_path / "one", dcp, image_topics=["rear/image_raw/compressed"], progress=False)
    assert set(read_bag(tmp_path / "one")) == {"/dehazed/image", "/dehazed/depth", "/dehazed/haze_level"}
    assert "no camera_info (/rear/camera_info not in the bag)" in summary.format()


def test_ros1_bag_is_converted_to_ros2_types(tmp_path, pics, dcp):
    entries = []
    for i in range(3):
        t = T0 + i * STEP
        entries.append(Entry("/cam/camera_info", INFO, t, camera_info(TS1, header(TS1, i), fx=80.0)))
        entries.append(Entry("/cam/image_raw", IMAGE, t + 1, image(TS1, header(TS1, i), pics[i], "bgr8")))
        entries.append(Entry("/imu", "sensor_msgs/msg/Imu", t + 2, imu(TS1, header(TS1, i, "imu"), i)))
    src = write_bag1(tmp_path / "in.bag", entries, latching=frozenset({"/cam/camera_info"}))
    before = snapshot(src)
    summary = replay_bag(src, tmp_path / "out", dcp, copy_all_topics=True, progress=False)
    assert snapshot(src) == before
    assert summary.input_format == "ROS 1 bag" and summary.output_storage == "sqlite3"
    out = read_bag(tmp_path / "out")
    assert [len(out[t]) for t in ("/dehazed/image", "/dehazed/depth", "/dehazed/camera_info", "/imu")] == [3] * 4
    triples = zip(out["/dehazed/image"], out["/dehazed/camera_info"], out["/imu"])
    for i, ((t, img, _), (_, info, _), (_, im, _)) in enumerate(triples):
        assert t == T0 + i * STEP + 1
        assert not hasattr(img.header, "seq") and img.header.stamp.sec == 1_600_000_000 + i
        assert img.encoding == "bgr8"
        np.testing.assert_array_equal(image_pixels(img), dcp(pics[i]).dehazed)
        assert info.k[0] == 80.0 and info.header.stamp.nanosec == img.header.stamp.nanosec   # lowercase ROS 2 k
        assert im.angular_velocity.x == pytest.approx(0.1 * i) and im.header.frame_id == "imu"
    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "out"]) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert qos["/cam/camera_info"][0].durability.name == "TRANSIENT_LOCAL"      # latched in ROS 1
    assert qos["/dehazed/camera_info"][0].durability.name == "TRANSIENT_LOCAL"
    assert qos["/dehazed/image"] == []


@pytest.mark.parametrize("storage,compression", [("sqlite3", "message"), ("mcap", "file")])
def test_compressed_input_bags_and_output_options(tmp_path, pics, dcp, storage, compression):
    entries = [Entry("/cam/image_raw", IMAGE, T0 + i * STEP, image(TS2, header(TS2, i), pics[i], "rgb8"))
               for i in range(3)]
    src = write_bag2(tmp_path / "in", entries, storage, compression=compression)
    other = "mcap" if storage == "sqlite3" else "sqlite3"
    summary = replay_bag(src, tmp_path / "out", dcp, storage=other, compression=compression, write_depth=False,
                         progress=False)
    assert summary.frames_out == 3
    meta = yaml.safe_load((tmp_path / "out" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == other and meta["compression_mode"] == compression
    out = read_bag(tmp_path / "out")
    assert set(out) == {"/dehazed/image", "/dehazed/haze_level"}
    assert [m.header.stamp.sec for _, m, _ in out["/dehazed/image"]] == [1_600_000_000 + i for i in range(3)]


def test_camera_info_that_cannot_be_read_is_counted_and_the_next_one_used(tmp_path, pics, dcp):
    entries = [Entry("/cam/camera_info", INFO, T0 - 5, b"\x00\x01\x00\x00broken"),
               Entry("/cam/image_raw", IMAGE, T0, image(TS2, header(TS2, 0), pics[0], "rgb8")),
               Entry("/cam/camera_info", INFO, T0 + 5, camera_info(TS2, header(TS2, 0), fx=99.0)),
               Entry("/cam/image_raw", IMAGE, T0 + STEP, image(TS2, header(TS2, 1), pics[1], "rgb8"))]
    src = write_bag2(tmp_path / "in", entries)
    summary = replay_bag(src, tmp_path / "out", dcp, progress=False)
    assert summary.camera_info_skipped.counts() == {"deserialization_error": 1}
    infos = read_bag(tmp_path / "out")["/dehazed/camera_info"]
    assert [m.k[0] for _, m, _ in infos] == [99.0, 99.0]      # frame 0 precedes the first readable one: gets it


def test_tiny_checkpoint_output_equals_direct_inference(tmp_path, pics):
    from dcmpnet_core.checkpoints.builder import save_model
    from dcmpnet_core.models.dcmpnet import DCMPNet

    save_model(DCMPNet("tiny"), tmp_path / "tiny.pt")
    dehazer = Dehazer.from_checkpoint(tmp_path / "tiny.pt", device="cpu")
    small = [cv2.resize(p, (48, 32), interpolation=cv2.INTER_AREA) for p in pics[:2]]
    entries = [Entry("/cam/image_raw", IMAGE, T0 + i * STEP, image(TS2, header(TS2, i), small[i], "rgb8"))
               for i in range(2)]
    src = write_bag2(tmp_path / "in", entries, "mcap")
    summary = replay_bag(src, tmp_path / "out", dehazer, progress=False)
    assert summary.frames_out == 2 and "backend='dcmpnet'" in summary.engine
    out = read_bag(tmp_path / "out")
    for i, ((_, img, _), (_, dep, _)) in enumerate(zip(out["/dehazed/image"], out["/dehazed/depth"])):
        direct = dehazer(small[i])
        np.testing.assert_allclose(image_pixels(img).astype(int), direct.dehazed.astype(int), atol=1)
        np.testing.assert_allclose(image_pixels(dep), direct.depth, atol=1e-5)


def test_engine_failure_on_one_frame_is_counted_not_fatal(tmp_path, pics, dcp):
    calls = []

    def flaky(rgb):                 # an engine error (e.g. out of GPU memory) cannot be produced on demand here
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory on cuda:0")
        return dcp(rgb)

    entries = [Entry("/cam/image_raw", IMAGE, T0 + i * STEP, image(TS2, header(TS2, i), pics[i], "rgb8"))
               for i in range(3)]
    summary = replay_bag(write_bag2(tmp_path / "in", entries), tmp_path / "out", flaky, progress=False)
    assert summary.topics[0].skipped.counts() == {"inference_error": 1}
    assert "out of memory" in summary.topics[0].examples["inference_error"]
    assert [m.header.stamp.sec - 1_600_000_000 for _, m, _ in read_bag(tmp_path / "out")["/dehazed/image"]] == [0, 2]


# ------------------------------------------------------------------------------------------------ safety
@pytest.fixture
def small_bag(tmp_path, pics):
    entries = []
    for i in range(6):
        entries.append(Entry("/cam/image_raw", IMAGE, T0 + i * STEP, image(TS2, header(TS2, i), pics[i % 4], "rgb8")))
        entries.append(Entry("/cam/camera_info", INFO, T0 + i * STEP, camera_info(TS2, header(TS2, i))))
    entries.append(Entry("/chatter", "std_msgs/msg/String", T0, string_msg("x")))
    return write_bag2(tmp_path / "in", entries)


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_refuses_to_overwrite_and_replaces_only_with_overwrite(tmp_path, small_bag, dcp):
    replay_bag(small_bag, tmp_path / "out", dcp, progress=False, write_depth=False)
    first = snapshot(tmp_path / "out")
    with pytest.raises(BagError, match="already exists.*--overwrite"):
        replay_bag(small_bag, tmp_path / "out", dcp, progress=False)
    assert snapshot(tmp_path / "out") == first
    replay_bag(small_bag, tmp_path / "out", dcp, progress=False, overwrite=True)
    assert "/dehazed/depth" in read_bag(tmp_path / "out")               # the new bag replaced the old one
    assert listing(tmp_path) == ["in", "out"]


def test_refuses_to_delete_what_is_not_a_bag_and_paths_that_overlap(tmp_path, small_bag, dcp):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(BagError, match="not a rosbag2 directory"):
        replay_bag(small_bag, precious, dcp, overwrite=True, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BagError, match="not a directory"):
        replay_bag(small_bag, tmp_path / "file", dcp, overwrite=True, progress=False)
    with pytest.raises(BagError, match="INPUT"):
        replay_bag(small_bag, small_bag, dcp, overwrite=True, progress=False)
    with pytest.raises(BagError, match="inside INPUT"):
        replay_bag(small_bag, small_bag / "sub", dcp, progress=False)
    with pytest.raises(BagError, match=r"\.bag"):
        replay_bag(small_bag, tmp_path / "out.bag", dcp, progress=False)
    assert (precious / "thesis.tex").read_text() == "do not delete"
    assert listing(tmp_path) == ["file", "in", "precious"]


def test_bad_inputs_and_topics_are_named(tmp_path, small_bag, dcp):
    with pytest.raises(BagError, match="no such file"):
        replay_bag(tmp_path / "missing", tmp_path / "o", dcp)
    with pytest.raises(BagError, match="pass its directory"):
        replay_bag(next(small_bag.glob("*.db3")), tmp_path / "o", dcp)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="metadata.yaml"):
        replay_bag(tmp_path / "empty", tmp_path / "o", dcp)
    with pytest.raises(BagError, match="'/nope' is not in .*image topics there: /cam/image_raw"):
        replay_bag(small_bag, tmp_path / "o", dcp, image_topics=["/nope"])
    with pytest.raises(BagError, match="has type sensor_msgs/msg/CameraInfo"):
        replay_bag(small_bag, tmp_path / "o", dcp, image_topics=["/cam/camera_info"])
    with pytest.raises(BagError, match="storage"):
        replay_bag(small_bag, tmp_path / "o", dcp, storage="rosbag3")
    no_images = write_bag2(tmp_path / "noimg", [Entry("/chatter", "std_msgs/msg/String", T0, string_msg("x"))])
    with pytest.raises(BagError, match=r"no sensor_msgs/Image .* it holds /chatter \[std_msgs/msg/String\]"):
        replay_bag(no_images, tmp_path / "o", dcp)
    assert not (tmp_path / "o").exists()


def test_check_plans_topics_and_camera_info_without_writing(tmp_path, pics):
    entries = [Entry("/cam/image_raw", IMAGE, T0, image(TS2, header(TS2, 0), pics[0], "rgb8")),
               Entry("/cam/image_raw/compressed", COMPRESSED, T0, compressed(TS2, header(TS2, 0), pics[0])),
               Entry("/cam/camera_info", INFO, T0, camera_info(TS2, header(TS2, 0))),
               Entry("/side/image", IMAGE, T0 + 1, image(TS2, header(TS2, 1), pics[1], "rgb8"))]
    src = write_bag2(tmp_path / "in", entries)
    before = snapshot(src)
    reports = BagReplay(src, tmp_path / "out").check()
    assert [(r.topic, r.msgtype.rsplit("/", 1)[-1], r.camera_info_topic, r.outputs.image) for r in reports] == [
        ("/cam/image_raw", "Image", "/cam/camera_info", "/dehazed/cam/image_raw/image"),
        ("/cam/image_raw/compressed", "CompressedImage", "/cam/camera_info", "/dehazed/cam/image_raw/compressed/image"),
        ("/side/image", "Image", None, "/dehazed/side/image/image")]
    assert [r.frames_in for r in reports] == [0, 0, 0]
    one = BagReplay(src, tmp_path / "out", image_topics="side/image").check()
    assert [(r.topic, r.outputs.camera_info) for r in one] == [("/side/image", "/dehazed/camera_info")]
    with pytest.raises(BagError, match="'/front' is not in"):
        BagReplay(src, tmp_path / "out", image_topics=["/front"]).check()
    assert listing(tmp_path) == ["in"] and snapshot(src) == before


def test_stop_on_signals_interrupts_once_then_at_once_and_restores_the_handlers(tmp_path, small_bag):
    replay = BagReplay(small_bag, tmp_path / "out")
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals(replay):
        os.kill(os.getpid(), signal.SIGTERM)
        assert replay.interrupt_requested                     # the first signal asks the replay to stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)               # the second one does not wait
    assert {sig: signal.getsignal(sig) for sig in before} == before
    seen = []

    def in_a_thread() -> None:
        with stop_on_signals(BagReplay(small_bag, tmp_path / "out")):
            seen.append({sig: signal.getsignal(sig) for sig in before})

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    assert seen == [before]                                   # outside the main thread: nothing installed


def test_interrupt_from_hook_leaves_no_output_and_no_temp(tmp_path, small_bag, dcp):
    seen = []

    def hook(ev):
        seen.append(ev.index)
        if ev.index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay_bag(small_bag, tmp_path / "out", dcp, on_frame=hook, progress=False)
    assert seen == [0, 1, 2]
    assert listing(tmp_path) == ["in"]                                   # no OUTPUT, no .out.dcmpnet-tmp-*


def test_interrupt_method_stops_between_frames_from_another_thread(tmp_path, small_bag, dcp):
    """What `dcmpnet bag` does on SIGINT/SIGTERM: interrupt() from elsewhere; the replay stops at the next frame."""
    seen = []
    replay = BagReplay(small_bag, tmp_path / "out", dcp, progress=False,
                       on_frame=lambda ev: (seen.append(ev.index), ev.index == 1 and replay.interrupt()))
    with pytest.raises(KeyboardInterrupt):
        replay.run()
    assert seen == [0, 1]
    assert listing(tmp_path) == ["in"]


def test_interrupted_overwrite_keeps_the_old_output(tmp_path, small_bag, dcp):
    replay_bag(small_bag, tmp_path / "out", dcp, progress=False)
    old = snapshot(tmp_path / "out")

    def hook(ev):
        if ev.index == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay_bag(small_bag, tmp_path / "out", dcp, overwrite=True, copy_all_topics=True, on_frame=hook,
                   progress=False)
    assert snapshot(tmp_path / "out") == old
    assert listing(tmp_path) == ["in", "out"]


def failing_writer(monkeypatch) -> type[Exception]:
    """Stands in for a full disk: the writer thread fails on the third frame."""
    original = FrameWriter.write_frame

    def write_frame(self, frame, *args):
        if frame.header.stamp.sec - 1_600_000_000 == 2:
            raise OSError(28, "No space left on device")
        return original(self, frame, *args)

    monkeypatch.setattr(FrameWriter, "write_frame", write_frame)
    return OSError


def failing_reader(monkeypatch) -> type[BaseException]:
    """Stands in for a storage read error in the reader thread."""
    original = MessageDecoder.frame

    def frame(self, conn, log_time, raw, topic):
        if log_time >= T0 + 3 * STEP:
            raise MemoryError("reading the input failed")
        return original(self, conn, log_time, raw, topic)

    monkeypatch.setattr(MessageDecoder, "frame", frame)
    return MemoryError


def interrupted_engine(monkeypatch) -> type[BaseException]:
    """A KeyboardInterrupt arriving in the middle of inference."""
    original = FrameProcessor.process

    def process(self, frame, report, *args):
        if report.frames_out == 4:
            raise KeyboardInterrupt
        return original(self, frame, report, *args)

    monkeypatch.setattr(FrameProcessor, "process", process)
    return KeyboardInterrupt


@pytest.mark.parametrize("failure", [failing_writer, failing_reader, interrupted_engine])
def test_failures_in_any_stage_leave_no_output(tmp_path, small_bag, dcp, monkeypatch, failure):
    exc = failure(monkeypatch)
    with pytest.raises((exc, RuntimeError)) as info:
        BagReplay(small_bag, tmp_path / "out", dcp, progress=False).run()
    chain = [info.value, info.value.__cause__]
    assert any(isinstance(e, exc) for e in chain)
    assert listing(tmp_path) == ["in"]


@contextlib.contextmanager
def small_tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A real, tiny filesystem at ``path`` (a tmpfs mounted with ``options``); skips where mounting is not allowed."""
    path.mkdir()
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                             text=True)
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs to fill up: {exc}")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("storage,cause", [("sqlite3", "No space left on device (database or disk is full)"),
                                           ("mcap", "No space left on device")])
def test_a_full_disk_is_one_write_error_naming_the_output_and_the_cause(tmp_path, small_bag, dcp, storage, cause):
    before = snapshot(small_bag)
    with small_tmpfs(tmp_path / "disk", "size=100k") as disk:
        with pytest.raises(BagWriteError) as info:
            replay_bag(small_bag, disk / "out", dcp, storage=storage, copy_all_topics=True, progress=False)
        assert str(info.value) == f"cannot write the output bag {disk / 'out'}: {cause}"
        assert listing(disk) == []                           # the temporary bag is gone too
    assert snapshot(small_bag) == before


def test_no_room_for_the_temporary_directory_is_a_write_error_too(tmp_path, small_bag, dcp):
    with small_tmpfs(tmp_path / "disk", "size=1m,nr_inodes=1") as disk:      # no inode left for a directory
        expected = f"cannot write the output bag {disk / 'out'}: No space left on device ({disk}/.out.dcmpnet-tmp-"
        with pytest.raises(BagWriteError, match="^" + re.escape(expected)):
            replay_bag(small_bag, disk / "out", dcp, progress=False)
        assert listing(disk) == []


def test_write_cause_names_sqlites_full_database_as_a_full_disk(tmp_path):
    db = sqlite3.connect(tmp_path / "x.db3")
    db.execute("PRAGMA max_page_count = 2")                  # a real SQLITE_FULL, without filling a disk
    with pytest.raises(sqlite3.OperationalError) as info:
        db.execute("CREATE TABLE t (a)")
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    db.close()
    assert write_cause(info.value) == "No space left on device (database or disk is full)"
    wrapped = RuntimeError("the writer failed")
    wrapped.__cause__ = info.value
    assert write_cause(wrapped) == "No space left on device (database or disk is full)"
    assert write_cause(sqlite3.OperationalError("disk I/O error")) == "OperationalError: disk I/O error"
    assert write_cause(None) == "the writer stopped"


def test_bag_without_message_definitions_humble_style(tmp_path, pics, dcp):
    """Humble's rosbag2 stores no message definitions: known types are read, unknown ones are not copied."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    ts.register(get_types_from_msg("int32 speed\nstring note", "fleet_msgs/msg/Status"))
    with Writer(tmp_path / "in", version=8) as writer:
        cam = writer.add_connection("/cam/image_raw", IMAGE, typestore=ts)
        status = writer.add_connection("/status", "fleet_msgs/msg/Status", typestore=ts)
        chatter = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        for i in range(2):
            msg = image(ts, header(ts, i), pics[i], "rgb8")
            writer.write(cam, T0 + i * STEP, ts.serialize_cdr(msg, IMAGE))
            writer.write(status, T0 + i * STEP + 1, ts.serialize_cdr(
                ts.types["fleet_msgs/msg/Status"](speed=i, note="ok"), "fleet_msgs/msg/Status"))
            writer.write(chatter, T0 + i * STEP + 2, ts.serialize_cdr(string_msg("hi"), "std_msgs/msg/String"))
    db = sqlite3.connect(next((tmp_path / "in").glob("*.db3")))
    db.execute("DELETE FROM message_definitions")
    db.commit()
    db.close()
    summary = replay_bag(tmp_path / "in", tmp_path / "out", dcp, copy_all_topics=True, progress=False)
    assert summary.frames_out == 2
    assert summary.copied == {"/cam/image_raw": 2, "/chatter": 2}
    assert list(summary.not_copied) == ["/status"] and "fleet_msgs/msg/Status" in summary.not_copied["/status"]
    assert "NOT copied: /status" in summary.format()
    out = read_bag(tmp_path / "out")
    assert sorted(out) == ["/cam/image_raw", "/chatter", "/dehazed/depth", "/dehazed/haze_level", "/dehazed/image"]
    assert out["/chatter"][1][1].data == "hi"


def test_the_engine_is_loaded_only_after_the_topics_are_checked(tmp_path, small_bag, dcp):
    loads = []

    def load():
        loads.append(1)
        return dcp

    with pytest.raises(BagError, match="'/front' is not in"):
        BagReplay(small_bag, tmp_path / "out", image_topics=["/front"], progress=False).run(load_dehazer=load)
    assert loads == [] and listing(tmp_path) == ["in"]
    summary = BagReplay(small_bag, tmp_path / "out", progress=False).run(load_dehazer=load)
    assert loads == [1] and summary.frames_out == 6
    with pytest.raises(ValueError, match="load_dehazer"):
        BagReplay(small_bag, tmp_path / "other", progress=False).run()
