"""The package's architecture file rebuilds each built-in generator with torch alone — the
stain-he layout's lattice notch and the restorations' anchor included — and computes what
utom's own generator computes (the zoo smoke test packages one denoise layout only)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from utom_core.config import TrainConfig
from utom_core.export.bundle import MODEL_CLASS, constructor_kwargs, generator_source
from utom_core.plugins import get_registry

pytestmark = pytest.mark.slow  # a fresh Python process importing torch

LAYOUTS = {
    "resnet-notched": {"upsampling": "transpose", "lattice_notch": 6.0},
    "resnet-anchored": {"residual": True, "anchor_sigma": 3.0},
    "unet-notched": {"generator": "unet", "upsampling": "transpose", "lattice_notch": 6.0},
    "cyclegan-unet-notched": {"generator": "cyclegan-unet", "lattice_notch": 6.0},
}

BUILD = f"""
import sys, importlib.util, pathlib, torch
sys.modules['utom_core'] = None  # any import of utom fails
for folder in sorted(pathlib.Path('.').iterdir()):
    spec = importlib.util.spec_from_file_location(folder.name, folder / 'arch.py')
    module = importlib.util.module_from_spec(spec); sys.modules[folder.name] = module
    spec.loader.exec_module(module)
    kwargs = eval((folder / 'kwargs.txt').read_text())
    model = module.{MODEL_CLASS}(views=1, axial=False, **kwargs)
    model.generator.load_state_dict(torch.load(folder / 'weights.pt', weights_only=True))
    with torch.no_grad():
        torch.save(model(torch.load(folder / 'x.pt', weights_only=True)), folder / 'out.pt')
"""


def test_the_bundled_source_rebuilds_each_generator_with_torch_alone(tmp_path):
    expected = {}
    for name, settings in LAYOUTS.items():
        torch.manual_seed(0)
        channels = 1 if settings.get("residual") else 3
        cfg = TrainConfig(ngf=8, n_blocks=1, unet_depth=3, **settings)
        generator = get_registry().build_generator(cfg, 1, channels).eval()
        folder = tmp_path / name
        folder.mkdir()
        (folder / "arch.py").write_text(generator_source(generator))
        (folder / "kwargs.txt").write_text(repr(constructor_kwargs(generator)))
        torch.save(generator.state_dict(), folder / "weights.pt")
        x = torch.rand(1, 1, 64, 48) * 2 - 1
        torch.save(x, folder / "x.pt")
        with torch.no_grad():
            expected[name] = generator(x)
        assert float(expected[name].std()) > 0.01  # a real output, not a constant
    done = subprocess.run([sys.executable, "-c", BUILD], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name, output in expected.items():
        torch.testing.assert_close(torch.load(tmp_path / name / "out.pt", weights_only=True),
                                   output, atol=1e-6, rtol=0, msg=name)
