"""The report's line on a run's content thresholds, with the ``utom threshold`` command that
fits the same threshold on the same images (and so previews the mask training used)."""

from __future__ import annotations

import shlex
from pathlib import Path

from utom_core import trained
from utom_core.config import TrainConfig
from utom_core.records import RunRecord


def threshold_line(record: RunRecord, out: Path) -> str:
    """Both domains' thresholds, where each came from, and the command that repeats A's."""
    def one(side: str) -> str:
        value, share, source = (getattr(part, side) for part in (
            record.thresholds, record.content_fractions, record.threshold_sources))
        said = [f"marks {share:.1%} of its training pixels as content"] if share else []
        said += [f"from the {source}" if "estimate" in source else source] if source else []
        return f"{side.upper()} {value:.6g}" + (f" ({'; '.join(said)})" if said else "")

    doubt = f" Warning: {record.range_note}." if record.range_note else ""
    return (f"Content thresholds (raw units): {one('a')}, {one('b')}. `utom threshold "
            f"{_trained_on(record, out)} --task {record.task} --domain a"
            f"{_as_trained(record.config)}` fits the same threshold on the same images and "
            f"previews its mask.{doubt}")


def _as_trained(cfg: TrainConfig) -> str:
    """The options that make ``utom threshold`` fit A's threshold as this run did."""
    defaults = TrainConfig()
    options = " --other B_IMAGE" if cfg.shared_range else ""
    if cfg.threshold_method != defaults.threshold_method:
        options += f" --method {cfg.threshold_method}"
    if cfg.threshold_a != defaults.threshold_a:
        options += f" --value {cfg.threshold_a}"
    if cfg.sample_pixels != defaults.sample_pixels:
        options += f" --sample-pixels {cfg.sample_pixels}"
    return options


def _trained_on(record: RunRecord, out: Path) -> str:
    """The A images the run fitted its threshold on, where the user cannot know them: the
    pieces cut around a held-out region (the whole image's threshold differs a little)."""
    if record.held_out is None:
        return "IMAGE..."
    meta = trained.RunMeta.model_validate_json(
        (out / trained.RUN_SUBDIR / trained.META_FILE).read_text())
    return " ".join(shlex.quote(item if isinstance(item, str) else item.path)
                    for item in meta.inputs_a)
