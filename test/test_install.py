"""The README's ROS 2 install path, checked on an "externally managed" Python (PEP 668), offline.

Ubuntu 24.04 (Jazzy) marks its Python with an ``EXTERNALLY-MANAGED`` file, so a plain ``pip install`` into it is
refused; the README installs into a venv made with ``--system-site-packages`` beside the colcon workspace instead,
which sees ROS's apt packages (NumPy, OpenCV, PyYAML) and adds torch. These tests build such a "system" Python
from the running interpreter (its stdlib linked into a temporary prefix with the marker file, and a site-packages
that holds only the core requirements' distributions, as apt and a torch wheel would), then install this
package the README's way with ``pip --no-index``: the core ``install_requires`` must be satisfied by those
packages alone, and ``dcmpnet infer`` and the node's ROS-free modules must run from the venv.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The distributions a ROS 2 machine has after rosdep (numpy, cv2, yaml, tqdm, PIL, setuptools, pip) plus torch.
SYSTEM_DISTS = ("pip", "setuptools", "wheel", "numpy", "torch", "pyyaml", "tqdm", "pillow", "opencv-python-headless",
                "opencv-python")
SOURCES = ("setup.py", "setup.cfg", "README.md", "package.xml", "resource", "launch", "config", "dcmpnet_core",
           "dcmpnet_ros")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="builds a POSIX Python prefix")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` and all they require (with requested extras; other platforms not)."""
    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    todo = [(name, ()) for name in names]
    done = set()
    while todo:
        name, extras = todo.pop()
        if (_key(name), extras) in done:
            continue
        done.add((_key(name), extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[_key(name)] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((req.name, tuple(sorted(req.extras))))
    return found


def _run(cmd: list, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1")
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def system_python(tmp_path_factory) -> Path:
    """A Python outside any venv whose stdlib carries the EXTERNALLY-MANAGED marker; returns its executable."""
    pip_version = tuple(int(p) for p in metadata.version("pip").split(".")[:2])
    if pip_version < (23, 0):
        pytest.skip(f"pip {metadata.version('pip')} predates PEP 668 support (23.0)")
    stdlib = Path(sysconfig.get_path("stdlib"))
    base = Path(sys.base_prefix)
    if base not in stdlib.parents:
        pytest.skip(f"the stdlib {stdlib} is not under sys.base_prefix {base}")
    root = tmp_path_factory.mktemp("system")
    lib = root / stdlib.relative_to(base)
    site = lib / "site-packages"
    site.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    (lib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=managed by the test's 'system'\n")
    for dist in _closure(SYSTEM_DISTS).values():
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    exe = root / "bin" / Path(sys._base_executable).name
    exe.parent.mkdir()
    shutil.copy2(os.path.realpath(sys._base_executable), exe)     # a copy finds its prefix from where it lies
    probe = _run([exe, "-c", "import sys; print(sys.prefix)"], root)
    if probe.returncode != 0 or Path(probe.stdout.strip()) != root:
        pytest.skip(f"a copied interpreter does not find its own prefix: {probe.stdout}{probe.stderr}")
    return exe


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "dcmpnet_ros"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    return src


@pytest.fixture(scope="module")
def venv(system_python, source, tmp_path_factory) -> Path:
    """The README's path: a venv with --system-site-packages, then ``pip install`` of the package into it."""
    ws = tmp_path_factory.mktemp("ros2_ws")
    made = _run([system_python, "-m", "venv", "--system-site-packages", "--without-pip", ws / "venv"], ws)
    assert made.returncode == 0, made.stderr
    python = ws / "venv" / "bin" / "python"
    res = _run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation", source], ws, timeout=300)
    assert res.returncode == 0, f"the core requirements must be met by the system packages alone:\n{res.stderr}"
    return ws / "venv"


def test_plain_pip_install_is_refused(system_python, source):
    res = _run([system_python, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps", source],
               source.parent)
    assert res.returncode != 0
    assert "externally-managed-environment" in res.stdout + res.stderr


def test_venv_install_gives_the_commands_and_runs_infer(venv, tmp_path):
    import cv2
    import numpy as np

    for script in ("dcmpnet", "dehaze_node", "dehaze_lifecycle_node"):
        first = (venv / "bin" / script).read_text().splitlines()[0]
        assert first == f"#!{venv / 'bin' / 'python'}", f"{script} must run with the venv's Python: {first}"
    location = _run([venv / "bin" / "python", "-c", "import dcmpnet_core; print(dcmpnet_core.__file__)"], tmp_path)
    assert Path(location.stdout.strip()).is_relative_to(venv), location.stdout + location.stderr
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "hazy.png"), cv2.GaussianBlur(rng.integers(0, 255, (40, 56, 3), np.uint8), (5, 5), 0))
    res = _run([venv / "bin" / "dcmpnet", "infer", tmp_path / "hazy.png", "--out", tmp_path / "out", "--device",
                "cpu"], tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert cv2.imread(str(tmp_path / "out" / "hazy_dehazed.png")).shape == (40, 56, 3)
    node_side = _run([venv / "bin" / "python", "-c", "import dcmpnet_ros.conversions, dcmpnet_ros.params, "
                      "dcmpnet_ros.diagnostics, dcmpnet_ros.frame_queue, dcmpnet_core.inference.engine"], tmp_path)
    assert node_side.returncode == 0, node_side.stderr


def test_a_command_of_an_extra_names_the_extra(venv, tmp_path):
    res = _run([venv / "bin" / "dcmpnet", "demo", "--out", tmp_path / "demo"], tmp_path, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    line, = res.stderr.strip().splitlines()
    assert re.match(r"dcmpnet demo: error: this command needs [\w-]+, which is not installed: "
                    r"pip install 'dcmpnet_ros\[bag\]'", line), line
    assert not (tmp_path / "demo").exists(), "a command that cannot run leaves no output folder"


def test_missing_optional_module_is_one_line_and_other_import_errors_are_not_hidden(capsys):
    import types as _types

    from dcmpnet_core.cli import run

    def command(missing: str) -> _types.ModuleType:
        def handler(args):
            raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)

        def register(sub):
            sub.add_parser("needs").set_defaults(handler=handler)

        return _types.SimpleNamespace(register=register)

    assert run(["needs"], extra=[command("timm.optim")]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dcmpnet needs: error: this command needs timm, which is not installed: pip install ")
    with pytest.raises(ModuleNotFoundError):
        run(["needs"], extra=[command("dcmpnet_core.nonexistent")])
