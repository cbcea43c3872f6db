"""The format table io resolves suffixes with: handed in by the plugin registry, or built-ins.

io never imports the plugin registry. The registry, once built, hands io its table (built-in
and third-party formats) with ``use_formats``; until then, and in library code that never
builds a registry, io uses its own built-in formats, so reading a TIFF does not import every
installed plugin.
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


_handed: FormatTable | None = None
_builtin: FormatTable | None = None


def use_formats(table: FormatTable | None) -> None:
    """Resolve formats with ``table`` from now on (None: the built-ins again)."""
    global _handed
    _handed = table


def active_formats() -> FormatTable:
    """The table handed in by the registry, else the built-in formats (built once)."""
    global _builtin
    if _handed is not None:
        return _handed
    if _builtin is None:
        _builtin = builtin_formats()
    return _builtin
