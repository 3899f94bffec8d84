"""Message types and topic names of a replay: which input topics are images, where their outputs go."""
from __future__ import annotations

from typing import NamedTuple

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STORAGES = ("sqlite3", "mcap")
COMPRESSIONS = ("none", "file", "message")
OUTPUT_NAMESPACE = "/dehazed"


class OutputTopics(NamedTuple):
    """Output topic names for one source image topic."""

    image: str
    depth: str
    camera_info: str
    haze_level: str


def camera_info_topic_for(image_topic: str) -> str:
    """The camera_info topic beside an image topic (image_transport's convention).

    ``/cam/image_raw`` -> ``/cam/camera_info``; ``/cam/image_raw/compressed`` -> ``/cam/camera_info``;
    ``/image`` -> ``/camera_info``.
    """
    parts = image_topic.rstrip("/").split("/")
    if len(parts) > 2 and parts[-1] == "compressed":
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"]) if len(parts) > 1 else "camera_info"


def output_topics_for(image_topic: str, several: bool) -> OutputTopics:
    """Output topics for ``image_topic``: ``/dehazed/{image,depth,camera_info,haze_level}``.

    With ``several`` image topics in one replay: ``/dehazed/<image_topic without leading slash>/{...}``.
    """
    base = OUTPUT_NAMESPACE + ("/" + image_topic.strip("/") if several else "")
    return OutputTopics(f"{base}/image", f"{base}/depth", f"{base}/camera_info", f"{base}/haze_level")
