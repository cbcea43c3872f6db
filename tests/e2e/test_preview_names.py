"""Previews are named by the image stem: ``x.1.tif`` and ``x.2.tif`` get a panel each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from reliability.checks import TINY, blob_image

pytestmark = pytest.mark.slow


def test_tests_with_dotted_names_get_distinct_previews_linked_from_the_report(cli, tmp_path):
    rng = np.random.default_rng(3)
    images = {"a.tif": blob_image(rng, 1500), "b.tif": blob_image(rng, 0)}
    for index in (1, 2):  # two different test images whose names differ after the first dot
        clean = blob_image(rng, 0, 64)
        images[f"x.{index}.tif"] = (clean + rng.normal(0, 1500, clean.shape)).clip(
            0, 65535).astype(np.uint16)
        images[f"x.{index}.reference.tif"] = clean
    for name, image in images.items():
        tifffile.imwrite(tmp_path / name, image)
    out = tmp_path / "out"
    result = cli("run", "denoise", "--a", tmp_path / "a.tif", "--b", tmp_path / "b.tif",
                 "--test", tmp_path / "x.1.tif", "--test", tmp_path / "x.2.tif",
                 "--reference", tmp_path / "x.1.reference.tif",
                 "--reference", tmp_path / "x.2.reference.tif", "--out", out, *TINY)
    assert result.code == 0, result.err
    previews = out / "previews"
    panels = sorted(p.name for p in previews.glob("*_panel.png"))
    assert panels == ["x.1_panel.png", "x.2_panel.png"]
    assert (previews / "x.1_panel.png").read_bytes() != (previews / "x.2_panel.png").read_bytes()
    assert sorted(p.name for p in previews.glob("*_profile.png")) == [
        "x.1_profile.png", "x.2_profile.png"]
    report = (out / "report.md").read_text()
    for stem in ("x.1", "x.2"):
        assert f"(previews/{stem}_panel.png)" in report
        assert f"(previews/{stem}_profile.png)" in report
    rows = json.loads((out / "metrics.json").read_text())["images"]
    assert sorted(row["prediction"].rsplit("/", 1)[-1] for row in rows) == ["x.1.tif", "x.2.tif"]
