"""dcmpnet_ros: an ament_python package that also installs with plain pip (no ROS needed)."""
import importlib.util
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "dcmpnet_ros"


def opencv_requirement() -> list:
    # ROS machines get OpenCV from apt (python3-opencv), which carries no pip metadata; requiring a
    # pip OpenCV there would make console scripts fail their requirement check or install a second cv2.
    if importlib.util.find_spec("cv2") is not None:
        return []
    return ["opencv-python-headless>=4.5"]


CORE = [
    "setuptools",
    "numpy>=1.21",
    "torch>=2.1",
    "pyyaml>=5.4",
    "tqdm>=4.60",
    "pillow>=9.1",               # image headers read lazily for the pixel budget (dcmpnet_core.utils.decoding)
    *opencv_requirement(),
]
TRAIN = [
    "torchvision>=0.16",         # timm imports it
    "timm>=1.0",                 # ModelEmaV3, CosineLRScheduler, create_optimizer_v2 (trainer)
    "scikit-image>=0.19",        # synthetic data, built-in photos (synth, bench, quality)
    "scipy>=1.7",                # quality's rank correlation
]
BAG = [
    "rosbags>=0.11",             # rosbag2 MCAP writer, Writer(version=...), rosbags.convert helpers (dcmpnet bag)
    "scikit-image>=0.19",        # dcmpnet demo builds its foggy bag from scikit-image's photos
]
ONNX = ["onnx>=1.14", "onnxruntime>=1.16", "onnxscript>=0.1"]
TENSORBOARD = ["tensorboard>=2.10"]
# Everything the test suite imports besides the extras above.
TEST_TOOLS = ["pytest>=7", "pytest-timeout>=2", "catkin_pkg>=0.5", "pytorch-msssim>=1.0", "mcap>=1.1",
              "mcap-ros2-support>=0.5", "ruff>=0.5", "packaging>=21"]


setup(
    name=PACKAGE,
    version="0.1.0",
    description="DCMPNet dehazing + depth estimation for ROS 2 and plain Python",
    # beside the real setup.py: `colcon build --symlink-install` runs a symlink of it from build/, without README
    long_description=(Path(__file__).resolve().parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["dcmpnet_core", "dcmpnet_core.*", "dcmpnet_ros", "dcmpnet_ros.*"]),
    package_data={"dcmpnet_core": ["checkpoints/weights/*.pt", "train/recipes/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
    ],
    # What the node and `dcmpnet infer` need; everything else is an extra (see README "Installation").
    install_requires=CORE,
    extras_require={
        "train": TRAIN,
        "bag": BAG,
        "onnx": ONNX,
        "tensorboard": TENSORBOARD,
        "dev": sorted(set(TRAIN + BAG + ONNX + TENSORBOARD + TEST_TOOLS)),
    },
    zip_safe=False,
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "dcmpnet = dcmpnet_ros.cli:main",
            "dehaze_node = dcmpnet_ros.node:main",
            "dehaze_lifecycle_node = dcmpnet_ros.lifecycle_node:main",
        ],
    },
)
