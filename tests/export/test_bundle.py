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

LAYOUTS = {
    "resnet-notched": {"upsampling": "transpose", "lattice_notch": 6.0},
    "resnet-anchored": {"residual": True, "anchor_sigma": 3.0},
    "unet-notched": {"generator": "unet", "upsampling": "transpose", "lattice_notch": 6.0},
    "cyclegan-unet-notched": {"generator": "cyclegan-unet", "lattice_notch": 6.0},
}

BUILD = f"""
import sys, importlib.util, torch
sys.modules['utom_core'] = None  # any import of utom fails
spec = importlib.util.spec_from_file_location('arch', 'arch.py')
module = importlib.util.module_from_spec(spec); sys.modules['arch'] = module
spec.loader.exec_module(module)
model = module.{MODEL_CLASS}(views=1, axial=False, **eval(open('kwargs.txt').read()))
model.generator.load_state_dict(torch.load('weights.pt', weights_only=True))
with torch.no_grad():
    torch.save(model(torch.load('x.pt', weights_only=True)), 'out.pt')
"""


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_bundled_source_rebuilds_the_generator_with_torch_alone(layout, tmp_path):
    torch.manual_seed(0)
    channels = 1 if LAYOUTS[layout].get("residual") else 3
    cfg = TrainConfig(ngf=8, n_blocks=1, unet_depth=3, **LAYOUTS[layout])
    generator = get_registry().build_generator(cfg, 1, channels).eval()
    (tmp_path / "arch.py").write_text(generator_source(generator))
    (tmp_path / "kwargs.txt").write_text(repr(constructor_kwargs(generator)))
    torch.save(generator.state_dict(), tmp_path / "weights.pt")
    x = torch.rand(1, 1, 64, 48) * 2 - 1
    torch.save(x, tmp_path / "x.pt")
    done = subprocess.run([sys.executable, "-c", BUILD], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        expected = generator(x)
    assert float(expected.std()) > 0.01  # a real output, not a constant
    torch.testing.assert_close(torch.load(tmp_path / "out.pt", weights_only=True), expected,
                               atol=1e-6, rtol=0)
