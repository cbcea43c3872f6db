"""The bioimageio.spec and pydantic pair ``utom export --bioimageio`` can write a package with.

bioimageio.core 0.11 pins bioimageio.spec 0.5.12, whose file serialisers fail under pydantic
2.14 (a wrap serializer's handler no longer takes ``info``; spec 0.5.14 works). A plain
``pip install bioimageio.core`` brings the newest pydantic, so the pair is checked before any
work: the failure it causes reads as the package description being refused.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

FIXED_SPEC = (0, 5, 14)
"""The first bioimageio.spec whose serialisers work under pydantic 2.14."""
BREAKING_PYDANTIC = (2, 14)
"""The first pydantic under which older bioimageio.spec serialisers fail."""


def release(text: str) -> tuple[int, ...]:
    """The leading release numbers of a version string ("2.14.0b1" → (2, 14, 0))."""
    found = re.match(r"\d+(\.\d+)*", text)
    return tuple(int(part) for part in found.group(0).split(".")) if found else ()


def clash(spec: str, pydantic: str) -> bool:
    """Whether bioimageio.spec ``spec`` fails to save packages under pydantic ``pydantic``."""
    return release(spec) < FIXED_SPEC and release(pydantic) >= BREAKING_PYDANTIC


def installed_clash(install: str) -> str | None:
    """Why the installed pair cannot write a package, and the command that fixes it; None
    where it can (or bioimageio.spec is not installed: that has its own message)."""
    try:
        spec, pydantic = version("bioimageio.spec"), version("pydantic")
    except PackageNotFoundError:
        return None
    if not clash(spec, pydantic):
        return None
    below = ".".join(map(str, BREAKING_PYDANTIC))
    return (f"bioimageio.spec {spec} cannot save packages under pydantic {pydantic}: pip "
            f"install 'pydantic<{below}' (or {install}, which pins it)")
