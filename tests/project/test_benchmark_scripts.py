"""benchmarks/gpu.py is one prepared command for a GPU machine; its CPU smoke keeps it working."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow

ROWS = ("fp32", "bf16 + channels_last", "bf16 + torch.compile", "batch 4",
        "data pipeline alone", "stain-he", "prediction", "50000 iterations")


def test_the_gpu_benchmark_runs_every_row_at_toy_sizes_on_a_cpu():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--cpu-smoke"],
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    for row in ROWS:
        assert row in result.stdout, (row, result.stdout)
    assert "skipped" not in result.stdout
    assert result.stdout.count("img/s") == 7  # the training rows
