"""ament_pep257 docstring checks; runs where ROS 2's ament_pep257 is installed."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    main = pytest.importorskip(
        "ament_pep257.main", reason="ament_pep257 comes with ROS 2; test_lint.py runs ruff's pydocstyle rules"
    ).main
    # The project's docstring conventions are ruff.toml's (summary on the first line, Google-style sections):
    # switch off the ament defaults that contradict them.
    rc = main(argv=["--add-ignore", "D213", "D401", "D402", "D406", "D407", "D413", "--", str(ROOT / "dcmpnet_core"),
                    str(ROOT / "dcmpnet_ros"), str(ROOT / "launch"), str(ROOT / "test")])
    assert rc == 0, "Found code style errors / warnings"
