"""Image message conversion on real photos, for rosbags and rclpy-style message classes.

Expected pixels come from independent code: NumPy channel shuffles and BT.601 formulas, OpenCV/Pillow codecs,
and a zlib PNG writer, never from the decoder under test.
"""
from __future__ import annotations

import array
import io

import cv2
import numpy as np
import pytest
from msg_kinds import KINDS, kit, padded_rows, photo, png_bytes, psnr

from dcmpnet_ros.conversions import (
    SUPPORTED_ENCODINGS,
    DecodedImage,
    copy_camera_info,
    decode_compressed,
    decode_image,
    encode_depth,
    encode_image,
    header_key,
    is_rosbags_class,
    output_encoding_for,
)


@pytest.fixture(params=KINDS)
def k(request):
    return kit(request.param)


@pytest.fixture(scope="module")
def rgb():
    return photo("astronaut")


@pytest.fixture(scope="module")
def rgb2():
    return photo("coffee")


@pytest.fixture(scope="module")
def grey():
    return photo("camera")


def _check(decoded: DecodedImage, expected: np.ndarray, encoding: str):
    assert isinstance(decoded, DecodedImage)
    assert decoded.source_encoding == encoding
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == expected.shape
    assert decoded.rgb.flags.c_contiguous and decoded.rgb.flags.writeable
    np.testing.assert_array_equal(decoded.rgb, expected)


def test_kinds_are_told_apart(k):
    assert is_rosbags_class(k.Image) == (k.kind == "rosbags")


# ------------------------------------------------------------------------------------------ 8-bit raw encodings
@pytest.mark.parametrize("pad", [0, 7])
@pytest.mark.parametrize("encoding,order", [("rgb8", [0, 1, 2]), ("bgr8", [2, 1, 0]), ("8UC3", [2, 1, 0]),
                                            ("rgba8", [0, 1, 2, 3]), ("bgra8", [2, 1, 0, 3]),
                                            ("8UC4", [2, 1, 0, 3])])
def test_8bit_colour(k, rgb, rgb2, encoding, order, pad):
    four = np.dstack([rgb, rgb2[..., 1]])        # a real alpha plane that must be ignored
    pixels = four[..., order]
    raw, step = padded_rows(pixels, pad, "u1")
    msg = k.image(raw, rgb.shape[0], rgb.shape[1], encoding, step)
    _check(decode_image(msg), rgb, encoding)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8(k, grey, encoding):
    raw, step = padded_rows(grey, 3, "u1")
    _check(decode_image(k.image(raw, *grey.shape, encoding, step)), np.dstack([grey] * 3), encoding)


def test_decoded_array_is_a_copy(k, rgb):
    raw, step = padded_rows(rgb, 0, "u1")
    msg = k.image(raw, *rgb.shape[:2], "rgb8", step)
    out = decode_image(msg).rgb
    out[:] = 0
    np.testing.assert_array_equal(decode_image(msg).rgb, rgb)


@pytest.mark.parametrize("container", [bytes, bytearray, list, memoryview])
def test_other_data_containers(rgb, container):
    # rclpy accepts any sequence of ints; other publishers may hand bytes or a memoryview
    ros = kit("rclpy")
    raw, step = padded_rows(rgb, 0, "u1")
    msg = ros.image(raw, *rgb.shape[:2], "rgb8", step)
    object.__setattr__(msg, "_data", container(raw) if container is not list else list(raw))
    _check(decode_image(msg), rgb, "rgb8")


# ---------------------------------------------------------------------------------------------------- 16-bit
def _sixteen(rgb, rgb2):
    # both bytes carry real picture content, so a byte swap or a wrong scale shows
    return rgb.astype(np.uint16) * 256 + rgb2.astype(np.uint16)


def _to8(x16):
    return np.rint(x16.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)


