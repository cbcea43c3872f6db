"""The plugin registry: built-ins and third-party packages extend utom through the same hooks.

Plugins are modules exposed under the entry-point group ``utom``. Setting the environment
variable ``UTOM_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points (tests register in-process).
A plugin that fails to import, misspells a hook, or registers an invalid or duplicate task is
reported in one warning naming its distribution; everything else keeps working.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
from pydantic import ValidationError

from utom_core import hookspecs
from utom_core.errors import UtomError
from utom_core.evaluation.base import Evaluator
from utom_core.io.formats import FormatTable
from utom_core.methods.base import Method
from utom_core.networks.base import Generator, GeneratorBuilder
from utom_core.task import Task

ENTRY_POINT_GROUP = "utom"
DISABLE_AUTOLOAD_ENV = "UTOM_DISABLE_PLUGIN_AUTOLOAD"
DEFAULT_PLUGINS = ("utom_core.plugins.builtins",)
"""Core extensions (generators, formats, metrics) registered like any plugin."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered something invalid."""


@dataclass
class PluginInfo:
    """One registered plugin module and where it came from."""

    name: str
    module: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)


@dataclass
class Registry:
    """Everything the plugins registered, by kind."""

    tasks: dict[str, Task] = field(default_factory=dict)
    generators: dict[str, Callable[..., Any]] = field(default_factory=dict)
    formats: FormatTable = field(default_factory=FormatTable)
    """Readers and writers; commands pass it to every ``io`` call that opens a user's file."""
    evaluators: dict[str, Evaluator] = field(default_factory=dict)
    methods: dict[str, Method] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def task(self, name: str) -> Task:
        """The task called ``name``, or a UtomError listing the known ones."""
        if name not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UtomError(f"unknown task {name!r} (registered: {known})")
        return self.tasks[name]

    def resolve(self, task: Task, cfg: Any) -> Resolved:
        """Every name a run of ``task`` with ``cfg`` (a TrainConfig) uses, resolved before any
        data is read: a missing method, generator or evaluator is refused in one line."""
        method = self.method(cfg.method)
        method.settings(cfg)  # its own settings (method_settings) refused here if wrong
        self.check_generator(cfg.generator)
        return Resolved(task, method, self.build_generator, self.task_evaluators(task),
                        self.formats)

    def method(self, name: str) -> Method:
        """The method called ``name``, or a UtomError listing the known ones."""
        if name not in self.methods:
            raise UtomError(f"unknown method {name!r} (registered: "
                            f"{', '.join(self.methods) or 'none'})")
        return self.methods[name]

    def task_evaluators(self, task: Task) -> dict[str, Evaluator]:
        """The evaluators ``task`` names, by name, or a UtomError naming the first missing."""
        missing = [name for name in task.evaluators if name not in self.evaluators]
        if missing:
            raise UtomError(f"task {task.name}: evaluator {missing[0]!r} is not registered")
        return {name: self.evaluators[name] for name in task.evaluators}

    def check_generator(self, name: str) -> None:
        """Refuse a generator name nothing registered (before any data is read)."""
        if name not in self.generators:
            raise UtomError(f"unknown generator {name!r} (registered: "
                            f"{', '.join(sorted(self.generators))})")

    def build_generator(self, cfg: Any, in_channels: int, out_channels: int) -> Generator:
        """A generator of the architecture ``cfg.generator`` names (a TrainConfig)."""
        self.check_generator(cfg.generator)
        for on, what, off in ((cfg.residual, "residual generators", "residual=false"),
                              (cfg.anchor_sigma, "anchor_sigma", "anchor_sigma=0")):
            if on and in_channels != out_channels:
                raise UtomError(f"{what} need equal channel counts, not {in_channels} → "
                                f"{out_channels}; set {off}")
        generator = self.generators[cfg.generator](in_channels, out_channels, cfg)
        for setting, lacks in (
                ("anchor_sigma", "does not keep the input's low frequencies"),
                ("lattice_notch", f"does not notch its output's lattice as lattice_notch="
                                  f"{cfg.lattice_notch:g} asks")):
            if getattr(generator, setting, 0.0) != getattr(cfg, setting):
                raise UtomError(f"generator {cfg.generator!r} {lacks}; set {setting}=0")
        return generator


@dataclass(frozen=True)
class Resolved:
    """What one run uses, as objects: commands resolve it once and pass it down, so nothing
    below them looks a name up in the registry."""

    task: Task
    method: Method
    build_generator: GeneratorBuilder
    evaluators: dict[str, Evaluator]
    formats: FormatTable


def _warn(registry: Registry, message: str) -> None:
    registry.problems.append(message)
    warnings.warn(message, PluginWarning, stacklevel=3)


def _hook_names(module: object) -> list[str]:
    return sorted(
        name
        for name in dir(module)
        if name.startswith("register_") and hasattr(getattr(module, name), "utom_impl")
    )


def create_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("utom")
    pm.add_hookspecs(hookspecs)
    return pm


