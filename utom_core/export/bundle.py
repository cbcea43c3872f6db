"""One self-contained Python file defining a utom generator, for model packages.

A zoo consumer builds the generator from the package alone (no utom installed), so the source
of the generator's module and of the ``utom_core.networks`` modules it imports is concatenated
in dependency order, their imports of each other removed. Only utom's own networks qualify:
they need nothing but torch.
"""

from __future__ import annotations

import ast
import inspect
import sys
from types import ModuleType
from typing import Any

from utom_core.errors import UtomError
from utom_core.export.viewed import ViewAveraged
from utom_core.networks.base import Generator

PACKAGE = "utom_core.networks"
VIEWED = ViewAveraged.__module__
BUNDLED = (PACKAGE + ".", "utom_core.inference.views", VIEWED)
"""Modules that may go into a package: utom's networks and the view averaging, torch only."""
MODEL_CLASS = "UtomModel"
"""The package's architecture callable: the generator inside ``viewed.ViewAveraged``."""


def _utom_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    return [node for node in tree.body if isinstance(node, ast.ImportFrom)
            and node.module is not None and (node.module.startswith("utom_core")
                                             or node.module == "__future__")]


def _loaded(name: str) -> ModuleType:
    """A networks module, already imported (by the generator's own module): nothing is
    imported by name here."""
    module = sys.modules.get(name)
    if module is None or not name.startswith(BUNDLED):
        raise UtomError(f"{name}: not one of utom's network modules; only utom's own "
                        "generators can be packaged")
    return module


def _modules(name: str, seen: list[str]) -> list[str]:
    """``name`` after every networks module it imports, each once."""
    if name in seen:
        return seen
    tree = ast.parse(inspect.getsource(_loaded(name)))
    for node in _utom_imports(tree):
        if node.module != "__future__":
            _modules(node.module or "", seen)
    seen.append(name)
    return seen


def _without_imports(name: str) -> tuple[str, set[str]]:
    """The module's source less its utom and __future__ imports, and its top-level names."""
    source = inspect.getsource(_loaded(name))
    tree = ast.parse(source)
    drop = {line for node in _utom_imports(tree)
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    kept = [line for number, line in enumerate(source.splitlines(), start=1)
            if number not in drop]
    names = {target.id for node in tree.body for target in getattr(node, "targets", [])
             if isinstance(target, ast.Name)}
    names |= {node.name for node in tree.body
              if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    return "\n".join(kept), names


def generator_source(generator: Generator) -> str:
    """Source of a module that defines ``type(generator)`` and ``MODEL_CLASS`` (the generator
    under ``ViewAveraged``, built from the generator's arguments) with torch alone."""
    parts = [f'"""utom generator {type(generator).__name__}, bundled from {PACKAGE} by utom '
             'export."""\n\nfrom __future__ import annotations\n']
    defined: dict[str, str] = {}
    for name in _modules(VIEWED, _modules(type(generator).__module__, [])):
        text, names = _without_imports(name)
        clash = sorted(n for n in names if n in defined)
        if clash:  # concatenated, the later definition would silently win
            raise UtomError(f"{name} and {defined[clash[0]]} both define {clash[0]}")
        defined.update(dict.fromkeys(names, name))
        parts.append(f"# ---- {name}\n{text}\n")
    built = f"{type(generator).__name__}(**generator)"
    parts.append(f"class {MODEL_CLASS}({ViewAveraged.__name__}):\n"
                 f"    def __init__(self, views, axial, **generator):\n"
                 f"        super().__init__({built}, views, axial)\n")
    return "\n".join(parts)


def constructor_kwargs(generator: Generator) -> dict[str, Any]:
    """The arguments that rebuild ``generator``: each is kept as an attribute of its name."""
    params = [p for p in inspect.signature(type(generator).__init__).parameters if p != "self"]
    missing = [p for p in params if not hasattr(generator, p)]
    if missing:
        raise UtomError(f"generator {type(generator).__name__} cannot be packaged: it does not "
                        f"keep its argument {missing[0]!r}")
    return {p: getattr(generator, p) for p in params}
