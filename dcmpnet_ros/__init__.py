"""dcmpnet_ros: the ROS 2 node, and the ROS-free message conversion it shares with bag replay.

Only :mod:`dcmpnet_ros.node` imports rclpy; every other module works without ROS.
"""
