"""Hostile inputs, each made here and small: every one ends in one clear line, and nothing good is lost.

Decompression bombs are crafted from headers (a PNG IHDR or a JPEG SOF declaring a huge size over a few bytes of
data); they are refused before anything is allocated.  Damaged bags are real rosbag2 / ROS 1 files cut or corrupted
on disk; the full disk is a real size-limited tmpfs (or, where mounting is not permitted, RLIMIT_FSIZE).
"""
from __future__ import annotations

import os
import resource
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from bag_factory import T0, TS1, TS2, Entry, compressed, header, image, photos, write_bag1, write_bag2

from dcmpnet_core.checkpoints.builder import load_model, save_model
from dcmpnet_core.checkpoints.format import build_checkpoint
from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_core.models.config import ConfigError, get_variant, to_dict
from dcmpnet_core.models.dcmpnet import DCMPNet
from dcmpnet_core.utils.decoding import DecodeError, decode_checked
from dcmpnet_ros.conversions import MessageRejected, decode_compressed
from dcmpnet_ros.params import NodeParams

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
NO_WEIGHTS = {"DCMPNET_DEFAULT_WEIGHTS": "/nonexistent/none.pt"}


def dcmpnet(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcmpnet_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**ENV, **(env or {})}, cwd=ROOT, **kw)


