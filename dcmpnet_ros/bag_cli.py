"""``dcmpnet bag INPUT OUTPUT``: dehaze a recorded bag into a new rosbag2, without ROS.

The work is done by :func:`dcmpnet_ros.replay.replay_bag`; see that module for the output topics and safety rules.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcmpnet_core.cli.common import (
    CommandError,
    add_bypass_arguments,
    add_engine_arguments,
    add_input_budget_argument,
    check_bypass_arguments,
    check_input_budget,
    engine_kwargs,
)

EPILOG = """\
output topics:
  one image topic:    /dehazed/image, /dehazed/depth (32FC1 relative depth), /dehazed/camera_info,
                      /dehazed/haze_level (sensor_msgs/RelativeHumidity: haze level 0 clear .. 1 dense)
  several topics:     /dehazed/<topic without leading slash>/{image,depth,camera_info,haze_level},
                      e.g. /cam/image_raw -> /dehazed/cam/image_raw/image
  camera_info is the image topic's sibling (/cam/image_raw[/compressed] -> /cam/camera_info), re-stamped with
  each image's header. Headers and log times are those of the input frames.

examples:
  dcmpnet bag drive_fog/ drive_fog_dehazed/ --weights model.pt
  dcmpnet bag drive.bag out/ --backend dcp --image-topic /front/image_raw/compressed --copy-all-topics
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bag", help="dehaze the camera topics of a rosbag2 / ROS 1 bag into a new rosbag2 (no ROS needed)",
        description="Reads a rosbag2 (sqlite3 or MCAP, compressed or not) or a ROS 1 .bag, dehazes every frame of "
                    "its image topics (sensor_msgs/Image or CompressedImage) and writes a new rosbag2 with the "
                    "dehazed image, relative depth and camera_info, as the ROS node would publish them. The input "
                    "is only read; the output appears only when the replay completes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="rosbag2 directory or ROS 1 .bag file")
    p.add_argument("output", metavar="OUTPUT", help="rosbag2 directory to create")
    p.add_argument("--image-topic", dest="image_topics", action="extend", nargs="+", metavar="T", default=None,
                   help="image topic(s) to dehaze, after INPUT OUTPUT (default: every Image/CompressedImage topic)")
    p.add_argument("--weights", default=None, help="DCMPNet checkpoint (default: the bundled weights)")
    add_engine_arguments(p, ["backend", "device", "precision", "mode", "refine"])
    p.add_argument("--storage", default=None, choices=["sqlite3", "mcap"],
                   help="output storage (default: the input's; sqlite3 for ROS 1 input)")
    p.add_argument("--compression", default="none", choices=["none", "file", "message"],
                   help="zstd compression of the output (default: %(default)s)")
    p.add_argument("--copy-all-topics", action="store_true",
                   help="also copy every input topic unchanged (source images included)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT rosbag2")
    add_engine_arguments(p, ["max_pixels"])
    add_input_budget_argument(p, "frames whose header declares more than N pixels are skipped (too_large) "
                                 "before decoding")
    add_engine_arguments(p, ["inference_scale"])
    p.add_argument("--no-depth", action="store_true", help="do not write the depth topic(s)")
    add_bypass_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_input_budget(args)
    check_bypass_arguments(args)
    # here, not at the top: `dcmpnet --help` must not import OpenCV and rosbags
    from .replay import BagError, BagReplay, BagWriteError, stop_on_signals

    if args.weights and args.backend == "dcp":
        raise CommandError("--weights and --backend dcp do not go together: the dark channel prior uses no weights")
    if args.weights and not Path(args.weights).is_file():
        raise CommandError(f"--weights: no such checkpoint file: {args.weights}")
    try:
        # Paths are checked here; topics once the input is open, before the (slow) model load.
        replay = BagReplay(args.input, args.output, None, image_topics=args.image_topics, storage=args.storage,
                           copy_all_topics=args.copy_all_topics, overwrite=args.overwrite,
                           write_depth=not args.no_depth, compression=args.compression,
                           progress=not args.no_progress, max_decode_pixels=args.max_input_pixels)
    except BagError as exc:
        raise CommandError(str(exc)) from exc

    def load() -> object:
        from dcmpnet_core.inference.engine import Dehazer  # here: torch only once the input is known to be good

        try:
            return Dehazer.from_checkpoint(args.weights, bypass_below=args.bypass_below, bypass_band=args.bypass_band,
                                           passthrough_depth=not args.no_depth, **engine_kwargs(args))
        except (FileNotFoundError, ValueError, RuntimeError, OSError) as exc:   # no weights, no GPU, bad file
            raise BagError(str(exc)) from exc

    summary = None
    try:
        with stop_on_signals(replay):
            summary = replay.run(load_dehazer=load)
            return _report(summary)
    except KeyboardInterrupt:
        if summary is None:
            raise                # the output was not completed: nothing was written, exit 130
        # Ctrl-C after the output was complete: the work is done, so it is a success.
        print(f"dcmpnet bag: interrupted after {args.output} was complete", file=sys.stderr)
        return 0
    except BagError as exc:
        raise CommandError(str(exc)) from exc
    except (BagWriteError, OSError) as exc:     # e.g. the disk filled up; the partial output has been removed
        print(f"dcmpnet bag: error: {exc} (nothing was written to {args.output})", file=sys.stderr)
        return 1


def _report(summary) -> int:
    print(summary.format())
    if summary.storage_errors:
        print(f"dcmpnet bag: warning: parts of the input could not be read and were skipped: "
              f"{summary.storage_errors[0][:300]}", file=sys.stderr)
    faulty = sum(t.faulty_output for t in summary.topics)
    if faulty:
        print(f"dcmpnet bag: warning: {faulty} frame(s) had faulty network output (NaN/Inf or constant); see above",
              file=sys.stderr)
    if summary.frames_in and not summary.frames_out:
        print(f"dcmpnet bag: error: none of the {summary.frames_in} frames could be processed (see the skip "
              "reasons above)", file=sys.stderr)
        return 1
    return 0
