"""The layering rules of README "Architecture", checked on the source (module-level imports, read with ``ast``).

* ``dcmpnet_core`` never imports ROS (the runtime check is ``test_imports.py``).
* ``dcmpnet_core.models`` holds forward passes only: it imports nothing of training, inference, checkpoints,
  evaluation, data, the CLI or file I/O (of the utilities, only the config builder and the depth convention).
* No import cycle among the modules' top-level imports (function-level imports, kept for start-up time, are
  listed separately and each carries a comment saying why).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dcmpnet_core", "dcmpnet_ros")
ROS_ROOTS = {"rclpy", "sensor_msgs", "std_msgs", "cv_bridge", "diagnostic_msgs", "launch_ros", "rosidl_runtime_py",
             "lifecycle_msgs", "rcl_interfaces", "builtin_interfaces", "ament_index_python"}
# What the network modules may import besides each other: the tensor library and the standard library.
MODELS_ALLOWED_ROOTS = {"torch", "__future__", "dataclasses", "math", "typing", "collections", "functools",
                        "itertools", "warnings", "enum"}
# ... and of this package: each other, the frozen-dataclass config builder and the depth-convention constants.
MODELS_ALLOWED_OWN = ("dcmpnet_core.models", "dcmpnet_core.utils.config", "dcmpnet_core.utils.depth_convention")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, top_level_only: bool) -> set[str]:
    """Absolute names a module imports (``from a import b`` yields ``a.b`` when that is a module, else ``a``)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if top_level_only and isinstance(node, ast.If):          # `if TYPE_CHECKING:` blocks import nothing at run time
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in MODULES else target)
    return found


def test_the_tree_has_the_documented_subpackages():
    expected = {"models", "checkpoints", "train", "inference", "data", "evaluation", "utils", "cli"}
    present = {p.parent.name for p in (ROOT / "dcmpnet_core").glob("*/__init__.py")}
    assert expected <= present, f"missing subpackages: {sorted(expected - present)}"
    flat = sorted(p.name for p in (ROOT / "dcmpnet_core").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py"], f"modules left at the top of dcmpnet_core: {flat}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("dcmpnet_core")))
def test_core_never_imports_ros(module):
    ros = {name for name in _imports(module, top_level_only=False) if name.split(".")[0] in ROS_ROOTS}
    assert not ros, f"{module} imports ROS: {sorted(ros)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("dcmpnet_core.models")))
def test_models_import_only_models_and_torch(module):
    bad = set()
    for name in _imports(module, top_level_only=False):
        if name.startswith("dcmpnet_core."):
            if not name.startswith(MODELS_ALLOWED_OWN):
                bad.add(name)
        elif name.split(".")[0] not in MODELS_ALLOWED_ROOTS:
            bad.add(name)
    assert not bad, f"{module} (forward passes only) imports {sorted(bad)}"


def _graph(modules: list[str], top_level_only: bool) -> dict[str, set[str]]:
    """Module -> the modules of this repository it imports."""
    return {m: {n for n in _imports(m, top_level_only) if n in MODULES and n != m} for m in modules}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle(_graph(list(MODULES), top_level_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_dcmpnet_ros_has_no_cycle_even_through_function_level_imports():
    graph = _graph([m for m in MODULES if m.startswith("dcmpnet_ros")], top_level_only=False)
    assert {"dcmpnet_ros.replay", "dcmpnet_ros.demo"} <= graph["dcmpnet_ros.bag_bench"]     # the graph is complete
    cycle = _cycle({m: deps & graph.keys() for m, deps in graph.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_function_level_imports_say_why():
    """A function-level import is there for start-up time (or to break a cycle) and says why in a comment.

    A run of consecutive import lines is one group: a comment on the line above it or on any of its lines covers it.
    """
    unexplained = []
    for path in MODULES.values():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        rows = sorted({node.lineno for func in funcs for node in ast.walk(func)
                       if isinstance(node, (ast.Import, ast.ImportFrom))})
        groups: list[list[int]] = []
        for row in rows:                       # imports at most 3 lines apart (a wrapped import) form one group
            if groups and row - groups[-1][-1] <= 3:
                groups[-1].append(row)
            else:
                groups.append([row])
        for group in groups:
            first, last = group[0], group[-1]
            text = lines[max(first - 2, 0):last]
            if not any("#" in line for line in text):
                unexplained.append(f"{path.relative_to(ROOT)}:{first}")
    assert not unexplained, f"{len(unexplained)} function-level imports without a reason: {unexplained[:20]}"
