"""Image input and output: open any supported file lazily, create streamed outputs.

Formats are chosen by suffix from a ``FormatTable``: the one a caller passes as ``formats``
(commands pass the plugin registry's, third-party formats included), else utom's own TIFF,
OME-Zarr and PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utom_core.errors import InputError, UtomError
from utom_core.io.base import ImageInfo, ImageReader, ImageSink, ImageSource, ImageWriter
from utom_core.io.formats import FormatTable, formats_or_builtin

__all__ = [
    "FormatTable",
    "ImageInfo",
    "ImageReader",
    "ImageSink",
    "ImageSource",
    "ImageWriter",
    "can_write",
    "image_stem",
    "is_image",
    "list_images",
    "open_image",
    "read_image",
    "writer_for",
]


def open_image(path: Path, *, formats: FormatTable | None = None) -> ImageSource:
    """Open ``path`` lazily with the reader for its suffix (InputError if unusable)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    formats = formats_or_builtin(formats)
    reader = formats.reader(path)
    if reader is None:
        raise InputError(path, "unsupported image format (supported: "
                               f"{FormatTable.suffixes(formats.readers)})")
    source = reader.open(path)
    if min(source.info.shape) < 1:
        source.close()
        raise InputError(path, f"image is empty (shape {source.info.shape})")
    return source


def read_image(path: Path, *, formats: FormatTable | None = None) -> np.ndarray:
    """A whole image in canonical (C, …) order: for small images only (tests, evaluation)."""
    source = open_image(path, formats=formats)
    try:
        return source.read(tuple(slice(None) for _ in source.info.shape[1:]))
    finally:
        source.close()


def is_image(path: Path, *, formats: FormatTable | None = None) -> bool:
    """Whether a reader handles ``path``'s suffix."""
    return formats_or_builtin(formats).reader(path) is not None


def can_write(path: Path, *, formats: FormatTable | None = None) -> bool:
    """Whether a writer handles ``path``'s suffix (an output file, not a folder)."""
    return formats_or_builtin(formats).writer(path) is not None


def image_stem(path: Path, *, formats: FormatTable | None = None) -> str:
    """The file name without its image suffix (``a.ome.tif`` → ``a``)."""
    name = Path(path).name
    cut = formats_or_builtin(formats).suffix_length(path)
    return name[: len(name) - (len(Path(path).suffix) if cut is None else cut)]


def list_images(paths: list[Path], *, formats: FormatTable | None = None) -> list[Path]:
    """Files as given, folders expanded to their supported images (sorted, not recursive)."""
    formats = formats_or_builtin(formats)
    images: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(path, "no such file or folder")
        if path.is_dir() and formats.reader(path) is None:
            found = sorted(p for p in path.iterdir()
                           if formats.reader(p) is not None and not p.name.startswith("."))
            if not found:
                raise InputError(path, "folder contains no supported images "
                                       f"({FormatTable.suffixes(formats.readers)})")
            images.extend(found)
        else:
            images.append(path)
    return images


def writer_for(path: Path, *, formats: FormatTable | None = None) -> ImageWriter:
    """The writer for ``path``'s suffix (UtomError naming the supported ones)."""
    formats = formats_or_builtin(formats)
    writer = formats.writer(path)
    if writer is None:
        raise UtomError(f"{path}: cannot write this format (supported: "
                        f"{FormatTable.suffixes(formats.writers)})")
    return writer
