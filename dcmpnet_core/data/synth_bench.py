"""Synthetic generator throughput on one CPU core (OpenCV single-threaded), images per second.

Usage: python -m dcmpnet_core.data.synth_bench [--count 100] [--size 256 256]
Prints render-only and render+write rates against the 20 images/s target at 256x256.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import cv2

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 256))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})      # one core
    except (AttributeError, OSError):
        pass
    # after pinning the process to one core, so the generator's thread pools start there
    from dcmpnet_core.data import synth
    from dcmpnet_core.data.textures import TextureLibrary

    lib = TextureLibrary.load()
    h, w = args.size
    synth.render_sample(0, 0, h, w, lib=lib)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(args.count):
        synth.render_sample(123, i, h, w, lib=lib)
    render = (args.count / (time.perf_counter() - w0), args.count / (time.process_time() - c0))
    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = time.perf_counter(), time.process_time()
        synth.write_dataset(os.path.join(tmp, "out"), args.count, (h, w), seed=123, workers=1, progress=False,
                            preview=0)
        write = (args.count / (time.perf_counter() - w0), args.count / (time.process_time() - c0))
    print(f"size {h}x{w}, {args.count} images, 1 core, load average {os.getloadavg()[0]:.1f}")
    print("(CPU-time rate = images per second of this process's CPU time: what one free core gives)")
    for what, (wall, cpu) in (("render only", render), ("render + write", write)):
        print(f"{what:<15}: wall {wall:6.1f} img/s, CPU-time {cpu:6.1f} img/s  (target 20 -> ratio {cpu / 20:.2f})")


if __name__ == "__main__":
    main()
