"""The house rules of docs/architecture.md, checked on the source: no import cycles, the plugin
registry imported only by the composition root (io never), training imported only by what
trains, no room over ~300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import utom_core

ROOT = Path(utom_core.__file__).parent
MAX_LINES = 300
TRAINING_USERS = ("utom_core.training", "utom_core.workflow.end_to_end", "utom_core.bench",
                  "utom_core.commands.train", "utom_core.commands.bench", "utom_core.api")
"""Modules allowed to import ``utom_core.training`` (they train)."""
COMPOSITION_ROOT = ("utom_core.commands", "utom_core.workflow", "utom_core.bench",
                    "utom_core.cli", "utom_core.api", "utom_core.plugins")
"""Modules allowed to import ``utom_core.plugins``: they resolve every name into an object once
and pass objects down (a Dask worker loads its model with a loader the command hands it)."""


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """utom_core modules ``path`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    modules = {_module(p) for p in ROOT.rglob("*.py")}
    return {name for name in found if name in modules}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {_module(p): _imports(p, top_level_only) for p in ROOT.rglob("*.py")}


def test_module_level_imports_have_no_cycles():
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            parent = nxt.rsplit(".", 1)[0]
            if nxt.startswith(node + ".") or node.startswith(nxt + ".") or parent == node:
                continue  # a package and its own submodules
            assert state.get(nxt) != 1, "import cycle: " + " → ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_io_never_imports_the_plugin_registry():
    for module, imported in _graph(top_level_only=False).items():
        if module.startswith("utom_core.io"):
            assert not any(i.startswith("utom_core.plugins") for i in imported), module


def test_only_the_composition_root_imports_the_plugin_registry():
    for module, imported in _graph(top_level_only=False).items():
        if any(i.startswith("utom_core.plugins") for i in imported):
            assert module.startswith(COMPOSITION_ROOT), f"{module} imports the plugin registry"


def test_only_what_trains_imports_training():
    for module, imported in _graph(top_level_only=False).items():
        if any(i.startswith("utom_core.training") for i in imported):
            assert module.startswith(TRAINING_USERS), f"{module} imports the trainer"


def test_no_room_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_reading_a_file_imports_no_task_plugin(tmp_path):
    """A fresh interpreter reads a TIFF without building the plugin registry."""
    import subprocess
    import sys

    import numpy as np
    import tifffile

    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint16))
    code = ("import sys; from utom_core.io import read_image; read_image(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith(('utom_tasks', "
            "'utom_core.plugins'))))")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
