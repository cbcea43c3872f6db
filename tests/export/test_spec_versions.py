"""Which bioimageio.spec and pydantic pairs ``utom export --bioimageio`` refuses up front."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from utom_core.export.spec_versions import clash, installed_clash, release


@pytest.mark.parametrize(("spec", "pydantic", "fails"), [
    ("0.5.12.0", "2.14.4", True),      # bioimageio.core 0.11's pin, the newest pydantic
    ("0.5.12.0", "2.14.0b1", True),
    ("0.5.12.0", "2.13.5", False),     # utom[bioimageio]'s pair
    ("0.5.14.0", "2.14.4", False),     # the spec that fixed its serialisers
    ("0.6.0", "3.0.0", False),
])
def test_the_failing_pair_is_known(spec, pydantic, fails):
    assert clash(spec, pydantic) is fails


def test_release_reads_the_leading_numbers():
    assert release("2.14.0b1") == (2, 14, 0) and release("0.5.12.0") == (0, 5, 12, 0)


def test_the_test_environment_can_export():
    """The test extras install utom[bioimageio]: a pair that saves packages."""
    assert release(version("bioimageio.spec")) and release(version("pydantic"))
    assert installed_clash("pip install 'utom[bioimageio]'") is None
