"""Replay recorded camera bags through the dehazer without ROS: rosbag in, rosbag out.

Reads rosbag2 (sqlite3 or MCAP storage, zstd file or message compression) and ROS 1 ``.bag`` files with the
pure-Python ``rosbags`` library, dehazes every frame of the chosen image topics and writes a rosbag2 holding what
the ROS node would have published for that recording (same conversion code, :mod:`dcmpnet_ros.conversions`):

* ``/dehazed/image``: sensor_msgs/Image, the input's encoding for rgb8/bgr8 input, else rgb8 (CompressedImage
  input is published as a raw Image, like the node);
* ``/dehazed/depth``: sensor_msgs/Image 32FC1, relative depth (larger = farther, max 1 per image);
* ``/dehazed/haze_level``: sensor_msgs/RelativeHumidity, the frame's haze level in [0, 1] (as the node publishes
  it); frames below the dehazer's ``bypass_below`` are written unchanged (pass-through), each image topic being
  one stream for the pass-through state;
* ``/dehazed/camera_info``: the camera's sensor_msgs/CameraInfo re-stamped with each image's header, when the
  bag holds the image topic's sibling ``camera_info`` topic (``/cam/image_raw`` and ``/cam/image_raw/compressed``
  -> ``/cam/camera_info``). Frames recorded before the first camera_info get the first one, since the intrinsics
  of a recording do not change.

With several image topics, each one's outputs go under ``/dehazed/<source topic without leading slash>/``, e.g.
``/dehazed/cam/image_raw/image``. Every output carries the input message's header (stamp, frame_id) and is
written at the input's log time; QoS metadata is copied from the input topics. ROS 1 input is converted to ROS 2
message types (``rosbags.convert``). ``copy_all_topics`` also copies every input topic unchanged (the source image
topics included), so the output is the input plus the dehazed topics.

Malformed messages (undeserialisable bytes, MessageRejected by the decoder, images smaller than the network's
minimum side, a frame the engine fails on) are skipped and counted by reason; they never stop a replay.

The input is opened read-only. The output is built in a hidden temporary directory beside ``output`` and renamed
into place only when complete, so an interrupted or failed replay leaves neither a partial bag nor the temporary
directory behind; a failed write (a full disk) raises :class:`BagWriteError` naming the output and the cause.

Modules, one job each: :mod:`.topics` (message types, output topic names), :mod:`.reader` (input format, opening,
topic selection and camera_info pairing, the reader thread), :mod:`.decoding` (messages to frames),
:mod:`.pipeline` (frames through the engine), :mod:`.writer` (output safety, temporary bag and atomic swap, the
writer thread), :mod:`.report` (counts and the summary), :mod:`.signals` (Ctrl-C / kill), :mod:`.runner`
(:class:`BagReplay`, :func:`replay_bag`).
"""
from __future__ import annotations

from .decoding import MIN_SIDE
from .errors import BagError, BagWriteError
from .pipeline import FrameEvent, FrameHook
from .report import SKIP_REASONS, ReplaySummary, TopicReport
from .runner import BagReplay, replay_bag
from .signals import stop_on_signals
from .topics import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    COMPRESSIONS,
    IMAGE_TYPE,
    IMAGE_TYPES,
    OUTPUT_NAMESPACE,
    STORAGES,
    OutputTopics,
    camera_info_topic_for,
    output_topics_for,
)
from .writer import BAG_VERSION

__all__ = [
    "BAG_VERSION", "CAMERA_INFO_TYPE", "COMPRESSED_TYPE", "COMPRESSIONS", "IMAGE_TYPE", "IMAGE_TYPES", "MIN_SIDE",
    "OUTPUT_NAMESPACE", "SKIP_REASONS", "STORAGES", "BagError", "BagReplay", "BagWriteError", "FrameEvent",
    "FrameHook", "OutputTopics", "ReplaySummary", "TopicReport", "camera_info_topic_for", "output_topics_for",
    "replay_bag", "stop_on_signals",
]
