"""Plugin discovery through real entry points, and broken plugins that must not break utom."""

from __future__ import annotations

import warnings

import pytest

from utom_core import plugins
from utom_core.plugins import PluginWarning, build_registry

BUILTIN = {"stain-he", "denoise", "isotropic", "sr", "label"}

GOOD_PLUGIN = """
from utom_core.domain import Domain
from utom_core.hookspecs import hookimpl
from utom_core.task import Task

@hookimpl
def register_tasks(register):
    register(Task(name="spots", summary="spots", domain_a=Domain(name="a", channels=2),
                  domain_b=Domain(name="b", channels=4)))
"""


def registry_with_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = build_registry()
    return registry, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_builtin_tasks_come_through_the_entry_point():
    registry, problems = registry_with_warnings()
    assert set(registry.tasks) >= BUILTIN
    assert problems == []
    channels = {n: (t.domain_a.channels, t.domain_b.channels) for n, t in registry.tasks.items()}
    assert channels["stain-he"] == (1, 3) and channels["label"] == (1, 3)
    assert channels["denoise"] == channels["sr"] == channels["isotropic"] == (1, 1)
    assert registry.tasks["stain-he"].domain_a.background == "dark"
    assert registry.tasks["stain-he"].domain_b.background == "bright"
    assert registry.tasks["isotropic"].domain_a.axes == "zyx"
    entry = {p.module: p for p in registry.plugins}["utom_tasks"]
    assert entry.distribution == "utom" and entry.hooks == ["register_tasks"]


def test_third_party_plugin_is_discovered(installed_plugin):
    installed_plugin("utom-spots", "utom_spots", GOOD_PLUGIN)
    registry, problems = registry_with_warnings()
    assert problems == []
    assert registry.tasks["spots"].plugin == "utom-spots 1.0"
    assert registry.tasks["spots"].domain_b.channels == 4


def test_autoload_can_be_disabled(installed_plugin, monkeypatch):
    installed_plugin("utom-spots", "utom_spots", GOOD_PLUGIN)
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    registry, _ = registry_with_warnings()
    assert "spots" not in registry.tasks and "stain-he" not in registry.tasks
    assert "resnet" in registry.generators  # core defaults are not plugins to disable


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import not_a_module_anywhere\n", "failed to load: ModuleNotFoundError"),
        ("from utom_core.hookspecs import hookimpl\n@hookimpl\ndef register_taks(register):\n"
         "    pass\n", "unknown hook 'register_taks'"),
        ("from utom_core.hookspecs import hookimpl\n@hookimpl\ndef register_tasks(register):\n"
         "    register({'name': 'bad', 'summary': 's', 'domain_a': {'name': 'a', 'channels': 0},"
         " 'domain_b': {'name': 'b', 'channels': 1}})\n", "invalid task description"),
        ("from utom_tasks.denoise import TASK\nfrom utom_core.hookspecs import hookimpl\n"
         "@hookimpl\ndef register_tasks(register):\n    register(TASK)\n",
         "'denoise' is already registered by utom"),
        ("from utom_core.hookspecs import hookimpl\n@hookimpl\ndef register_tasks(register):\n"
         "    raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
    ],
    ids=["import-error", "misspelled-hook", "invalid-task", "name-collision", "hook-raises"],
)
def test_broken_plugin_warns_once_and_the_rest_works(installed_plugin, source, expected):
    installed_plugin("utom-broken", "utom_broken", source, version="0.3")
    registry, problems = registry_with_warnings()
    assert len(problems) == 1, problems
    assert "utom-broken 0.3" in problems[0] and expected in problems[0]
    assert set(registry.tasks) >= BUILTIN
    assert registry.tasks["denoise"].plugin.startswith("utom ")


def test_broken_plugin_does_not_break_the_cli(installed_plugin, cli):
    installed_plugin("utom-broken", "utom_broken", "raise ImportError('half installed')\n")
    result = cli("tasks")
    assert result.code == 0
    assert "stain-he" in result.out and "label" in result.out
    assert result.err.count("utom-broken") == 1 and "half installed" in result.err


def test_in_process_plugin_registration():
    import types

    module = types.ModuleType("inline_plugin")
    exec(GOOD_PLUGIN, module.__dict__)
    plugins.add_plugin(module)
    try:
        assert "spots" in plugins.get_registry().tasks
    finally:
        plugins.remove_plugin(module)
    assert "spots" not in plugins.get_registry().tasks


UNSCORED_PLUGIN = """
from utom_core.domain import Domain
from utom_core.hookspecs import hookimpl
from utom_core.task import Task

@hookimpl
def register_tasks(register):
    register(Task(name="unscored", summary="scored by nothing registered",
                  domain_a=Domain(name="a", channels=1), domain_b=Domain(name="b", channels=1),
                  evaluators=["content", "nowhere"]))
"""


@pytest.mark.parametrize("command", ["train", "run"])
def test_an_unregistered_evaluator_is_refused_before_training(cli, tmp_path, blob_tiffs,
                                                              monkeypatch, command):
    """The commands resolve a task's evaluators up front: a missing one is refused in one
    line before any image is read or any folder written, not after the training."""
    import types

    from reliability.checks import one_line_error

    from utom_core.data import images

    monkeypatch.setattr(images.DomainImages, "__init__",
                        lambda *args, **kwargs: pytest.fail("an image was read"))
    module = types.ModuleType("unscored_plugin")
    exec(UNSCORED_PLUGIN, module.__dict__)
    plugins.add_plugin(module)
    try:
        result = cli(command, "unscored", "--a", blob_tiffs["a"][0], "--b", blob_tiffs["b"][0],
                     "--out", tmp_path / "out")
    finally:
        plugins.remove_plugin(module)
    one_line_error(result, "task unscored: evaluator 'nowhere' is not registered")
    assert not (tmp_path / "out").exists()
