"""Diagnostics statistics driven by a fake clock, and DiagnosticArray building for both message kinds."""
from __future__ import annotations

import re

import pytest
from msg_kinds import KINDS, kit

from dcmpnet_ros.diagnostics import (
    ERROR,
    OK,
    WARN,
    DropCounter,
    LatencyStats,
    NodeStats,
    RateMeter,
    build_diagnostic_array,
    frame_age_ms,
)


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def run(stats: NodeStats, clock: FakeClock, seconds: float, hz_in: float, out_every: int = 0, stale_every: int = 0,
        reject: str = "", latency_ms: float = 50.0) -> None:
    """Feed ``hz_in`` frames/s for ``seconds``.

    With ``reject`` every frame is rejected for that reason; else frame i is dropped as stale unless
    i % stale_every == 0, and of the others every ``out_every``-th is published.
    """
    for i in range(int(round(seconds * hz_in))):
        clock.advance(1.0 / hz_in)
        stats.on_input()
        if reject:
            stats.on_rejected(reject)
        elif stale_every and i % stale_every:
            stats.on_dropped_stale()
        elif out_every and i % out_every == 0:
            stats.on_output(latency_ms)


def test_rate_meter_sliding_window():
    clock = FakeClock()
    meter = RateMeter(window_s=5.0, clock=clock)
    for _ in range(10):                         # 1 s at 10 Hz: right from the start, not 10 events / 5 s
        clock.advance(0.1)
        meter.tick()
    assert meter.rate() == pytest.approx(10.0)
    for _ in range(100):                        # then 10 s at 20 Hz: only the last 5 s count
        clock.advance(0.05)
        meter.tick()
    assert meter.rate() == pytest.approx(20.0, rel=0.02)
    assert meter.count == 110
    clock.advance(2.5)
    assert meter.rate() == pytest.approx(10.0, rel=0.05)
    clock.advance(2.6)
    assert meter.rate() == 0.0 and meter.in_window() == 0
    with pytest.raises(ValueError, match="window_s: expected a finite number > 0, got 0"):
        RateMeter(0)


def test_latency_stats():
    stats = LatencyStats(maxlen=100)
    assert (stats.mean, stats.p95, stats.max) == (None, None, None)
    for ms in range(1000, 1100):                # evicted by the next 100
        stats.add(ms)
    for ms in range(100, 0, -1):
        stats.add(float(ms))
    assert len(stats) == 100 and stats.count == 200
    assert stats.mean == pytest.approx(50.5)
    assert stats.p95 == 95.0
    assert stats.max == 100.0
    with pytest.raises(ValueError, match="ms: expected a finite latency >= 0"):
        stats.add(float("nan"))
    with pytest.raises(ValueError, match="maxlen: expected an int >= 1, got 0"):
        LatencyStats(0)


def test_drop_counter():
    drops = DropCounter()
    for reason in ["truncated_data", "non_finite", "truncated_data"]:
        drops.add(reason)
    drops.add("too_large", 5)
    assert drops["truncated_data"] == 2 and drops["missing"] == 0 and drops.total == 8
    assert list(drops.counts()) == ["too_large", "truncated_data", "non_finite"]


def test_healthy_node_is_ok():
    clock = FakeClock()
    stats = NodeStats(device="cuda:0", clock=clock)
    run(stats, clock, 10, hz_in=10, out_every=1, latency_ms=40)
    assert stats.level() == OK
    assert stats.message() == "10.0 Hz in, 10.0 Hz out, inference 40 ms"
    kv = dict(stats.to_key_values())
    assert kv["device"] == "cuda:0"
    assert kv["input rate (Hz)"] == "10.00" and kv["output rate (Hz)"] == "10.00"
    assert kv["inference latency mean (ms)"] == "40.0" and kv["frames received"] == "100"
    assert kv["frames published"] == "100" and kv["seconds since last output"] == "0.00"


def test_mostly_stale_frames_warn():
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    run(stats, clock, 10, hz_in=30, stale_every=3, out_every=1)     # 2 of 3 frames replaced before inference
    assert stats.level() == WARN
    assert re.match(r"66% of the 15\d frames of the last 5 s were not processed \(stale 200\); 30.\d Hz in, "
                    r"10.0 Hz out, inference 50 ms", stats.message()), stats.message()
    assert stats.dropped_stale == 200


def test_some_stale_frames_are_fine():
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    for i in range(300):                                # a third dropped: not "most"
        clock.advance(1 / 30)
        stats.on_input()
        if i % 3 == 0:
            stats.on_dropped_stale()
        else:
            stats.on_output(80.0)
    assert stats.level() == OK


def test_all_rejected_warns_then_errors():
    clock = FakeClock()
    stats = NodeStats(clock=clock, no_output_error_s=5.0)
    run(stats, clock, 3, hz_in=10, reject="truncated_data")
    assert stats.level() == WARN and "truncated_data 30" in stats.message()
    run(stats, clock, 3, hz_in=10, reject="truncated_data")
    assert stats.level() == ERROR
    assert stats.message().startswith("no output for 5.9 s while input arrives at 10.0 Hz (truncated_data 60)")
    assert ("rejected: truncated_data", "60") in stats.to_key_values()


def test_output_stops_while_input_arrives_is_error_and_recovers():
    clock = FakeClock()
    stats = NodeStats(clock=clock, no_output_error_s=5.0)
    run(stats, clock, 5, hz_in=10, out_every=1)
    run(stats, clock, 4.9, hz_in=10)                    # inference hangs, frames keep coming
    assert stats.level() == OK
    run(stats, clock, 0.3, hz_in=10)
    assert stats.level() == ERROR and "no output for 5.2 s" in stats.message()
    run(stats, clock, 1, hz_in=10, out_every=1)
    assert stats.level() == OK


def test_waiting_for_input_then_warn():
    clock = FakeClock()
    stats = NodeStats(clock=clock, no_output_error_s=5.0)
    clock.advance(4)
    assert (stats.level(), stats.message()) == (OK, "waiting for input")
    clock.advance(2)
    assert (stats.level(), stats.message()) == (WARN, "no input yet for 6.0 s")
    kv = dict(stats.to_key_values())
    assert kv["seconds since last output"] == "never" and kv["inference latency p95 (ms)"] == "n/a"


def test_input_stops_then_resumes():
    clock = FakeClock()
    stats = NodeStats(clock=clock, no_output_error_s=5.0)
    run(stats, clock, 5, hz_in=10, out_every=1)
    clock.advance(20)
    assert (stats.level(), stats.message()) == (WARN, "no input for 20.0 s")
    run(stats, clock, 2, hz_in=10)                      # the first frames after the gap are still in inference
    assert stats.level() == OK


def test_first_inference_gets_a_grace_period():
    clock = FakeClock()
    stats = NodeStats(clock=clock, no_output_error_s=5.0)
    clock.advance(30)                                   # model loading, no camera yet
    run(stats, clock, 3, hz_in=10)
    assert stats.level() == OK                          # 3 s since input started
    run(stats, clock, 3, hz_in=10)
    assert stats.level() == ERROR


def test_idle_lazy_node_is_ok_and_active_again_gets_grace():
    clock = FakeClock()
    stats = NodeStats(clock=clock, no_output_error_s=5.0)
    stats.set_idle(True)
    run(stats, clock, 20, hz_in=10)
    assert stats.level() == OK and stats.message().startswith("idle: no subscribers (lazy)")
    assert dict(stats.to_key_values())["idle (lazy, no subscribers)"] == "true"
    stats.set_idle(False)
    run(stats, clock, 3, hz_in=10)
    assert stats.level() == OK
    run(stats, clock, 3, hz_in=10)
    assert stats.level() == ERROR


def test_failures_are_counted():
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    for _ in range(10):
        clock.advance(0.1)
        stats.on_input()
        stats.on_failed("RuntimeError")
    kv = dict(stats.to_key_values())
    assert kv["frames failed"] == "10" and kv["failed: RuntimeError"] == "10"
    assert stats.level() == WARN and "failed RuntimeError 10" in stats.message()


def test_nodestats_validates_arguments():
    with pytest.raises(ValueError, match="warn_fraction: expected a number in .0, 1., got 2"):
        NodeStats(warn_fraction=2)
    with pytest.raises(ValueError, match="no_output_error_s: expected a finite number > 0"):
        NodeStats(no_output_error_s=-1)


@pytest.mark.parametrize("kind", KINDS)
def test_build_diagnostic_array(kind):
    k = kit(kind)
    clock = FakeClock()
    stats = NodeStats(device="cpu", clock=clock)
    run(stats, clock, 3, hz_in=10, reject="non_finite")
    run(stats, clock, 3, hz_in=10, reject="non_finite")
    stamp = k.Time(sec=77, nanosec=5)
    msg = build_diagnostic_array(k.DiagnosticArray, k.DiagnosticStatus, k.KeyValue, stamp, "dehaze_node: dehazing",
                                 "cpu", stats)
    assert type(msg) is k.DiagnosticArray and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (77, 5)
    assert len(msg.status) == 1
    status = msg.status[0]
    assert status.level == k.DiagnosticStatus.ERROR                 # int for rosbags, b"\x02" for rclpy
    assert status.level == (2 if kind == "rosbags" else b"\x02")
    assert status.name == "dehaze_node: dehazing" and status.hardware_id == "cpu"
    assert status.message.startswith("no output for")
    pairs = [(v.key, v.value) for v in status.values]
    assert pairs == stats.to_key_values() and ("rejected: non_finite", "60") in pairs
    if kind == "rosbags":                      # the real serializer accepts it
        wire = k.store.serialize_cdr(msg, "diagnostic_msgs/msg/DiagnosticArray")
        back = k.store.deserialize_cdr(wire, "diagnostic_msgs/msg/DiagnosticArray")
        assert back.status[0].level == 2 and back.status[0].values[-1].key == "rejected: non_finite"


