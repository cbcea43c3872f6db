"""Docs are part of the feature: every hook is documented with its exact signature."""

from __future__ import annotations

import inspect
import re

from helpers import REPO, hook_functions


def test_every_hook_is_documented_with_its_signature():
    doc = (REPO / "docs" / "plugins.md").read_text()
    hooks = hook_functions()
    assert {"register_tasks", "register_generators"} <= set(hooks)
    for name, fn in hooks.items():
        signature = f"`{name}{inspect.signature(fn)}`"
        assert signature in doc, f"{signature} is not documented in docs/plugins.md"
        assert fn.__doc__ in doc, f"the docstring of {name} differs from docs/plugins.md"


def test_documented_hooks_exist():
    doc = (REPO / "docs" / "plugins.md").read_text()
    documented = set(re.findall(r"`(register_\w+)\(", doc))
    assert documented == set(hook_functions())


def test_cli_reference_is_the_commands_help():
    from utom_core.commands.reference import REGENERATE, render

    committed = (REPO / "docs" / "cli.md").read_text()
    assert committed == render(), f"docs/cli.md is out of date with --help; run: {REGENERATE}"