def one_clean_error(res: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


# ---------------------------------------------------------------------------------------- crafted files
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid-looking PNG declaring width x height RGB pixels over a ~100-byte deflate stream (never inflated)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 frame header is patched to declare width x height."""
    data = bytearray(jpeg_bytes(photos(32, 32)[0]))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def jpeg_cut_short(rgb: np.ndarray) -> bytes:
    """Half of a real JPEG's scan, closed with EOI: libjpeg only warns and fills the rest with grey."""
    data = jpeg_bytes(rgb)
    return data[:len(data) // 2].rstrip(b"\xff") + b"\xff\xd9"


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


def write_video(path: Path, frames: list[np.ndarray], codec: str = "MJPG") -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10, (w, h))
    for f in frames:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def sane_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = DCMPNet("tiny")
    with torch.no_grad():
        model.depth_net.head.bias += 1.0          # random weights, but a positive, varying depth map
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_model(model, path)
    return path


# ------------------------------------------------------------------------------------- dcmpnet infer
def test_one_infer_batch_of_hostile_files_loses_no_good_input(tmp_path):
    """Bombs, odd TIFFs, a corrupt JPEG, a GIF and a name collision in one batch: each one line, the rest done."""
    src = tmp_path / "in"
    pics = photos(48, 64)
    write_rgb(src / "good.png", pics[0])
    (src / "bomb_png.png").write_bytes(png_bomb(30000, 30000))
    (src / "bomb_jpeg.jpg").write_bytes(jpeg_declaring(7000, 7000))
    (src / "cut.jpg").write_bytes(jpeg_cut_short(pics[1]))
    grey = cv2.cvtColor(pics[2], cv2.COLOR_RGB2GRAY)
    assert cv2.imwrite(str(src / "int16.tif"), grey.astype(np.int16))
    assert cv2.imwrite(str(src / "int32.tif"), grey.astype(np.int32))
    assert cv2.imwrite(str(src / "float64.tif"), pics[3][..., ::-1].astype(np.float64) / 255.0)
    write_video(src / "clip.avi", pics[:4])
    write_rgb(src / "clip_000003.png", pics[1])     # the name of clip.avi's fourth frame outputs
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a" + b"\x00" * 20)
    out = tmp_path / "out"

    start = time.perf_counter()
    res = dcmpnet("infer", src, gif, "-o", out, "--backend", "dcp", env=NO_WEIGHTS)
    elapsed = time.perf_counter() - start
    one_clean_error(res, 1, "6 input(s) could not be processed",
                    f"{src / 'bomb_png.png'}: its header declares 900000000 pixels, above the pixel budget",
                    f"{src / 'bomb_jpeg.jpg'}: its header declares 7000 x 7000 = 49000000 pixels",
                    f"{src / 'cut.jpg'}: corrupt JPEG data, libjpeg: Corrupt JPEG data: premature end of data segment",
                    f"{src / 'int16.tif'}: int16 samples are not supported",
                    f"{src / 'int32.tif'}: int32 samples are not supported",
                    f"{gif}: unsupported file type '.gif'")
    assert elapsed < 60, "the bombs were refused from their headers, not decoded"
    assert "3 image(s) and 4 video frame(s)" in res.stdout
    for stem in ("good", "float64", "clip_000000", "clip_000003", "clip_000003_2"):
        for suffix in ("_dehazed.png", "_depth.npy", "_depth.png"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
    # 21 outputs from 7 output sets: the image named like a video frame got its own names, mapped in the summary.
    assert f"{src / 'clip_000003.png'} -> {out / 'clip_000003_2'}_* (renamed: clip_000003_* would overwrite the " \
           "outputs of clip)" in res.stdout
    assert np.load(out / "clip_000003_2_depth.npy").shape == (48, 64)
    assert not (out / "cut_dehazed.png").exists() and not (out / "bomb_png_dehazed.png").exists()


def test_infer_never_overwrites_an_input(tmp_path):
    a = write_rgb(tmp_path / "a.png", photos(48, 64)[0])
    a_depth = write_rgb(tmp_path / "a_depth.png", photos(48, 64)[1])
    before = a_depth.read_bytes()
    res = dcmpnet("infer", a, a_depth, "-o", tmp_path, "--backend", "dcp", env=NO_WEIGHTS)
    assert res.returncode == 0, res.stderr
    assert a_depth.read_bytes() == before, "the input a_depth.png was overwritten"
    assert (tmp_path / "a_2_depth.png").is_file() and (tmp_path / "a_depth_depth.png").is_file()
    assert f"{a} -> {tmp_path / 'a_2'}_* (renamed: a_* would overwrite input a_depth.png)" in res.stdout


def test_infer_pixel_budget_option_and_output_path_errors(tmp_path):
    img = write_rgb(tmp_path / "in" / "a.png", photos(48, 64)[0])
    res = dcmpnet("infer", img, "-o", tmp_path / "out", "--backend", "dcp", "--max-input-pixels", "1000",
                  env=NO_WEIGHTS)
    one_clean_error(res, 1, f"{img}: its header declares 64 x 48 = 3072 pixels, above the pixel budget of 1000")
    res = dcmpnet("infer", img, "-o", tmp_path / "out", "--backend", "dcp", "--max-input-pixels", "10",
                  env=NO_WEIGHTS)
    one_clean_error(res, 2, "--max-input-pixels: expected an integer >= 256")
    res = dcmpnet("infer", img, "-o", img, "--backend", "dcp", env=NO_WEIGHTS)
    one_clean_error(res, 2, f"dcmpnet infer: error: -o/--output: {img} exists and is not a folder")
    assert len(res.stderr.strip().splitlines()) == 1
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("mounting a read-only tmpfs is not permitted here")
    try:
        res = dcmpnet("infer", img, "-o", ro / "out", "--backend", "dcp", env=NO_WEIGHTS)
        one_clean_error(res, 2, f"-o/--output: cannot write to {ro / 'out'}: Read-only file system")
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_truncated_video_is_reported_with_its_frame_counts(tmp_path):
    video = write_video(tmp_path / "long.avi", [photos(48, 64)[i % 4] for i in range(30)])
    data = video.read_bytes()
    video.write_bytes(data[:len(data) // 2])
    res = dcmpnet("infer", video, "-o", tmp_path / "out", "--backend", "dcp", env=NO_WEIGHTS)
    one_clean_error(res, 1, f"{video}: only ", " of the 30 frames its header declares could be decoded")
    assert (tmp_path / "out" / "long_000000_dehazed.png").is_file()


# ------------------------------------------------------------------------------------------ decoders
def test_corrupt_jpeg_is_detected_and_benign_warnings_are_not():
    rgb = photos(48, 64)[0]
    with pytest.raises(DecodeError) as info:
        decode_checked(np.frombuffer(jpeg_cut_short(rgb), np.uint8), cv2.IMREAD_COLOR)
    assert info.value.reason == "corrupt_data"
    good = jpeg_bytes(rgb)
    padded = good[:-2] + b"\x00\x00\x00" + good[-2:]          # "extraneous bytes before marker 0xd9": pixels intact
    img = decode_checked(np.frombuffer(padded, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (48, 64, 3)


def test_compressed_message_budget_is_configurable_and_corrupt_jpeg_rejected():
    msg = compressed(TS2, header(TS2, 0), photos(48, 64)[0])
    assert decode_compressed(msg).rgb.shape == (48, 64, 3)
    with pytest.raises(MessageRejected, match="at most 1000 pixels, got 64 x 48 = 3072") as info:
        decode_compressed(msg, max_pixels=1000)
    assert info.value.reason == "too_large"
    bomb = TS2.types["sensor_msgs/msg/CompressedImage"](header=header(TS2, 0), format="jpeg",
                                                        data=np.frombuffer(jpeg_declaring(7000, 7000), np.uint8))
    with pytest.raises(MessageRejected, match="7000 x 7000 = 49000000") as info:
        decode_compressed(bomb)
    assert info.value.reason == "too_large"
    cut = TS2.types["sensor_msgs/msg/CompressedImage"](header=header(TS2, 0), format="jpeg",
                                                       data=np.frombuffer(jpeg_cut_short(photos()[0]), np.uint8))
    with pytest.raises(MessageRejected) as info:
        decode_compressed(cut)
    assert info.value.reason == "corrupt_data"
    assert NodeParams.from_mapping({"max_input_pixels": 1000}).max_input_pixels == 1000
    with pytest.raises(ValueError, match="max_input_pixels"):
        NodeParams.from_mapping({"max_input_pixels": 10})


def test_big_endian_float_input_is_accepted():
    engine = Dehazer(backend="dcp")
    img = photos(48, 64)[0].astype(np.float32) / 255.0
    res = engine(img.astype(">f4"))
    np.testing.assert_array_equal(res.dehazed, engine(img).dehazed)


# ------------------------------------------------------------------------------------- engine, weights
def test_huge_weights_refused_at_load_and_counted_when_run(tmp_path, sane_ckpt):
    torch.manual_seed(0)
    model = DCMPNet("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e30)                          # finite, so the NaN/Inf weight check passes
    path = tmp_path / "huge.pt"
    save_model(model, path)
    with pytest.raises(ValueError, match="output on a 32x32 probe image holds .* NaN/Inf"):
        Dehazer.from_checkpoint(path, device="cpu")
    res = dcmpnet("infer", write_rgb(tmp_path / "a.png", photos(48, 64)[0]), "-o", tmp_path / "o", "--weights", path,
                  "--device", "cpu")
    one_clean_error(res, 2, "refusing these weights")

    engine = Dehazer(model.eval(), device="cpu", bypass_below=0.0)   # what an fp16 overflow on a GPU looks like
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = engine(photos(48, 64)[0]), engine(photos(48, 64)[1])
    assert first.nonfinite_output > 0 and second.output_faulty and engine.output_faults == 2
    assert [str(w.message) for w in caught if "network's output" in str(w.message)] == [first.warnings[-1]]
    assert "likely weights out of range" in first.warnings[-1]
    assert first.dehazed.dtype == np.uint8 and np.isfinite(first.depth).all()

    sane = Dehazer.from_checkpoint(sane_ckpt, device="cpu", bypass_below=0.0)
    ok = sane(photos(48, 64)[0])
    assert not ok.output_faulty and sane.output_faults == 0
    with torch.no_grad():                                    # a DE head that outputs one constant
        sane.model.depth_net.head.weight.zero_()
    assert sane(photos(48, 64)[0]).collapsed_output and sane.output_faults == 1


@pytest.mark.parametrize("override,needle", [
    ({"dehaze": {"depths": [20000, 1, 2, 1, 1]}}, "dehaze.depths: values above 64"),
    ({"dehaze": {"guide_width": 200000}}, "dehaze.guide_width: values above 2048"),
    ({"depth": {"widths": [4, 8, 12, 10**7]}}, "depth.widths: values above 2048"),
])
def test_checkpoint_config_bounds_are_checked_before_building(tmp_path, override, needle):
    tiny = DCMPNet("tiny")
    config = to_dict(get_variant("tiny"))
    for section, values in override.items():
        config[section].update(values)
    path = tmp_path / "evil.pt"
    torch.save(build_checkpoint(config, tiny.dehaze_net.state_dict(), tiny.depth_net.state_dict(),
                                "relative_depth"), path)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=needle):
        load_model(path)
    assert time.perf_counter() - start < 5


def test_misfitting_tensors_are_found_on_a_meta_skeleton(tmp_path):
    small = DCMPNet("small")
    path = tmp_path / "mismatch.pt"
    torch.save(build_checkpoint(to_dict(get_variant("paper")), small.dehaze_net.state_dict(),
                                small.depth_net.state_dict(), "relative_depth"), path)
    with pytest.raises(Exception, match="weights do not fit the network"):
        load_model(path)


# ------------------------------------------------------------------------------------------ dcmpnet bag
def _bag_entries(ts, n: int, h: int = 64, w: int = 80, raw: bool = False) -> list[Entry]:
    pics = photos(h, w)
    if raw:
        return [Entry("/cam/image_raw", "sensor_msgs/msg/Image", T0 + i * 10**8,
                      image(ts, header(ts, i), pics[i % 4], "rgb8")) for i in range(n)]
    return [Entry("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", T0 + i * 10**8,
                  compressed(ts, header(ts, i), pics[i % 4])) for i in range(n)]


@pytest.fixture(scope="module")
def damaged_bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("damaged")
    bags = {"sqlite3": write_bag2(root / "sq", _bag_entries(TS2, 8)),
            "mcap": write_bag2(root / "mc", _bag_entries(TS2, 8), storage="mcap"),
            "ros1": write_bag1(root / "r1.bag", _bag_entries(TS1, 8))}
    for path in bags.values():
        f = path if path.is_file() else next(p for p in path.iterdir() if p.suffix in (".db3", ".mcap"))
        f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
    missing = write_bag2(root / "nodb", _bag_entries(TS2, 2))
    (missing / "nodb.db3").unlink()
    badkey = write_bag2(root / "badkey", _bag_entries(TS2, 2))
    meta = badkey / "metadata.yaml"
    meta.write_text(meta.read_text().replace("message_count", "msg_cnt"))
    return {**bags, "missing_db3": missing, "bad_metadata_key": badkey}


@pytest.mark.parametrize("case", ["sqlite3", "mcap", "ros1", "missing_db3", "bad_metadata_key"])
def test_damaged_bag_storage_is_one_line_exit_2(tmp_path, damaged_bags, case, capsys):
    from dcmpnet_ros.cli import main

    code = main(["bag", str(damaged_bags[case]), str(tmp_path / "out"), "--backend", "dcp", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"dcmpnet bag: error: INPUT: cannot read {damaged_bags[case]}: "), err
    assert not (tmp_path / "out").exists()


def _corrupt_mcap_chunk(path: Path, index: int) -> int:
    """Give chunk ``index`` its true CRC (as the mcap tools write it), then damage its data; returns its messages."""
    from mcap.reader import make_reader

    with path.open("rb") as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    chunk = chunks[index]
    with path.open("r+b") as f:
        f.seek(chunk.chunk_start_offset + 9 + 16)
        size = struct.unpack("<Q", f.read(8))[0]
        f.seek(chunk.chunk_start_offset + 49)               # uncompressed chunk: data follows an empty codec name
        data = f.read(size)
        f.seek(chunk.chunk_start_offset + 33)
        f.write(struct.pack("<I", zlib.crc32(data)))
        f.seek(chunk.chunk_start_offset + 49 + size // 2)
        f.write(b"\x00" * 64)
    return len(chunks)


def test_corrupt_mcap_chunk_mid_file_keeps_every_readable_frame(tmp_path, capsys):
    from bag_factory import read_bag

    from dcmpnet_ros.cli import main

    bag = write_bag2(tmp_path / "in", _bag_entries(TS2, 60, 128, 160, raw=True), storage="mcap")
    assert _corrupt_mcap_chunk(bag / "in.mcap", 2) == 4                  # 3 of 4 chunks stay readable
    code = main(["bag", str(bag), str(tmp_path / "out"), "--backend", "dcp", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "60 in, 42 out, 18 skipped (unreadable 18)" in out
    assert "Chunk checksum mismatch" in err and "Traceback" not in err
    assert len(read_bag(tmp_path / "out")["/dehazed/image"]) == 42


def _full_disk(tmp_path: Path) -> tuple[Path, dict]:
    """A 200 KiB tmpfs when mounting is permitted (root), else a subprocess limited by RLIMIT_FSIZE."""
    target = tmp_path / "small"
    target.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(target)],
                      capture_output=True).returncode == 0:
        return target, {}

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # over the limit, write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, 200 * 1024))

    return target, {"preexec_fn": limit}


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_full_disk_during_bag_is_one_line_exit_1(tmp_path, storage):
    src = write_bag2(tmp_path / "in", _bag_entries(TS2, 12, raw=True), storage=storage)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    target, how = _full_disk(tmp_path)
    try:
        res = dcmpnet("bag", src, target / "out", "--backend", "dcp", "--no-progress", **how)
        one_clean_error(res, 1, f"dcmpnet bag: error: cannot write the output bag {target / 'out'}: ",
                        f"(nothing was written to {target / 'out'})")
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        if not how:                                        # a real full disk (not RLIMIT_FSIZE): named as such
            assert f"{target / 'out'}: No space left on device" in res.stderr, res.stderr
        assert list(target.iterdir()) == []
        assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    finally:
        if not how:
            subprocess.run(["umount", str(target)], check=True)


def test_ctrl_c_after_the_output_is_complete_exits_0(tmp_path, monkeypatch, capsys):
    from dcmpnet_ros import bag_cli
    from dcmpnet_ros.cli import main

    src = write_bag2(tmp_path / "in", _bag_entries(TS2, 2))

    def late_signal(summary) -> int:
        raise KeyboardInterrupt            # SIGINT while the summary of a finished replay is being printed

    monkeypatch.setattr(bag_cli, "_report", late_signal)
    assert main(["bag", str(src), str(tmp_path / "out"), "--backend", "dcp", "--no-progress"]) == 0
    assert "interrupted after" in capsys.readouterr().err
    assert (tmp_path / "out" / "metadata.yaml").is_file()
