"""Issue 28.7: a run shows only the numbers its method has — the loss terms and ρ in the
progress lines and log.jsonl, the settings in the report — and the settings a method declares
unused really change nothing."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import DENOISE, TINY, assert_same, run_record, train

from utom_core.config import TrainConfig
from utom_core.methods import BUILTIN
from utom_core.workflow.report import write_report

METHODS = {method.name: method for method in BUILTIN}


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("method", "saliency", "cycle"), [
    ("utom", True, True), ("cyclegan", False, True), ("cut", False, False),
    ("utom-cut", True, False)])
def test_progress_lines_and_log_show_only_the_methods_terms(tmp_path, blob_tiffs, capsys,
                                                            monkeypatch, method, saliency, cycle):
    monkeypatch.setenv("UTOM_PROGRESS_SECONDS", "0")  # a plain line on every update
    cfg = TrainConfig(**TINY, iterations=6, seed=0, method=method)
    train(DENOISE, cfg, tmp_path / "run", blob_tiffs["a"], blob_tiffs["b"])
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("training: ") and " G " in line]
    assert lines and all(("ρ" in line) == saliency for line in lines), lines
    assert all((" sal " in line) == saliency for line in lines), lines
    assert all((" cyc " in line) == cycle for line in lines), lines
    rows = _rows(tmp_path / "run")
    assert len(rows) == 6
    for row in rows:
        assert ("rho" in row) == saliency
        assert any(key.startswith("saliency") for key in row) == saliency
        assert set(row) - {"iteration", "rho", "lr"} == set(METHODS[method].loss_terms)


def test_the_log_keeps_only_terms_the_method_has():
    assert "identity_a" not in METHODS["cyclegan"].loss_terms
    assert "identity_a" in METHODS["cyclegan-identity"].loss_terms
    assert "saliency_a" not in METHODS["cyclegan-identity"].loss_terms
    assert "nce_b" not in METHODS["fastcut"].loss_terms  # no NCE identity term
    assert {"saliency_a", "saliency_b", "cycle_a"} <= set(METHODS["utom"].loss_terms)


CHANGED = {"rho0": 1.0, "images_per_epoch": 3, "rho_decay_fraction": 0.5,
           "saliency_variant": "authors-code", "identity": True, "lambda_identity": 2.0,
           "lambda_cycle": 3.0, "pool_size": 0}
"""A value other than the default for each setting a method may declare unused."""


def _model(run_dir) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "model.pt", weights_only=True)
    return {f"{net}.{key}": value for net in ("g_ab", "g_ba") if net in state
            for key, value in state[net].items()}


@pytest.mark.parametrize("method", ["cyclegan", "cyclegan-identity", "cut", "fastcut",
                                    "utom-cut"])
def test_settings_a_method_declares_unused_change_nothing(tmp_path, blob_tiffs, method):
    cfg = TrainConfig(**TINY, iterations=3, seed=1, method=method)
    unused = METHODS[method].unused_settings(cfg)
    assert unused and unused <= CHANGED.keys()
    changed = cfg.model_copy(update={k: v for k, v in CHANGED.items() if k in unused})
    for name, settings in (("default", cfg), ("changed", changed)):
        train(DENOISE, settings, tmp_path / name, blob_tiffs["a"], blob_tiffs["b"],
              show_progress=False)
    assert_same(_model(tmp_path / "default"), _model(tmp_path / "changed"))
    assert _rows(tmp_path / "default") == _rows(tmp_path / "changed")


def test_a_used_setting_does_change_the_run(tmp_path, blob_tiffs):
    """The check above can fail: λ, which utom-cut uses (λρ L_sc), changes its weights."""
    cfg = TrainConfig(**TINY, iterations=3, seed=1, method="utom-cut")
    assert "lambda_cycle" not in METHODS["utom-cut"].unused_settings(cfg)
    for name, settings in (("default", cfg), ("changed", cfg.model_copy(
            update={"lambda_cycle": 3.0}))):
        train(DENOISE, settings, tmp_path / name, blob_tiffs["a"], blob_tiffs["b"],
              show_progress=False)
    with pytest.raises(AssertionError):
        assert_same(_model(tmp_path / "default"), _model(tmp_path / "changed"))


def _settings_rows(tmp_path, method: str, **config) -> dict[str, str]:
    path = tmp_path / f"{method}.md"
    cfg = TrainConfig(method=method, **config)
    write_report(path, run_record(method=method, config=cfg), tmp_path, METHODS[method])
    text = path.read_text()
    table = text[text.index("## Settings"):text.index("## Metrics")]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ")]
    return {cells[0][2:]: cells[1].rstrip(" |") for cells in rows[1:]} | {"_text": table}


def test_the_report_shows_only_settings_the_method_uses(tmp_path):
    utom = _settings_rows(tmp_path, "utom")
    assert {"lambda_cycle", "rho0", "images_per_epoch", "identity"} <= utom.keys()
    assert "lambda_identity" not in utom  # the identity term is off
    assert "Settings utom does not use are not shown." in utom["_text"]
    with_identity = _settings_rows(tmp_path, "utom", identity=True)
    assert "lambda_identity" in with_identity and "does not use" not in with_identity["_text"]
    cyclegan = _settings_rows(tmp_path, "cyclegan")
    assert "lambda_cycle" in cyclegan
    assert not {"rho0", "images_per_epoch", "saliency_variant", "identity"} & cyclegan.keys()
    assert "Settings cyclegan does not use are not shown." in cyclegan["_text"]
    cut = _settings_rows(tmp_path, "cut")
    assert not {"lambda_cycle", "rho0", "identity", "lambda_identity"} & cut.keys()
    utom_cut = _settings_rows(tmp_path, "utom-cut")
    assert not {"identity", "lambda_identity"} & utom_cut.keys()
    assert "rho0" in utom_cut  # its saliency term's schedule
    assert utom_cut["lambda_cycle"] == "10 (weights the saliency term, λρ; no cycle loss)"
