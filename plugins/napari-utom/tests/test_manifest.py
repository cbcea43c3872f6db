"""The plugin as napari finds it: a valid npe2 manifest whose commands import, no torch."""

from __future__ import annotations

import os
import subprocess
import sys

import npe2


def test_manifest_is_valid_and_imports():
    manifest = npe2.PluginManifest.from_distribution("napari-utom")
    manifest.validate_imports()  # what `npe2 validate --imports` does: every python_name
    assert [r.command for r in manifest.contributions.readers] == ["napari-utom.get_reader"]
    assert [w.command for w in manifest.contributions.widgets] == ["napari-utom.widget"]
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-utom", "--imports"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "valid" in result.stdout, result.stdout + result.stderr


def test_opening_napari_with_the_plugin_does_not_import_torch():
    code = ("import sys, napari_utom.reader, napari_utom.widget, napari_utom.jobs; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
