"""The README's two commands are the contract with a new user and with CI: keep them true."""

from __future__ import annotations

import re
import tomllib

from helpers import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_opens_with_two_commands():
    commands = readme_commands()
    assert len(commands) >= 2
    assert commands[0].endswith("utom run stain-he")
    assert commands[1].endswith("pytest -q -n 2")
    assert "torch==2.13.0" in commands[0] and "torch==2.13.0" in commands[1]


def test_the_readme_test_command_runs_the_whole_suite_on_two_workers():
    """Every lane (no -m, -k or path), with pytest-xdist from the test extras, and markers that
    must be registered (a typo in `slow` fails instead of silently selecting nothing)."""
    pytest_call = readme_commands()[1].rsplit("&&", 1)[1].split()
    assert pytest_call == ["pytest", "-q", "-n", "2"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]["test"]
    assert any(req.startswith("pytest-xdist") for req in extras)
    ini = project["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in ini["addopts"].split()
    assert any(marker.startswith("slow:") for marker in ini["markers"])


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci
