"""Plugins: hook specifications live in ``utom_core.hookspecs``; this package loads them.

``registry`` finds entry points, isolates broken plugins and keeps the process's registry;
``builtins`` registers utom's own generators, formats and evaluators through the same hooks.
"""

from utom_core.plugins.registry import (
    DEFAULT_PLUGINS,
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    PluginInfo,
    PluginWarning,
    Registry,
    Resolved,
    add_plugin,
    build_registry,
    get_registry,
    remove_plugin,
    reset_registry,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "Resolved",
    "add_plugin",
    "build_registry",
    "get_registry",
    "remove_plugin",
    "reset_registry",
]
