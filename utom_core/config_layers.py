"""Setting layers as users and old runs give them: merged section by section, and settings
given by the names they had before methods owned their settings."""

from __future__ import annotations

from typing import Any

MOVED_TO_METHOD_SETTINGS: dict[str, Any] = {"lambda_nce": None, "nce_patches": 256,
                                           "nce_temperature": 0.07}
"""The contrastive methods' settings that were TrainConfig's own, with the values every run
then saved: saved runs, config files and ``--set`` that use the old names keep working."""


def moved_to_method_settings(layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` with the settings of ``MOVED_TO_METHOD_SETTINGS`` under their new names:
    dropped at their old values (the methods' defaults now, and what every old run saved),
    moved into ``method_settings`` otherwise (where a method refuses them if not its own)."""
    section = layer.get("method_settings", {})
    if not set(layer) & set(MOVED_TO_METHOD_SETTINGS) or not isinstance(section, dict):
        return layer
    moved = {key: value for key, value in layer.items() if key in MOVED_TO_METHOD_SETTINGS
             and value != MOVED_TO_METHOD_SETTINGS[key]}
    kept = {key: value for key, value in layer.items() if key not in MOVED_TO_METHOD_SETTINGS}
    return {**kept, "method_settings": {**moved, **section}} if moved or section else kept


def merge_layers(base: dict[Any, Any], layer: dict[Any, Any]) -> dict[Any, Any]:
    """``base`` updated by ``layer`` (later wins), sections (``method_settings``) key by key."""
    merged = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = {**merged[key], **value}
        merged[key] = value
    return merged
