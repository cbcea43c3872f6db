"""Demo data builders: files, channels and types match the task; splits are unpaired; seeded."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from utom_core.errors import UtomError
from utom_core.io import open_image
from utom_core.task import Slicing
from utom_tasks import denoise, isotropic, labeling, stain_he, super_resolution
from utom_tasks.demo import REGIONS_FILE, DemoWriter, bands, region

REAL_STAIN_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "utom-colorectal"

BUILDERS = {
    "stain-he standin": (stain_he.TASK, stain_he.standin_data, True),
    "denoise real": (denoise.TASK, denoise.real_noise_data, False),
    "denoise simulated": (denoise.TASK, denoise.simulated_noise_data, True),
    "isotropic": (isotropic.TASK, isotropic.demo_data, True),
    "sr": (super_resolution.TASK, super_resolution.demo_data, True),
    "label": (labeling.TASK, labeling.demo_data, True),
}


def info(path: Path):
    source = open_image(path)
    try:
        return source.info
    finally:
        source.close()


def overlaps(one, other) -> bool:
    return all(a0 < b1 and b0 < a1 for (a0, a1), (b0, b1) in zip(one, other, strict=True))


def check_layout(task, workdir: Path) -> None:
    """Independent of DemoWriter.check: no A/B overlap, no test region inside A or B; one
    volume serves both domains only where they read it along different planes."""
    layout = json.loads((workdir / REGIONS_FILE).read_text())
    roles = {role: [v for v in layout.values() if v["role"] == role]
             for role in ("a", "b", "ab", "test", "reference")}
    assert ((roles["a"] and roles["b"]) or roles["ab"]) and roles["test"]
    if roles["ab"]:
        assert task.slicing is Slicing.xz_yz
    for held_out in roles["test"] + roles["reference"]:
        for train in roles["a"] + roles["b"] + roles["ab"]:
            if held_out["specimen"] == train["specimen"]:
                assert not overlaps(held_out["region"], train["region"])
    for a in roles["a"]:
        for b in roles["b"]:
            if a["specimen"] == b["specimen"]:
                assert not overlaps(a["region"], b["region"])


def check_files(task, data, workdir: Path) -> None:
    assert data.a and data.b and data.test and data.notes
    assert len(data.reference) == len(data.test)
    for paths, domain in ((data.a, task.domain_a), (data.b, task.domain_b),
                          (data.test, task.domain_a)):
        for path in paths:
            assert path.parent == workdir and path.is_file()
            meta = info(path)
            assert meta.channels == domain.channels, path.name
            assert meta.dtype == np.dtype(domain.dtype.value), path.name
    for test, reference in zip(data.test, data.reference, strict=True):
        if reference is not None:
            ref = info(reference)
            assert ref.channels == task.domain_b.channels
            assert ref.dtype == np.dtype(task.domain_b.dtype.value)
            assert ref.shape[1:] == info(test).shape[1:]
    check_layout(task, workdir)


def digests(workdir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(workdir.iterdir())}


@pytest.mark.parametrize("name", BUILDERS)
def test_builder_output_and_determinism(name, tmp_path):
    task, build, draws_noise = BUILDERS[name]
    first = build(tmp_path / "one", 3)
    check_files(task, first, tmp_path / "one")
    build(tmp_path / "two", 3)
    assert digests(tmp_path / "one") == digests(tmp_path / "two")
    build(tmp_path / "other", 4)
    assert (digests(tmp_path / "one") != digests(tmp_path / "other")) == draws_noise


@pytest.mark.parametrize("module", [stain_he, denoise, isotropic, super_resolution, labeling])
def test_every_task_has_demo_data(module):
    assert module.TASK.demo_data is not None


def test_stain_he_standin_is_default(tmp_path, monkeypatch):
    monkeypatch.delenv(stain_he.DATA_ENV, raising=False)
    data = stain_he.TASK.demo_data(tmp_path, 0)
    assert "stand-in" in data.notes[0]


@pytest.mark.skipif(not REAL_STAIN_DATA.is_dir(), reason="real colorectal data not present")
def test_stain_he_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv(stain_he.DATA_ENV, str(REAL_STAIN_DATA))
    data = stain_he.TASK.demo_data(tmp_path, 0)
    check_files(stain_he.TASK, data, tmp_path)
    assert "Real data" in data.notes[0] and "not ground truth" in data.notes[1]
    assert info(data.test[0]).shape == (1, 1000, 200)


def test_stain_he_env_with_missing_files_fails(tmp_path, monkeypatch):
    monkeypatch.setenv(stain_he.DATA_ENV, str(tmp_path))
    with pytest.raises(UtomError, match=r"AF_8\.png"):
        stain_he.TASK.demo_data(tmp_path / "work", 0)


def test_denoise_variant_switch(tmp_path, monkeypatch):
    monkeypatch.setenv(denoise.VARIANT_ENV, "simulated")
    assert "SIMULATED" in denoise.TASK.demo_data(tmp_path / "s", 0).notes[0]
    monkeypatch.setenv(denoise.VARIANT_ENV, "nonsense")
    with pytest.raises(UtomError, match="real, simulated"):
        denoise.TASK.demo_data(tmp_path / "n", 0)


def test_denoise_real_reference_is_cleaner_than_test(tmp_path):
    data = denoise.real_noise_data(tmp_path, 0)
    noisy = tifffile.imread(data.test[0]).astype(float)
    clean = tifffile.imread(data.reference[0]).astype(float)
    background = clean < np.percentile(clean, 50)
    assert noisy[background].std() > 2.5 * clean[background].std()


def test_bands_are_disjoint_with_gaps():
    a, test, b = bands(100, test_fraction=0.2, gap=5)
    assert (a.start, a.stop, test.start, test.stop, b.start, b.stop) == (0, 35, 40, 60, 65, 100)
    with pytest.raises(ValueError):
        bands(10, gap=5)


def test_writer_refuses_aligned_pairs(tmp_path):
    writer = DemoWriter(tmp_path)
    image = np.zeros((8, 8), np.uint16)
    writer.train("a", "a.tif", image, "YX", "s", region(slice(0, 8), slice(0, 4), shape=(8, 8)))
    writer.train("b", "b.tif", image, "YX", "s", region(slice(0, 8), slice(3, 8), shape=(8, 8)))
    with pytest.raises(AssertionError, match="overlaps"):
        writer.finish([])


def test_one_volume_serves_both_domains_but_never_holds_a_test_region(tmp_path):
    writer = DemoWriter(tmp_path)
    volume = np.zeros((4, 8, 8), np.uint16)
    writer.train("ab", "v.tif", volume, "ZYX", "s", region(slice(0, 4), slice(0, 8),
                                                          slice(0, 8), shape=(4, 8, 8)))
    data = writer.finish([])
    assert data.a == data.b == [tmp_path / "v.tif"]
    writer.test("t.tif", volume[:, :2], "ZYX", "s", region(slice(0, 4), slice(6, 8),
                                                          slice(0, 8), shape=(4, 8, 8)))
    with pytest.raises(AssertionError, match="overlaps"):
        writer.finish([])


def test_isotropic_axial_planes_keep_z_vertical_in_training(tmp_path):
    """XZ/YZ tiles may be flipped, never turned by 90° (z would become a lateral axis)."""
    from utom_core.data.images import DomainImages
    from utom_core.data.sampling import random_orientation
    from utom_core.training.meta import cut_axes

    data = isotropic.demo_data(tmp_path, 0)
    axes_a, axes_b = cut_axes(isotropic.TASK)
    images_a = DomainImages(data.a, isotropic.TASK.domain_a, axes_a)
    images_b = DomainImages(data.b, isotropic.TASK.domain_b, axes_b)
    assert not images_a.quarter_turns and images_b.quarter_turns
    images_a.close()
    images_b.close()
    window = np.arange(12.0).reshape(1, 3, 4)
    rng = np.random.default_rng(0)
    shapes = {random_orientation(rng, window, quarter_turns=False)[0].shape for _ in range(50)}
    assert shapes == {(1, 3, 4)}
    shapes = {random_orientation(rng, window)[0].shape for _ in range(50)}
    assert shapes == {(1, 3, 4), (1, 4, 3)}


def test_bundle_matches_attribution_and_stays_small():
    folder = Path(stain_he.__file__).parent / "demo_data"
    text = (folder / "ATTRIBUTION.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^## (\S+)\n(?:.*\n)*?- sha256: `([0-9a-f]{64})`", text, re.M))
    bundled = {p.name for p in folder.iterdir() if p.suffix in (".png", ".tif")}
    assert set(listed) == bundled
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert sum((folder / name).stat().st_size for name in bundled) < 6.5e6