@pytest.mark.parametrize("kind", KINDS)
def test_build_diagnostic_array_ok_level(kind):
    k = kit(kind)
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    run(stats, clock, 2, hz_in=5, out_every=1)
    msg = build_diagnostic_array(k.DiagnosticArray, k.DiagnosticStatus, k.KeyValue, k.Time(sec=1, nanosec=0),
                                 "n", "h", stats)
    assert msg.status[0].level == k.DiagnosticStatus.OK


def test_frame_age_is_reported_with_mean_p95_max():
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    for i in range(40):
        clock.advance(0.1)
        stats.on_input()
        stats.on_output(30.0, age_ms=100.0 + i)              # ages 100 .. 139 ms
    assert stats.level() == OK
    assert stats.message() == "10.0 Hz in, 10.0 Hz out, inference 30 ms, frame age 120 ms"
    kv = dict(stats.to_key_values())
    assert (kv["frame age mean (ms)"], kv["frame age p95 (ms)"], kv["frame age max (ms)"]) == ("119.5", "137.0",
                                                                                               "139.0")
    stats.on_output(30.0, age_ms=-5.0)                       # stamp ahead of the clock: counted, not averaged
    kv = dict(stats.to_key_values())
    assert kv["frames stamped in the future"] == "1" and kv["frame age max (ms)"] == "139.0"


def test_frame_age_ms_from_a_stamp():
    from types import SimpleNamespace

    stamp = SimpleNamespace(sec=100, nanosec=250_000_000)
    assert frame_age_ms(stamp, 100_400_000_000) == pytest.approx(150.0)
    assert frame_age_ms(stamp, 100_000_000_000) == pytest.approx(-250.0)


def test_missing_camera_info_warns_after_the_grace_period():
    clock = FakeClock()
    stats = NodeStats(clock=clock, no_output_error_s=5.0, expect_camera_info=True)
    for _ in range(4):
        clock.advance(1.0)
        stats.on_input()
        stats.on_image_size(640, 480)
        stats.on_output(20.0)
    assert stats.level() == OK                               # 4 s: camera_info may still come
    assert dict(stats.to_key_values())["camera_info"] == "none received"
    for _ in range(3):
        clock.advance(1.0)
        stats.on_input()
        stats.on_output(20.0)
    assert stats.level() == WARN
    assert stats.message().startswith("no camera_info for 6.0 s although use_camera_info is true; 1.0 Hz in")
    stats.on_camera_info(640, 480)
    assert stats.level() == OK
    assert dict(stats.to_key_values())["camera_info"] == "640x480 (images 640x480)"


def test_camera_info_of_another_size_warns():
    clock = FakeClock()
    stats = NodeStats(clock=clock, expect_camera_info=True)
    stats.on_camera_info(1280, 720)
    run(stats, clock, 2, hz_in=10, out_every=1)
    stats.on_image_size(640, 480)
    assert stats.level() == WARN
    assert stats.message().startswith("camera_info is 1280x720 but the images are 640x480")
    stats.on_image_size(1280, 720)
    assert stats.level() == OK


def test_camera_info_not_expected_is_never_graded():
    clock = FakeClock()
    stats = NodeStats(clock=clock)
    run(stats, clock, 20, hz_in=10, out_every=1)
    assert stats.level() == OK and dict(stats.to_key_values())["camera_info"] == "not used"


def test_stale_frames_and_camera_info_are_both_named():
    clock = FakeClock()
    stats = NodeStats(clock=clock, expect_camera_info=True)
    stats.on_camera_info(320, 240)
    stats.on_image_size(640, 480)
    run(stats, clock, 10, hz_in=30, stale_every=3, out_every=1)
    assert stats.level() == WARN
    assert re.match(r"66% of the 15\d frames .*; camera_info is 320x240 but the images are 640x480: .*; 30.\d Hz in",
                    stats.message()), stats.message()
