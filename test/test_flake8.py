"""ament_flake8 with this package's settings (setup.cfg); runs where ROS 2's ament_flake8 is installed."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    main_with_errors = pytest.importorskip(
        "ament_flake8.main", reason="ament_flake8 comes with ROS 2; test_lint.py runs ruff with the same rules"
    ).main_with_errors
    rc, errors = main_with_errors(argv=["--config", str(ROOT / "setup.cfg"), str(ROOT / "dcmpnet_core"),
                                        str(ROOT / "dcmpnet_ros"), str(ROOT / "launch"), str(ROOT / "test")])
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
