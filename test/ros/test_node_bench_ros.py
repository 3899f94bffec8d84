"""``python -m dcmpnet_ros.node_bench`` on a live ROS 2 graph: the node process against its engine, one table row."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy): source /opt/ros/<distro>/setup.bash")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.ros
@pytest.mark.parametrize("lifecycle", [False, True], ids=["plain", "lifecycle"])
def test_node_bench_measures_the_node_against_its_engine(tmp_path, lifecycle):
    params = tmp_path / "dcp.yaml"
    params.write_text("/**/dehaze_node:\n  ros__parameters:\n    backend: dcp\n    device: cpu\n"
                      "    bypass_below: 0.0\n    warmup_width: 160\n    warmup_height: 120\n", encoding="utf-8")
    env = dict(os.environ, ROS_DOMAIN_ID=str(150 + os.getpid() % 50))
    flags = ["--lifecycle"] if lifecycle else []
    res = subprocess.run([sys.executable, "-m", "dcmpnet_ros.node_bench", "--params-file", str(params),
                          "--rate", "10", "--seconds", "3", "--size", "120x160", *flags],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line for line in res.stdout.splitlines() if line.startswith("| dcp.yaml |")]
    assert len(rows) == 1, res.stdout
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    engine_fps, latency_ms, node_hz, rate_ratio = (float(c) for c in cells[1:5])
    age_median, age_p95, age_max, age_ratio, node_latency, node_age = (float(c) for c in cells[5:11])
    # a 160x120 classical dehaze is far faster than a 10 Hz camera: the node keeps the camera's rate
    assert engine_fps > 10 and latency_ms > 0
    assert 7.0 <= node_hz <= 11.0 and rate_ratio == pytest.approx(node_hz / 10.0, abs=0.02)
    assert 0 < age_median <= age_p95 <= age_max and age_ratio == pytest.approx(age_median / latency_ms, rel=0.1,
                                                                                abs=0.05)
    # the node's own diagnostics: a frame's age at publish includes its inference latency
    assert 0 < node_latency <= node_age
