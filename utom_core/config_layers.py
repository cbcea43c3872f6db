"""Setting layers as users and old runs give them: read from config files and ``--set``, merged
section by section, and settings given by the names they had before methods owned their
settings."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from utom_core.errors import UtomError

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


def parse_value(text: str) -> Any:
    """A --set value: TOML scalar or array syntax, falling back to a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):  # RecursionError: absurdly deep arrays
        return text


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``key=value`` strings from the command line into a dict; ``section.key=value`` sets
    ``key`` in the section (``method_settings.nce_patches=128``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UtomError(f"--set {pair!r}: expected key=value")
        if "\n" in pair or "\r" in pair:  # TOML would read one line and drop the rest
            raise UtomError(f"--set {pair!r}: one setting per --set, on one line")
        section, dot, name = key.strip().partition(".")
        if dot and not (section and name):
            raise UtomError(f"--set {pair!r}: expected section.key=value")
        layer = {name: parse_value(value.strip())} if dot else parse_value(value.strip())
        out = merge_layers(out, {section: layer})
    return out


def load_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML file (a flat table of TrainConfig keys)."""
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise UtomError(f"{path}: cannot read config ({err.strerror or err})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UtomError(f"{path}: not valid TOML ({err})") from None
    except RecursionError:
        raise UtomError(f"{path}: not valid TOML (nested too deeply)") from None
