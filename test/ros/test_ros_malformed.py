"""Malformed Image / CompressedImage messages: each is rejected with its own reason code, nothing ever crashes.

Every case starts from a real photo and breaks one thing. The table doubles as documentation of the reason codes.
"""
from __future__ import annotations

import random
import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from msg_kinds import KINDS, kit, padded_rows, photo, png_bytes

from dcmpnet_ros.conversions import REJECT_REASONS, MessageRejected, decode_compressed, decode_image, decode_message

H, W = 96, 128
RGB = photo("astronaut")
GREY = photo("camera")
RAW_RGB = RGB.tobytes()
JPEG = cv2.imencode(".jpg", RGB[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
PNG = cv2.imencode(".png", RGB[..., ::-1])[1].tobytes()
GREY_PNG = png_bytes(GREY)


def _img(k, raw=RAW_RGB, height=H, width=W, encoding="rgb8", step=W * 3, bigendian=0):
    return k.image(raw, height, width, encoding, step, bigendian)


def _float_with(value, bigendian=False):
    values = GREY.astype(np.float32) / 255
    values[50, 60] = value
    raw, step = padded_rows(values, 0, ">f4" if bigendian else "<f4")
    return raw, step


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    sof = data.find(b"\xff\xc0")
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def _damage_png_idat(data: bytes) -> bytes:
    # overwrite the middle of the compressed pixels but keep chunk CRCs valid, so only zlib/filters notice
    start = data.find(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8:start - 4])[0]
    body = bytearray(data[start:start + length])
    body[len(body) // 3: len(body) // 3 + 200] = bytes(random.Random(0).randrange(256) for _ in range(200))
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)) & 0xFFFFFFFF)
    return data[:start] + bytes(body) + crc + data[start + length + 4:]


f_nan, f_nan_step = _float_with(np.nan)
f_inf, f_inf_step = _float_with(np.inf, bigendian=True)

# (case id, message builder taking a kit, reason)
RAW_CASES = [
    ("truncated_by_one_row", lambda k: _img(k, raw=RAW_RGB[:-W * 3]), "truncated_data"),
    ("truncated_by_one_byte", lambda k: _img(k, raw=RAW_RGB[:-1]), "truncated_data"),
    ("empty_data", lambda k: _img(k, raw=b""), "truncated_data"),
    ("padded_step_without_padding_bytes", lambda k: _img(k, step=W * 3 + 8), "truncated_data"),
    ("step_absurdly_large", lambda k: _img(k, step=2**32 - 1), "truncated_data"),
    ("step_too_small_rgb8", lambda k: _img(k, step=W * 3 - 1), "step_too_small"),
    ("step_too_small_16bit_counted_in_pixels", lambda k: _img(k, encoding="mono16", step=W), "step_too_small"),
    ("step_zero", lambda k: _img(k, step=0), "step_too_small"),
    ("unknown_encoding", lambda k: _img(k, encoding="rgb9"), "unsupported_encoding"),
    ("empty_encoding", lambda k: _img(k, encoding=""), "unsupported_encoding"),
    ("unsupported_3_channel_float", lambda k: _img(k, encoding="32FC3"), "unsupported_encoding"),
    ("width_zero", lambda k: _img(k, width=0, step=0), "zero_size"),
    ("height_zero", lambda k: _img(k, height=0), "zero_size"),
    ("absurd_dimensions", lambda k: _img(k, height=2**31, width=2**31, step=2**32 - 1), "too_large"),
    ("above_max_pixels_60kpx", lambda k: _img(k, height=300, width=200, step=600), "too_large"),
    ("bayer_odd_width", lambda k: _img(k, raw=GREY.tobytes(), width=W - 1, encoding="bayer_rggb8", step=W),
     "bad_bayer_size"),
    ("bayer16_odd_height", lambda k: _img(k, raw=GREY.tobytes() * 2, height=H - 1, encoding="bayer_grbg16",
                                          step=W * 2), "bad_bayer_size"),
    ("yuv422_odd_width", lambda k: _img(k, width=W - 1, encoding="yuv422", step=W * 2), "bad_yuv_size"),
    ("nan_in_32FC1", lambda k: _img(k, raw=f_nan, encoding="32FC1", step=f_nan_step), "non_finite"),
    ("inf_in_big_endian_32FC1", lambda k: _img(k, raw=f_inf, encoding="32FC1", step=f_inf_step, bigendian=1),
     "non_finite"),
]

