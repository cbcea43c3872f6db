"""Fixtures of the reliability tests: good inputs and small models shared by a session."""

from __future__ import annotations

import pytest
from reliability.checks import Data, make_data


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    """Good images and models; every test that uses them checks they are left unchanged."""
    return make_data(tmp_path_factory.mktemp("reliability-data"))