@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding,order", [("rgb16", [0, 1, 2]), ("bgr16", [2, 1, 0]), ("16UC3", [2, 1, 0]),
                                            ("rgba16", [0, 1, 2, 3]), ("bgra16", [2, 1, 0, 3]),
                                            ("16UC4", [2, 1, 0, 3])])
def test_16bit_colour(k, rgb, rgb2, encoding, order, pad, bigendian):
    x16 = _sixteen(rgb, rgb2)
    four = np.dstack([x16, x16[..., :1] // 3])[..., order]
    raw, step = padded_rows(four, pad, ">u2" if bigendian else "<u2")
    msg = k.image(raw, *rgb.shape[:2], encoding, step, bigendian=bigendian)
    _check(decode_image(msg), _to8(x16), encoding)


@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16bit_mono(k, grey, rgb2, encoding, bigendian):
    x16 = grey.astype(np.uint16) * 256 + rgb2[..., 0]
    raw, step = padded_rows(x16, 2, ">u2" if bigendian else "<u2")
    msg = k.image(raw, *grey.shape, encoding, step, bigendian=bigendian)
    _check(decode_image(msg), np.dstack([_to8(x16)] * 3), encoding)


def test_16bit_scale_matches_opencv_convert(k, rgb, rgb2):
    # cv_bridge converts 16 -> 8 bit with convertTo(CV_8U, 255/65535); OpenCV's convertScaleAbs is the same maths
    x16 = _sixteen(rgb, rgb2)
    raw, step = padded_rows(x16, 0, "<u2")
    out = decode_image(k.image(raw, *rgb.shape[:2], "rgb16", step)).rgb
    np.testing.assert_array_equal(out, cv2.convertScaleAbs(x16, alpha=255.0 / 65535.0))


def test_endianness_flag_is_honoured(k, rgb, rgb2):
    x16 = _sixteen(rgb, rgb2)
    raw, step = padded_rows(x16, 0, ">u2")
    right = decode_image(k.image(raw, *rgb.shape[:2], "rgb16", step, bigendian=1)).rgb
    wrong = decode_image(k.image(raw, *rgb.shape[:2], "rgb16", step, bigendian=0)).rgb
    np.testing.assert_array_equal(right, _to8(x16))
    assert psnr(wrong, rgb) < 15 < psnr(right, rgb)


# ----------------------------------------------------------------------------------------------------- float
@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("encoding,dtype", [("32FC1", "f4"), ("64FC1", "f8")])
def test_float_grey(k, grey, encoding, dtype, bigendian):
    values = grey.astype(np.float64) / 255.0
    values[:4, :4] = [[-0.5], [1.5], [2.0], [-1e30]]           # out of range saturates like cv_bridge's convertTo
    raw, step = padded_rows(values, 4, (">" if bigendian else "<") + dtype)
    out = decode_image(k.image(raw, *grey.shape, encoding, step, bigendian=bigendian))
    expected = np.rint(np.clip(values.astype(dtype), 0, 1) * 255).astype(np.uint8)
    _check(out, np.dstack([expected] * 3), encoding)


# ----------------------------------------------------------------------------------------------------- Bayer
def _mosaic(img: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer colour filter; ``pattern`` lists the 2x2 cell row by row."""
    out = np.zeros(img.shape[:2], img.dtype)
    for (dy, dx), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern):
        out[dy::2, dx::2] = img[dy::2, dx::2, "rgb".index(colour)]
    return out


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_demosaic_recovers_photo(k, pattern, bits):
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[40:168, 160:288])        # 128x128, face and flag colours
    mosaic = _mosaic(img, pattern)
    if bits == 16:
        mosaic = mosaic.astype(np.uint16) * 257
    dtype = "<u2" if bits == 16 else "u1"

    def decode_as(pat):
        raw, step = padded_rows(mosaic, 6, dtype)
        return decode_image(k.image(raw, *mosaic.shape, f"bayer_{pat}{bits}", step)).rgb

    out = decode_as(pattern)
    quality = psnr(out, img, border=2)
    assert quality > 28, f"bayer_{pattern}{bits}: PSNR {quality:.1f} dB against the photo"
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), img.reshape(-1, 3).mean(0), atol=2.0)
    for other in {"rggb", "bggr", "gbrg", "grbg"} - {pattern}:          # each wrong pattern is clearly worse
        assert psnr(decode_as(other), img, border=2) < quality - 6


# ------------------------------------------------------------------------------------------------------- YUV
def _yuv422(img: np.ndarray, order: str) -> np.ndarray:
    """BT.601 video-range 4:2:2 packing (independent NumPy maths), (H, W*2) bytes in UYVY or YUYV order."""
    f = img.astype(np.float64)
    y = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    u = (f[..., 2] - y) / 1.772
    v = (f[..., 0] - y) / 1.402
    y, u, v = 16 + y * 219 / 255, 128 + u * 224 / 255, 128 + v * 224 / 255
    u = (u[:, 0::2] + u[:, 1::2]) / 2
    v = (v[:, 0::2] + v[:, 1::2]) / 2
    y, u, v = (np.clip(np.rint(c), 0, 255).astype(np.uint8) for c in (y, u, v))
    out = np.empty((img.shape[0], img.shape[1] * 2), np.uint8)
    planes = {"uyvy": (u, y[:, 0::2], v, y[:, 1::2]), "yuyv": (y[:, 0::2], u, y[:, 1::2], v)}[order]
    for i, plane in enumerate(planes):
        out[:, i::4] = plane
    return out


@pytest.mark.parametrize("encoding,order", [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"),
                                            ("yuyv", "yuyv")])
def test_yuv422(k, rgb, encoding, order):
    packed = _yuv422(rgb, order)
    raw, step = padded_rows(packed, 4, "u1")
    out = decode_image(k.image(raw, *rgb.shape[:2], encoding, step))
    assert out.source_encoding == encoding
    assert psnr(out.rgb, rgb) > 35
    wrong = "yuyv" if order == "uyvy" else "uyvy"
    raw, step = padded_rows(_yuv422(rgb, wrong), 4, "u1")
    assert psnr(decode_image(k.image(raw, *rgb.shape[:2], encoding, step)).rgb, rgb) < 20


def test_every_supported_encoding_is_tested():
    tested = {"rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "8UC4", "mono8", "8UC1", "rgb16", "bgr16", "16UC3",
              "rgba16", "bgra16", "16UC4", "mono16", "16UC1", "32FC1", "64FC1", "yuv422", "uyvy", "yuv422_yuy2",
              "yuyv"} | {f"bayer_{p}{b}" for p in ("rggb", "bggr", "gbrg", "grbg") for b in (8, 16)}
    assert set(SUPPORTED_ENCODINGS) == tested


def test_encoding_names_ignore_case(k, rgb):
    raw, step = padded_rows(rgb[..., ::-1], 0, "u1")
    _check(decode_image(k.image(raw, *rgb.shape[:2], "BGR8", step)), rgb, "bgr8")


# ---------------------------------------------------------------------------------------------- compressed
@pytest.mark.parametrize("fmt,source", [("jpeg", "bgr8"), ("rgb8; jpeg compressed bgr8", "rgb8"),
                                        ("bgr8; jpeg compressed bgr8", "bgr8")])
def test_jpeg(k, rgb, fmt, source):
    ok, jpg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = decode_compressed(k.compressed(jpg.tobytes(), fmt))
    assert out.source_encoding == source
    np.testing.assert_array_equal(out.rgb, cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1])
    assert psnr(out.rgb, rgb) > 33


def test_jpeg_from_pillow(k, rgb):
    pil = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    pil.fromarray(rgb).save(buf, format="JPEG", quality=95)
    out = decode_compressed(k.compressed(buf.getvalue(), "jpeg"))
    assert psnr(out.rgb, rgb) > 33
    np.testing.assert_allclose(out.rgb.reshape(-1, 3).mean(0), rgb.reshape(-1, 3).mean(0), atol=1.5)


def test_grey_jpeg(k, grey):
    ok, jpg = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = decode_compressed(k.compressed(jpg.tobytes(), "mono8; jpeg compressed mono8"))
    assert out.source_encoding == "mono8"
    assert psnr(out.rgb, np.dstack([grey] * 3)) > 35
    assert (out.rgb[..., 0] == out.rgb[..., 2]).all()


@pytest.mark.parametrize("case", ["rgb", "rgba", "grey", "grey_alpha", "grey16", "rgb16", "rgba16"])
def test_png_variants(k, rgb, rgb2, grey, case):
    x16 = _sixteen(rgb, rgb2)
    pixels, bits, expected = {
        "rgb": (rgb, 8, rgb),
        "rgba": (np.dstack([rgb, rgb2[..., 0]]), 8, rgb),
        "grey": (grey, 8, np.dstack([grey] * 3)),
        "grey_alpha": (np.dstack([grey, rgb2[..., 0]]), 8, np.dstack([grey] * 3)),
        "grey16": (x16[..., 0], 16, np.dstack([_to8(x16[..., 0])] * 3)),
        "rgb16": (x16, 16, _to8(x16)),
        "rgba16": (np.dstack([x16, x16[..., :1]]), 16, _to8(x16)),
    }[case]
    out = decode_compressed(k.compressed(png_bytes(pixels, bits), "png"))
    np.testing.assert_array_equal(out.rgb, expected)
    assert out.source_encoding == {"grey": "mono8", "grey16": "mono16", "rgb16": "bgr16", "rgba16": "bgr16"}.get(
        case, "bgr8")


def test_png_from_opencv_as_image_transport_writes_it(k, rgb):
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    out = decode_compressed(k.compressed(png.tobytes(), "rgb8; png compressed bgr8"))
    _check(out, rgb, "rgb8")


def test_compressed_large_max_pixels_boundary(k, rgb):
    ok, png = cv2.imencode(".png", rgb)
    h, w = rgb.shape[:2]
    assert decode_compressed(k.compressed(png.tobytes(), "png"), max_pixels=h * w).rgb.shape == rgb.shape


# ---------------------------------------------------------------------------------------------- encode
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_encode_decode_round_trip(k, rgb, encoding):
    hdr = k.header(sec=42, nanosec=7, frame_id="cam")
    msg = encode_image(k.Image, hdr, rgb, encoding)
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step) == (96, 128, encoding, 0, 128 * 3)
    assert msg.header is hdr and header_key(msg.header) == (42, 7, "cam")
    assert isinstance(msg.data, np.ndarray if k.kind == "rosbags" else array.array)
    assert len(msg.data) == 96 * 128 * 3
    _check(decode_image(msg), rgb, encoding)
    if encoding == "bgr8":   # the bytes are really BGR, as any other consumer will read them
        np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(rgb.shape), rgb[..., ::-1])


def test_encode_mono8(k, grey):
    msg = encode_image(k.Image, k.header(), grey, "mono8")
    assert (msg.encoding, msg.step) == ("mono8", grey.shape[1])
    _check(decode_image(msg), np.dstack([grey] * 3), "mono8")


def test_encode_does_not_alias_input(k, rgb):
    img = rgb.copy()
    msg = encode_image(k.Image, k.header(), img, "rgb8")
    img[:] = 0
    _check(decode_image(msg), rgb, "rgb8")


def test_encode_depth_32fc1(k, grey):
    depth = (grey.astype(np.float32) + 1) / 256.0
    depth[0, 0] = np.nan                                   # REP 118: invalid depth may be NaN
    msg = encode_depth(k.Image, k.header(), depth)
    assert (msg.encoding, msg.is_bigendian, msg.step) == ("32FC1", 0, grey.shape[1] * 4)
    back = np.frombuffer(bytes(msg.data), "<f4").reshape(depth.shape)
    np.testing.assert_array_equal(back, depth)
    encoded64 = encode_image(k.Image, k.header(), depth.astype(np.float64), "32FC1")
    assert bytes(encoded64.data) == bytes(msg.data)


def test_encode_rejects_bad_arrays(k, rgb):
    with pytest.raises(ValueError, match="image: expected .H,W,3. uint8"):
        encode_image(k.Image, k.header(), rgb.astype(np.float32), "rgb8")
    with pytest.raises(ValueError, match="image: expected .H,W. uint8 for mono8"):
        encode_image(k.Image, k.header(), rgb, "mono8")
    with pytest.raises(ValueError, match="image: expected .H,W. float32 for 32FC1"):
        encode_image(k.Image, k.header(), rgb, "32FC1")
    with pytest.raises(ValueError, match="encoding: expected one of"):
        encode_image(k.Image, k.header(), rgb, "rgba8")
    with pytest.raises(TypeError, match="image: expected a numpy.ndarray"):
        encode_image(k.Image, k.header(), rgb.tolist(), "rgb8")


def test_output_encoding_for():
    assert output_encoding_for("rgb8") == "rgb8"
    assert output_encoding_for("bgr8") == "bgr8"
    for other in ("mono8", "bgra8", "rgb16", "bayer_rggb8", "32FC1", "yuv422", "8UC3"):
        assert output_encoding_for(other) == "rgb8"


def test_rosbags_cdr_round_trip(rgb):
    """Messages built here survive rosbags' real CDR serializer and decode to the same pixels."""
    ros = kit("rosbags")
    for encoding in ("rgb8", "bgr8"):
        msg = encode_image(ros.Image, ros.header(5, 6, "cam"), rgb, encoding)
        wire = ros.store.serialize_cdr(msg, "sensor_msgs/msg/Image")
        back = ros.store.deserialize_cdr(wire, "sensor_msgs/msg/Image")
        _check(decode_image(back), rgb, encoding)
        assert header_key(back.header) == (5, 6, "cam")
    depth = np.linspace(0.01, 1, rgb.shape[0] * rgb.shape[1], dtype=np.float32).reshape(rgb.shape[:2])
    wire = ros.store.serialize_cdr(encode_depth(ros.Image, ros.header(), depth), "sensor_msgs/msg/Image")
    back = ros.store.deserialize_cdr(wire, "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(np.frombuffer(back.data.tobytes(), "<f4").reshape(depth.shape), depth)


# ---------------------------------------------------------------------------------------------- camera info
def _camera_info(k):
    roi = k.RegionOfInterest(x_offset=4, y_offset=8, height=480, width=640, do_rectify=True)
    fields = dict(header=k.header(1, 2, "cam_in"), height=480, width=640, distortion_model="plumb_bob",
                  d=[-0.28, 0.07, 0.0002, 0.0001, 0.0], k=[525.0, 0, 319.5, 0, 525.0, 239.5, 0, 0, 1],
                  r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1], p=[525.0, 0, 319.5, 0, 0, 525.0, 239.5, 0, 0, 0, 1, 0],
                  binning_x=1, binning_y=2, roi=roi)
    if k.kind == "rosbags":
        for key in "dkrp":
            fields[key] = np.array(fields[key], dtype=np.float64)
    else:
        fields["d"] = array.array("d", fields["d"])
        for key in "krp":
            fields[key] = np.array(fields[key], dtype=np.float64)
    return k.CameraInfo(**fields)


def test_copy_camera_info(k):
    info = _camera_info(k)
    new_header = k.header(9, 10, "cam_out")
    out = copy_camera_info(k.CameraInfo, info, new_header)
    assert type(out) is k.CameraInfo and out.header is new_header
    assert header_key(info.header) == (1, 2, "cam_in")
    assert (out.height, out.width, out.distortion_model, out.binning_x, out.binning_y) == (480, 640, "plumb_bob", 1, 2)
    for key in "dkrp":
        np.testing.assert_array_equal(np.asarray(getattr(out, key)), np.asarray(getattr(info, key)))
    assert isinstance(out.d, np.ndarray if k.kind == "rosbags" else array.array)
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.height, out.roi.width, out.roi.do_rectify) == (
        4, 8, 480, 640, True)
    out.k[0] = 1.0                      # a copy: changing it leaves the input alone
    out.d[0] = 5.0
    out.roi.width = 1
    assert info.k[0] == 525.0 and info.d[0] == -0.28 and info.roi.width == 640
    if k.kind == "rosbags":
        wire = k.store.serialize_cdr(out, "sensor_msgs/msg/CameraInfo")
        back = k.store.deserialize_cdr(wire, "sensor_msgs/msg/CameraInfo")
        assert header_key(back.header) == (9, 10, "cam_out") and back.p[2] == 319.5


def test_copy_camera_info_empty_distortion(k):
    info = _camera_info(k)
    info.d = np.zeros(0) if k.kind == "rosbags" else array.array("d")
    out = copy_camera_info(k.CameraInfo, info, k.header())
    assert len(out.d) == 0


def test_header_key(k):
    assert header_key(k.header(3, 4, "x")) == (3, 4, "x")


def test_ros_free_modules_import_neither_ros_nor_torch():
    """The node's helpers must load on a ROS machine without torch and off ROS without rclpy."""
    import subprocess
    import sys

    code = ("import sys; import dcmpnet_ros.conversions, dcmpnet_ros.frame_queue, dcmpnet_ros.diagnostics, "
            "dcmpnet_ros.params; print(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    roots = {m.split(".")[0] for m in res.stdout.split()}
    assert not roots & {"rclpy", "sensor_msgs", "std_msgs", "cv_bridge", "diagnostic_msgs", "torch"}
    # Only torch-free helpers are shared with dcmpnet_core: decoding (pixel budget, corrupt-JPEG check), the engine
    # option spec and the config builder (the node's parameter table and its checks).
    core_modules = {m for m in res.stdout.split() if m.startswith("dcmpnet_core")}
    assert core_modules <= {"dcmpnet_core", "dcmpnet_core.utils", "dcmpnet_core.utils.decoding",
                            "dcmpnet_core.utils.config", "dcmpnet_core.inference", "dcmpnet_core.inference.options"}


def test_bayer16_big_endian_matches_little_endian(k, rgb):
    mosaic = _mosaic(rgb, "gbrg").astype(np.uint16) * 257 + 100
    outs = []
    for bigendian in (0, 1):
        raw, step = padded_rows(mosaic, 2, ">u2" if bigendian else "<u2")
        outs.append(decode_image(k.image(raw, *mosaic.shape, "bayer_gbrg16", step, bigendian=bigendian)).rgb)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert psnr(outs[0], rgb, border=2) > 25


def test_rclpy_stand_in_enforces_field_types():
    """The rclpy stand-ins refuse what rclpy refuses, so passing tests mean the right types were used."""
    ros = kit("rclpy")
    msg = ros.Image()
    with pytest.raises(AssertionError, match="'data' field must be a set or sequence"):
        msg.data = np.zeros(4, np.uint8)                 # rclpy wants array.array('B') or a list of ints
    with pytest.raises(AssertionError, match="type code of 'B'"):
        msg.data = array.array("b", [1])
    with pytest.raises(AssertionError, match="Invalid arguments passed to constructor: colour"):
        ros.Image(colour="red")
    status = ros.DiagnosticStatus()
    with pytest.raises(AssertionError, match="'level' field must be of type 'bytes'"):
        status.level = 2
    info = ros.CameraInfo()
    with pytest.raises(AssertionError, match="'k' numpy.ndarray.. must have a size of 9"):
        info.k = np.zeros(12)