def _register_module(
    pm: pluggy.PluginManager, registry: Registry, module: ModuleType, info: PluginInfo
) -> None:
    """Register one plugin module; on a bad hook implementation, warn and leave it out."""
    try:
        pm.register(module, name=info.name)
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        if pm.is_registered(module):
            pm.unregister(module)
        _warn(registry, f"plugin {info.distribution} {info.version} ({info.module}): {err}")
        return
    info.hooks = _hook_names(module)
    registry.plugins.append(info)


def _load_entry_points(pm: pluggy.PluginManager, registry: Registry) -> None:
    # utom's own entry points first, so a third-party task cannot take a built-in name
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP),
                 key=lambda ep: (ep.dist is None or ep.dist.name != "utom", ep.value))
    for ep in eps:
        dist = ep.dist.name if ep.dist else "unknown distribution"
        version = ep.dist.version if ep.dist else "?"
        try:
            module = ep.load()
        except Exception as err:  # a broken third-party import must not break utom
            _warn(registry, f"plugin {dist} {version} ({ep.value}) failed to load: "
                  f"{type(err).__name__}: {err}")
            continue
        _register_module(pm, registry, module, PluginInfo(ep.name, ep.value, dist, version))


def _collect(pm: pluggy.PluginManager, registry: Registry) -> None:
    """Call every register_* hook, attributing each registration to its plugin."""
    by_name = {p.name: p for p in registry.plugins}
    for hook_name, add in _adders(registry).items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = by_name[impl.plugin_name]

            def register(*args: Any, _add=add, _info=info) -> None:
                _add(_info, *args)

            try:
                impl.function(register=register)
            except (ValueError, TypeError, ValidationError) as err:
                _warn(registry, f"plugin {info.distribution} {info.version}: {hook_name}: "
                      f"{_one_line(err)}")
            except Exception as err:  # a plugin's bug must not break utom
                _warn(registry, f"plugin {info.distribution} {info.version}: {hook_name} raised "
                      f"{type(err).__name__}: {_one_line(err)}")


def _one_line(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"invalid task description: {loc}: {first['msg']}" if loc else first["msg"]
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _adders(registry: Registry) -> dict[str, Callable[..., None]]:
    def add_task(info: PluginInfo, task: Task | dict[str, Any]) -> None:
        task = task if isinstance(task, Task) else Task.model_validate(task)
        task = task.model_copy(update={"plugin": f"{info.distribution} {info.version}"})
        if task.name in registry.tasks:
            owner = registry.tasks[task.name].plugin
            raise ValueError(f"task name {task.name!r} is already registered by {owner}")
        registry.tasks[task.name] = task

    def add_generator(info: PluginInfo, name: str, factory: Callable[..., Any]) -> None:
        if name in registry.generators:
            raise ValueError(f"generator {name!r} is already registered")
        registry.generators[name] = factory

    def add_evaluator(info: PluginInfo, evaluator: Any) -> None:
        if evaluator.name in registry.evaluators:
            raise ValueError(f"evaluator {evaluator.name!r} is already registered")
        registry.evaluators[evaluator.name] = evaluator

    def add_method(info: PluginInfo, method: Method) -> None:
        if not isinstance(method, Method) or not method.name:
            raise TypeError(f"register_methods takes utom_core.methods.Method objects, not "
                            f"{type(method).__name__}")
        if method.name in registry.methods:
            raise ValueError(f"method {method.name!r} is already registered")
        registry.methods[method.name] = method

    return {
        "register_tasks": add_task,
        "register_methods": add_method,
        "register_generators": add_generator,
        "register_readers": lambda info, reader: registry.formats.readers.append(reader),
        "register_writers": lambda info, writer: registry.formats.writers.append(writer),
        "register_evaluators": add_evaluator,
    }


def build_registry(extra_plugins: Iterable[ModuleType] = ()) -> Registry:
    """Load default plugins, entry points (unless disabled) and ``extra_plugins``."""
    from utom_core import __version__

    pm = create_plugin_manager()
    registry = Registry()
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        _register_module(pm, registry, module, PluginInfo(module_name, module_name, "utom",
                                                          __version__))
    if not os.environ.get(DISABLE_AUTOLOAD_ENV):
        _load_entry_points(pm, registry)
    for module in extra_plugins:
        _register_module(pm, registry, module,
                         PluginInfo(module.__name__, module.__name__, module.__name__, "local"))
    _collect(pm, registry)
    return registry


_registry: Registry | None = None
_extra: list[ModuleType] = []


def get_registry() -> Registry:
    """The process's registry, built on first use (by the commands alone: they pass what it
    resolves down as objects)."""
    global _registry
    if _registry is None:
        _registry = build_registry(_extra)
    return _registry


def reset_registry() -> None:
    """Forget the process's registry: rebuilt on next use."""
    global _registry
    _registry = None


def add_plugin(module: ModuleType) -> None:
    """Register a plugin module in-process (tests, notebooks); the registry is rebuilt."""
    _extra.append(module)
    reset_registry()


def remove_plugin(module: ModuleType) -> None:
    """Undo ``add_plugin``."""
    _extra.remove(module)
    reset_registry()