COMPRESSED_CASES = [
    ("empty", lambda k: k.compressed(b"", "jpeg"), "empty_compressed"),
    ("random_bytes", lambda k: k.compressed(RGB.tobytes()[:5000], "jpeg"), "corrupt_compressed"),
    ("jpeg_segment_length_zero", lambda k: k.compressed(JPEG[:4] + b"\x00\x00" + JPEG[6:], "jpeg"),
     "corrupt_compressed"),
    ("jpeg_scan_before_frame_header", lambda k: k.compressed(b"\xff\xd8\xff\xda\x00\x08" + JPEG[200:], "jpeg"),
     "corrupt_compressed"),
    ("jpeg_cut_in_half", lambda k: k.compressed(JPEG[:len(JPEG) // 2], "jpeg"), "truncated_compressed"),
    ("jpeg_cut_before_eoi", lambda k: k.compressed(JPEG[:-2], "rgb8; jpeg compressed bgr8"), "truncated_compressed"),
    ("jpeg_cut_inside_header", lambda k: k.compressed(JPEG[:40], "jpeg"), "truncated_compressed"),
    ("png_cut", lambda k: k.compressed(PNG[:len(PNG) * 3 // 4], "png"), "truncated_compressed"),
    ("png_damaged_pixels", lambda k: k.compressed(_damage_png_idat(PNG), "png"), "corrupt_compressed"),
    ("png_bad_ihdr", lambda k: k.compressed(PNG[:12] + b"IHDX" + PNG[16:], "png"), "corrupt_compressed"),
    ("grey_png_declared_bgr8", lambda k: k.compressed(GREY_PNG, "bgr8; png compressed bgr8"), "wrong_channel_count"),
    ("colour_jpeg_declared_mono8", lambda k: k.compressed(JPEG, "mono8; jpeg compressed mono8"),
     "wrong_channel_count"),
    ("rgba_png_declared_bgr8", lambda k: k.compressed(png_bytes(np.dstack([RGB, GREY])), "bgra8; png compressed bgr8"),
     "wrong_channel_count"),
    ("8bit_png_declared_mono16", lambda k: k.compressed(GREY_PNG, "mono16; png compressed mono16"), "wrong_bit_depth"),
    ("png_header_claims_100000_squared", lambda k: k.compressed(png_bytes(GREY, size=(100000, 100000)), "png"),
     "too_large"),
    ("jpeg_header_claims_60000_squared", lambda k: k.compressed(_patch_jpeg_size(JPEG, 60000, 60000), "jpeg"),
     "too_large"),
    ("jpeg_header_claims_7000_squared", lambda k: k.compressed(_patch_jpeg_size(JPEG, 7000, 7000), "jpeg"),
     "too_large"),
    # Cut in the middle of the scan, then closed with EOI: libjpeg only warns and fills the rest with grey.
    ("jpeg_cut_short_then_eoi", lambda k: k.compressed(JPEG[:len(JPEG) // 2].rstrip(b"\xff") + b"\xff\xd9", "jpeg"),
     "corrupt_data"),
    ("png_zero_width", lambda k: k.compressed(png_bytes(GREY, size=(0, H)), "png"), "zero_size"),
    ("compressed_depth", lambda k: k.compressed(b"\x00" * 12 + GREY_PNG, "16UC1; compressedDepth png"),
     "unsupported_format"),
    ("bmp_stream", lambda k: k.compressed(cv2.imencode(".bmp", RGB)[1].tobytes(), "bmp"), "unsupported_format"),
    ("theora_format", lambda k: k.compressed(JPEG, "theora"), "unsupported_format"),
]

# Messages no ROS library would build, but a buggy publisher or a damaged bag can deliver.
ANY = SimpleNamespace
ODD_CASES = [
    ("encoding_not_a_string", ANY(encoding=None, height=H, width=W, step=W * 3, is_bigendian=0, data=RAW_RGB),
     "malformed"),
    ("height_is_a_string", ANY(encoding="rgb8", height="96", width=W, step=W * 3, is_bigendian=0, data=RAW_RGB),
     "malformed"),
    ("negative_width", ANY(encoding="rgb8", height=H, width=-W, step=W * 3, is_bigendian=0, data=RAW_RGB),
     "malformed"),
    ("float_data_array", ANY(encoding="rgb8", height=H, width=W, step=W * 3, is_bigendian=0,
                             data=np.zeros(H * W * 3, np.float32)), "malformed"),
    ("data_is_a_string", ANY(encoding="rgb8", height=H, width=W, step=W * 3, is_bigendian=0, data="x" * 40000),
     "malformed"),
    ("data_list_out_of_byte_range", ANY(encoding="mono8", height=1, width=2, step=2, is_bigendian=0, data=[1, 300]),
     "malformed"),
    ("no_data_field", ANY(encoding="rgb8", height=H, width=W, step=W * 3, is_bigendian=0), "malformed"),
    ("not_a_message", None, "malformed"),
]

ODD_COMPRESSED = [
    ("format_not_a_string", ANY(format=None, data=JPEG), "malformed"),
    ("data_is_text", ANY(format="jpeg", data="not an image"), "malformed"),
    ("no_format_field", ANY(data=JPEG), "malformed"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case,build,reason", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_rejected(kind, case, build, reason):
    msg = build(kit(kind))
    with pytest.raises(MessageRejected) as info:
        decode_image(msg, max_pixels=50_000)
    assert info.value.reason == reason, str(info.value)
    assert str(info.value).startswith(reason + ": Image.")         # names the field
    assert "expected" in str(info.value) and "got" in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case,build,reason", COMPRESSED_CASES, ids=[c[0] for c in COMPRESSED_CASES])
def test_compressed_rejected(kind, case, build, reason):
    msg = build(kit(kind))
    with pytest.raises(MessageRejected) as info:
        decode_compressed(msg, max_pixels=1_000_000)
    assert info.value.reason == reason, str(info.value)
    assert "CompressedImage." in str(info.value) and "expected" in str(info.value)


@pytest.mark.parametrize("case,msg,reason", ODD_CASES, ids=[c[0] for c in ODD_CASES])
def test_odd_image_objects(case, msg, reason):
    with pytest.raises(MessageRejected) as info:
        decode_image(msg)
    assert info.value.reason == reason, str(info.value)


@pytest.mark.parametrize("case,msg,reason", ODD_COMPRESSED, ids=[c[0] for c in ODD_COMPRESSED])
def test_odd_compressed_objects(case, msg, reason):
    with pytest.raises(MessageRejected) as info:
        decode_compressed(msg)
    assert info.value.reason == reason, str(info.value)


def test_reason_codes_are_documented_and_covered():
    used = {c[2] for c in RAW_CASES + COMPRESSED_CASES + ODD_CASES + ODD_COMPRESSED}
    assert used == set(REJECT_REASONS)


def test_exception_carries_field_expected_actual():
    with pytest.raises(MessageRejected) as info:
        decode_image(_img(kit("rosbags"), step=10))
    exc = info.value
    assert isinstance(exc, ValueError)
    assert (exc.reason, exc.field, exc.actual) == ("step_too_small", "Image.step", 10)
    assert str(exc) == "step_too_small: Image.step: expected >= width * 3 = 384, got 10"


def test_exception_survives_pickling():
    import pickle

    with pytest.raises(MessageRejected) as info:
        decode_compressed(kit("rosbags").compressed(b"", "png"))
    back = pickle.loads(pickle.dumps(info.value))
    assert (back.reason, back.field, str(back)) == ("empty_compressed", "CompressedImage.data", str(info.value))


def test_decode_message_dispatches():
    ros = kit("rclpy")
    assert decode_message(ros.compressed(PNG, "png")).rgb.shape == RGB.shape
    assert decode_message(_img(ros)).source_encoding == "rgb8"
    with pytest.raises(MessageRejected) as info:
        decode_message(ros.compressed(b"", "jpeg"))
    assert info.value.reason == "empty_compressed"


def test_max_pixels_argument_is_checked():
    with pytest.raises(ValueError, match="max_pixels: expected a positive int, got 0"):
        decode_image(_img(kit("rosbags")), max_pixels=0)


def test_good_frame_after_bad_ones_still_decodes():
    k = kit("rclpy")
    for _, build, _ in RAW_CASES:
        with pytest.raises(MessageRejected):
            decode_image(build(k), max_pixels=50_000)
    np.testing.assert_array_equal(decode_image(_img(k)).rgb, RGB)


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_messages_never_crash(seed):
    """Random field values and byte damage: a valid image or MessageRejected, never any other exception."""
    rng = random.Random(seed)
    ros = kit("rosbags")
    small = RGB[:16, :20]
    encodings = ["rgb8", "bgr16", "mono16", "32FC1", "bayer_gbrg8", "bayer_bggr16", "yuv422", "rgba8", "64FC1",
                 "mono8", "8UC4", "bogus"]
    reasons: dict[str, int] = {}
    for _ in range(150):
        raw = bytearray(small.tobytes() * 3)
        if rng.random() < 0.5:
            del raw[rng.randrange(len(raw)):]
        for _ in range(rng.randrange(4) if raw else 0):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        msg = ros.Image(header=ros.header(), height=rng.choice([0, 1, 15, 16, 17, 2**20]),
                        width=rng.choice([0, 1, 19, 20, 21, 2**20]), encoding=rng.choice(encodings),
                        is_bigendian=rng.choice([0, 1, 7]), step=rng.choice([0, 19, 20, 40, 60, 64, 80, 160, 2**33]),
                        data=np.frombuffer(bytes(raw), np.uint8))
        try:
            out = decode_image(msg)
            assert out.rgb.shape == (msg.height, msg.width, 3) and out.rgb.dtype == np.uint8
            reasons["ok"] = reasons.get("ok", 0) + 1
        except MessageRejected as exc:
            assert exc.reason in REJECT_REASONS
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
    for _ in range(60):
        data = bytearray(rng.choice([JPEG, PNG, GREY_PNG]))
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(data))
            data[pos:pos + rng.randrange(1, 30)] = bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
        try:
            decode_compressed(ros.compressed(bytes(data), rng.choice(["jpeg", "png", "", "bgr8; png compressed bgr8"])))
            reasons["ok"] = reasons.get("ok", 0) + 1
        except MessageRejected as exc:
            assert exc.reason in REJECT_REASONS
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
    assert len(reasons) >= 4, reasons      # the fuzzing reached several different checks
