"""dcmpnet_core never imports ROS; the ROS-free parts of dcmpnet_ros do not import rclpy."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "cv_bridge", "diagnostic_msgs", "launch_ros", "rosidl_runtime_py")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return set(res.stdout.split())


def test_core_loads_no_ros_module():
    mods = _loaded_after("import dcmpnet_core, dcmpnet_core.models.dcmpnet, dcmpnet_core.cli")
    assert "dcmpnet_core" in mods
    assert not {m for m in mods if m.split(".")[0] in ROS_MODULES}


def test_cli_help_is_fast_and_ros_free():
    mods = _loaded_after("import dcmpnet_ros.cli")
    assert not {m for m in mods if m.split(".")[0] in ROS_MODULES}
    assert "torch" not in mods, "the CLI parser must not import torch before a command runs"


def test_node_logic_modules_are_ros_free():
    mods = _loaded_after("import dcmpnet_ros.pipeline, dcmpnet_ros.params, dcmpnet_ros.diagnostics")
    assert not {m for m in mods if m.split(".")[0] in ROS_MODULES}


def _own_imports(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, at module level or inside functions alike."""
    def name(path: Path) -> str:
        parts = path.relative_to(package.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def resolve(base: str, alias: str) -> str:
        full = f"{base}.{alias}"
        return full if (package.parent / full.replace(".", "/")).with_suffix(".py").exists() else base

    graph = {}
    for path in package.rglob("*.py"):
        module = name(path)
        here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                deps |= {resolve(base, a.name) for a in node.names if base.split(".")[0] == package.name}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == package.name}
        graph[module] = deps - {module}
    return graph


def test_dcmpnet_ros_modules_import_each_other_without_cycles():
    graph = _own_imports(ROOT / "dcmpnet_ros")
    assert {"dcmpnet_ros.replay", "dcmpnet_ros.demo"} <= graph["dcmpnet_ros.bag_bench"]     # the graph is complete

    def cycle_from(module: str, path: list[str]) -> list[str] | None:
        for dep in sorted(graph.get(module, ())):
            if dep in path:
                return path[path.index(dep):] + [dep]
            found = cycle_from(dep, path + [dep])
            if found:
                return found
        return None

    for module in sorted(graph):
        cycle = cycle_from(module, [module])
        assert cycle is None, "import cycle: " + " -> ".join(cycle)
