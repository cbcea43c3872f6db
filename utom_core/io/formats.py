"""The format table io resolves suffixes with: passed in by the caller, or io's built-ins.

io never imports the plugin registry. Commands pass the registry's table (built-in and
third-party formats) to every io call that opens a user's file; library code that passes none
gets io's own built-in formats, so reading a TIFF does not import every installed plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from utom_core.io.base import ImageReader, ImageWriter


@dataclass
class FormatTable:
    """Readers and writers, each matched to a path by the longest suffix that ends its name."""

    readers: list[ImageReader] = field(default_factory=list)
    writers: list[ImageWriter] = field(default_factory=list)

    def reader(self, path: Path) -> ImageReader | None:
        return _match(Path(path), self.readers)

    def writer(self, path: Path) -> ImageWriter | None:
        return _match(Path(path), self.writers)

    def suffix_length(self, path: Path) -> int | None:
        """Length of the longest reader suffix ending ``path``'s name (None: no reader's)."""
        return max((n for n, _ in _matches(Path(path), self.readers)), default=None)

    @staticmethod
    def suffixes(formats: list) -> str:
        return ", ".join(sorted({s for f in formats for s in f.suffixes}))


def _matches(path: Path, formats: list) -> list[tuple[int, object]]:
    name = path.name.lower()
    return [(len(s), f) for f in formats for s in f.suffixes if name.endswith(s.lower())]


def _match(path: Path, formats: list):
    """The format whose longest suffix ends ``path``'s name (so ".ome.tif" beats ".tif")."""
    matches = _matches(path, formats)
    return max(matches, key=lambda m: m[0])[1] if matches else None


def builtin_formats() -> FormatTable:
    """utom's own TIFF, OME-Zarr and PNG readers and writers."""
    from utom_core.io.omezarr import OmeZarrReader, OmeZarrWriter
    from utom_core.io.png import PngReader, PngWriter
    from utom_core.io.tiff import TiffReader, TiffWriter

    return FormatTable([TiffReader(), OmeZarrReader(), PngReader()],
                       [TiffWriter(), OmeZarrWriter(), PngWriter()])


_builtin: FormatTable | None = None


def formats_or_builtin(formats: FormatTable | None) -> FormatTable:
    """``formats``, or io's built-in formats where None (built once)."""
    global _builtin
    if formats is not None:
        return formats
    if _builtin is None:
        _builtin = builtin_formats()
    return _builtin
