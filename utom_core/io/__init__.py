"""Image input and output: open any supported file lazily, create streamed outputs.

Formats are plugins: built-in TIFF, OME-Zarr and PNG readers/writers are registered through
``register_readers``/``register_writers`` like any third-party format, and chosen by suffix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.errors import InputError, UtomError
from utom_core.io.base import ImageInfo, ImageReader, ImageSink, ImageSource, ImageWriter

__all__ = [
    "ImageInfo",
    "ImageReader",
    "ImageSink",
    "ImageSource",
    "ImageWriter",
    "image_stem",
    "is_image",
    "list_images",
    "open_image",
    "read_image",
    "writer_for",
]


def _matches(path: Path, formats: list) -> list[tuple[int, object]]:
    name = path.name.lower()
    return [(len(s), f) for f in formats for s in f.suffixes if name.endswith(s.lower())]


def _match(path: Path, formats: list) -> object | None:
    """The format whose longest suffix ends ``path``'s name (so ".ome.tif" beats ".tif")."""
    matches = _matches(path, formats)
    return max(matches, key=lambda m: m[0])[1] if matches else None


def _suffixes(formats: list) -> str:
    return ", ".join(sorted({s for f in formats for s in f.suffixes}))


def _readers() -> list[ImageReader]:
    from utom_core.plugins import get_registry

    return get_registry().readers


def open_image(path: Path) -> ImageSource:
    """Open ``path`` lazily with the registered reader for its suffix (InputError if unusable)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    reader = _match(path, _readers())
    if reader is None:
        raise InputError(path, f"unsupported image format (supported: {_suffixes(_readers())})")
    source = reader.open(path)
    if min(source.info.shape) < 1:
        source.close()
        raise InputError(path, f"image is empty (shape {source.info.shape})")
    return source


def read_image(path: Path) -> np.ndarray:
    """A whole image in canonical (C, …) order: for small images only (tests, evaluation)."""
    source = open_image(path)
    try:
        return source.read(tuple(slice(None) for _ in source.info.shape[1:]))
    finally:
        source.close()


def is_image(path: Path) -> bool:
    """Whether a registered reader handles ``path``'s suffix."""
    return _match(Path(path), _readers()) is not None


def image_stem(path: Path) -> str:
    """The file name without its image suffix (``a.ome.tif`` → ``a``)."""
    matches = _matches(Path(path), _readers())
    cut = max((n for n, _ in matches), default=len(Path(path).suffix))
    return Path(path).name[: len(Path(path).name) - cut]


def list_images(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their supported images (sorted, not recursive)."""
    images: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(path, "no such file or folder")
        if path.is_dir() and not is_image(path):
            found = sorted(p for p in path.iterdir() if is_image(p) and not p.name.startswith("."))
            if not found:
                raise InputError(path, "folder contains no supported images "
                                       f"({_suffixes(_readers())})")
            images.extend(found)
        else:
            images.append(path)
    return images


def writer_for(path: Path) -> ImageWriter:
    """The registered writer for ``path``'s suffix (UtomError naming the supported ones)."""
    from utom_core.plugins import get_registry

    writers = get_registry().writers
    writer = _match(Path(path), writers)
    if writer is None:
        raise UtomError(f"{path}: cannot write this format (supported: {_suffixes(writers)})")
    return writer
