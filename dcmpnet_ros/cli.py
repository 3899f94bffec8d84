"""Entry point of the ``dcmpnet`` command: the core commands plus the ROS-message ones."""
from __future__ import annotations

import sys
from typing import Sequence

from dcmpnet_core.cli import run

from . import bag_cli, demo

# Commands that work on ROS messages (rosbag2 files) live beside the conversion code they use.
ROS_COMMANDS: list = [bag_cli, demo]


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv, extra=ROS_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
