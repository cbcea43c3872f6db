"""Untrusted files cannot run code: checkpoints load as tensors and plain data only, settings
are validated data, utom never evaluates user strings, and plugins come only from installed
entry points."""

from __future__ import annotations

import ast
import builtins
import os
import pickle
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel
from reliability.checks import Data, one_line_error, snapshot

import utom_core
from utom_core import plugins, trained

REPO = Path(__file__).resolve().parents[2]
PACKAGES = [REPO / "utom_core", REPO / "utom_tasks"]


class Payload:
    """Unpickling this runs ``function(*args)``: the classic malicious checkpoint."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _malicious(kind: str, marker: Path) -> object:
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "subprocess": Payload(subprocess.call, ["touch", str(marker)]),
        "exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
    }[kind]


def _save(kind: str, how: str, path: Path, marker: Path) -> Path:
    """A checkpoint-shaped dict with the payload hidden among real entries."""
    state = {"format": trained.MODEL_FORMAT, "config": {}, "meta": {},
             "g_ab": {"weight": torch.zeros(2)}, "extra": _malicious(kind, marker)}
    if how == "torch":
        torch.save(state, path)
    elif how == "torch-legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(state, protocol=2))
    return path


@pytest.mark.parametrize("how", ["torch", "torch-legacy", "pickle"])
@pytest.mark.parametrize("kind", ["os.system", "subprocess", "exec", "eval"])
def test_a_checkpoint_that_runs_code_is_refused(cli, tmp_path, data: Data, kind, how):
    marker = tmp_path / "PWNED"
    model = _save(kind, how, tmp_path / "model.pt", marker)
    before = snapshot(tmp_path, data.root)
    line = one_line_error(cli("predict", model, data.a[0], "--out", tmp_path / "out.tif"),
                          "model.pt", "refused", "could run code")
    assert "weights_only" not in line  # no advice to switch the protection off
    assert not marker.exists()
    assert snapshot(tmp_path, data.root) == before


@pytest.mark.parametrize("where", ["run-model", "resume-checkpoint"])
def test_run_directories_with_a_malicious_file_are_refused(cli, tmp_path, data: Data, where):
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    if where == "run-model":
        _save("os.system", "torch", run / trained.MODEL_FILE, marker)
        result = cli("predict", run, data.a[0], "--out", tmp_path / "out.tif")
    else:
        _save("os.system", "torch", run / trained.CHECKPOINT_FILE, marker)
        result = cli("train", "denoise", "--resume", "--out", run)
    one_line_error(result, "refused")
    assert not marker.exists()


def test_every_torch_load_is_weights_only():
    """The one loader (checkpoints.load_torch) passes weights_only=True; nothing else unpickles."""
    calls = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _name(node.func) in ("torch.load", "load"):
                keywords = {k.arg: k.value for k in node.keywords}
                if _name(node.func) == "torch.load":
                    assert isinstance(keywords.get("weights_only"), ast.Constant) \
                        and keywords["weights_only"].value is True, f"{path}:{node.lineno}"
                    calls.append(path.name)
    assert calls == ["checkpoints.py"]


FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "pickle.load", "pickle.loads",
                   "marshal.loads", "yaml.load", "yaml.unsafe_load", "os.system",
                   "dill.load", "cloudpickle.load", "shelve.open"}


def test_no_code_is_evaluated_from_strings():
    """No eval/exec/compile, no unpickling and no shell of anything in utom's own code."""
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name in FORBIDDEN_CALLS:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}(")
            if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant)
                                             and k.value.value is False) for k in node.keywords):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: shell=")
    assert found == []


def test_plain_grep_finds_no_eval_or_exec():
    """The same promise, checked the blunt way (also catches code the AST walk would miss,
    e.g. ``getattr(builtins, "eval")``)."""
    hits = [f"{p.relative_to(REPO)}: {line.strip()}" for p in _sources()
            for line in p.read_text().splitlines()
            if any(s in line for s in ("eval(", "exec(", '"eval"', '"exec"'))
            and "literal_eval(" not in line and "model.eval()" not in line
            and not line.lstrip().startswith("#")]
    hits = [h for h in hits if ".eval()" not in h]  # nn.Module.eval(): inference mode
    assert hits == []


IMPORTERS = {"importlib.import_module", "import_module", "spec_from_file_location",
             "importlib.util.spec_from_file_location", "runpy.run_path", "SourceFileLoader"}


def test_importlib_only_loads_named_default_plugins():
    """Modules are imported by name only in the plugin loader, and only from DEFAULT_PLUGINS
    (entry points are loaded by importlib.metadata, from installed distributions)."""
    users = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _name(node.func) in IMPORTERS:
                users.append(path.name)
    assert users == ["registry.py"]


def test_plugins_come_only_from_installed_entry_points(tmp_path, monkeypatch, fresh_registry):
    """A Python file lying in the working folder, or named in the environment, is not loaded."""
    marker = tmp_path / "PWNED"
    (tmp_path / "utom_evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from utom_core.hookspecs import hookimpl\n"
        "@hookimpl\ndef register_tasks(register):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UTOM_PLUGINS", "utom_evil")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    registry = plugins.get_registry()
    installed = {ep.value for ep in entry_points(group=plugins.ENTRY_POINT_GROUP)}
    modules = {info.module for info in registry.plugins}
    assert modules <= installed | set(plugins.DEFAULT_PLUGINS)
    assert not marker.exists()
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    plugins.reset_registry()
    assert {i.module for i in plugins.get_registry().plugins} == set(plugins.DEFAULT_PLUGINS)


def test_a_checkpoint_names_generators_only_from_the_registry(cli, tmp_path, data: Data):
    """A checkpoint's config picks an architecture by name from the registry, never by import
    path."""
    state = dict(torch.load(data.model / trained.MODEL_FILE, weights_only=True))
    state["config"] = {**state["config"], "generator": "os:system"}
    torch.save(state, tmp_path / "m.pt")
    one_line_error(cli("predict", tmp_path / "m.pt", data.a[0], "--out", tmp_path / "o.tif"),
                   "unknown generator 'os:system'")


def test_every_settings_model_forbids_unknown_keys():
    """Every pydantic model utom parses from files, checkpoints or plugins is extra="forbid"."""
    import importlib
    import pkgutil

    models = set()
    for info in pkgutil.walk_packages(utom_core.__path__, "utom_core."):
        module = importlib.import_module(info.name)
        models |= {v for v in vars(module).values() if isinstance(v, type)
                   and issubclass(v, BaseModel) and v is not BaseModel
                   and v.__module__.startswith("utom_core")}
    assert len(models) >= 5
    loose = sorted(m.__name__ for m in models if m.model_config.get("extra") != "forbid")
    assert loose == []


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in package.rglob("*.py"))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""
