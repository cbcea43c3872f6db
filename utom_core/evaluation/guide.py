"""What each metric means and what a good value looks like: the report's reading guide.

Metrics are listed in order of importance: whether content stayed in place (what UTOM
promises), then fidelity to the reference beside its floor (the untransformed input: doing
nothing), then colour, then the Dice twins of the IoUs. Typical values are the documented
demo runs (docs/results/demo-runs.md: ``demo`` budget, bundled data, seed 0) and the bench's
supervised ceiling (docs/results/bench.md), so a reader can tell a good run from a failed one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from utom_core.evaluation.periodic import PERIODIC_LIMIT
from utom_core.evaluation.resolution import LATERAL_TOLERANCE, lateral_kept


@dataclass(frozen=True)
class Guide:
    meaning: str
    good: str
    """What good looks like: the direction, and a floor, ceiling or typical range."""
    unit: str = ""
    better: str = "higher"
    """Which way is better: higher, lower, "one" (closest to 1) or "input" (the input's value,
    kept); only "higher" metrics compare with a reference, and only they can make a
    prediction "worse than its input"."""


GUIDE: dict[str, Guide] = {
    "content_iou": Guide(
        "overlap (IoU) of the input's content mask with the prediction's, what UTOM keeps",
        "1 = content exactly where the input had it; demo runs 0.74 (stain-he), 1.00 "
        "(isotropic, sr), 0.35 (denoise: a noisy input's mask is speckled). Far below your "
        "task's demo value (below 0.25 utom calls the run failed), content moved or vanished: "
        "compare input and prediction on the panels"),
    "content_iou_ref": Guide(
        "IoU of the prediction's content mask with the reference's",
        "1 = content where the reference has it; free of the input's noise, so often higher "
        "than content_iou (demo denoise 0.53)"),
    "psnr": Guide(
        "PSNR against the reference in dB, on the target's [-1, 1] scale",
        "above the floor, the model improves on its input; below it, the model makes the "
        "image worse. +1 dB is a visible gain", " dB"),
    "ssim": Guide(
        "structural similarity (SSIM) to the reference, 11-px Gaussian window, mean over "
        "channels",
        "1 = identical structure, 0 = unrelated; above the floor where there is one. Where "
        "the channel count changes (no floor) demo runs reach 0.46 (stain-he stand-in) and "
        "0.46 (label), and a supervised U-Net on aligned pairs 0.67 and 0.52 (bench budget): "
        "the ceiling"),
    "color_emd": Guide(
        "distance of the RGB histograms to the reference's (earth mover's, in 8-bit levels "
        "of the raw pixels)", "0 = the reference's colours, lower is better; demo stain-he "
        "19.5", " levels"),
    "color_emd_tissue": Guide("the same colour distance, in tissue (content) pixels",
                              "lower is better; demo stain-he 25.8", " levels"),
    "color_emd_background": Guide("the same colour distance, in background pixels",
                                  "lower is better; demo stain-he 14.5", " levels"),
    "delta_e_tissue": Guide(
        "CIELAB ΔE (CIE76) between the mean colours of the prediction's and the reference's "
        "tissue (each image's own content mask)",
        "0 = the same mean colour, lower is better; about 2.3 is just noticeable side by side, "
        "above ~10 the stain looks a different colour"),
    "delta_e_background": Guide("the same ΔE, in background pixels", "lower is better"),
    "lab_emd_tissue": Guide(
        "earth mover's distance of the tissue's L, a and b distributions to the reference's, "
        "averaged over the three (CIELAB units)",
        "0 = the same colours in the same proportions, lower is better; unlike ΔE it also sees "
        "a wrong spread of colours around a right mean"),
    "lab_emd_background": Guide("the same Lab distance, in background pixels",
                                "lower is better"),
    "resolution": Guide(
        "resolution of the prediction by decorrelation analysis (Descloux et al. 2019), in "
        "pixels, on the middle plane's central 1024² crop; no reference needed",
        "lower is finer; below the floor (the input's), detail was recovered. Noise limits it, "
        "so a denoised image can score finer without new detail: read it with the content IoU "
        "and the panels", " px", "lower"),
    "anisotropy": Guide(
        "axial over lateral resolution (decorrelation analysis of the XZ and YZ planes' "
        "spectra near the z and the x/y frequency axes, in pixels); no reference needed",
        "1 = as fine along z as across; closer to 1 than the floor (the input's), the "
        "volume became more isotropic, if the axial resolution got finer: a lateral "
        "resolution coarser than the input's brings the ratio closer to 1 too", "", "one"),
    "axial_resolution": Guide(
        "resolution along z (the anisotropy's numerator), in pixels", "lower is finer; below "
        "the floor (the input's), axial detail was recovered", " px", "lower"),
    "lateral_resolution": Guide(
        "resolution across z, along x or y (the anisotropy's denominator), in pixels",
        f"within {LATERAL_TOLERANCE:.0%} of the floor (the input's): lateral detail kept; "
        "coarser, lateral detail was lost (and the anisotropy owes its gain to it)", " px",
        "input"),
    "target_colour": Guide(
        "CIELAB distance of the prediction's colours to the target domain's training images "
        "(earth mover's, tissue and background each by its own mask, averaged); no reference "
        "needed", "lower is closer to the colours trained towards; not 0 for a perfect stain "
        "(tissue differs between images): it ranks one run's models", "", "lower"),
    "periodic_artefact": Guide(
        "the strongest spectral peak of the prediction at the 2- and 4-px periods (along either "
        "axis or a diagonal) over the spectrum around it, on a central 1024² crop of the middle "
        "plane: a grid printed by the generator",
        f"natural images and real H&E score about 3, the authors' UTOM output 3–6; above "
        f"{PERIODIC_LIMIT:g} the output carries a visible grid"),
    "content_dice": Guide("Dice of the input's and the prediction's content masks",
                          "2·IoU / (1 + IoU): it ranks runs as content_iou does"),
    "content_dice_ref": Guide("Dice of the prediction's and the reference's content masks",
                              "it ranks runs as content_iou_ref does"),
}
FLOOR_SUFFIX = "_input"
"""``psnr_input`` is the floor of ``psnr``: the input itself scored against the reference."""
CHANNEL = re.compile(r"^(?P<base>[a-z_]+?)(?P<floor>_input)?_c(?P<channel>\d+)$")


def guide(name: str) -> Guide:
    """The guide of a metric; per-channel keys (ssim_c0) are described by pattern, metrics
    of third-party evaluators without a guide get an empty one."""
    found = CHANNEL.match(name)
    if found and found["base"] in GUIDE:
        return Guide(f"{found['base'].upper()} of channel {found['channel']}",
                     GUIDE[found["base"]].good.split(".")[0], GUIDE[found["base"]].unit)
    return GUIDE.get(name, Guide("", ""))


def floor_of(name: str) -> str:
    """The key of a metric's floor: ``psnr`` → ``psnr_input``, ``ssim_c0`` → ``ssim_input_c0``."""
    found = CHANNEL.match(name)
    if found:
        return f"{found['base']}{FLOOR_SUFFIX}_c{found['channel']}"
    return name + FLOOR_SUFFIX


def is_floor(name: str) -> bool:
    found = CHANNEL.match(name)
    return bool(found["floor"]) if found else name.endswith(FLOOR_SUFFIX)


def ordered(metrics: dict[str, float]) -> list[str]:
    """The metrics to show, most important first; floors go beside their metric, not in rows
    of their own."""
    def rank(name: str) -> tuple[int, int, str]:
        found = CHANNEL.match(name)
        base = found["base"] if found else name
        order = list(GUIDE)
        return (order.index(base) if base in order else len(order), 1 if found else 0, name)

    return sorted((name for name in metrics if not is_floor(name)), key=rank)


def verdict(name: str, value: float, floor: float | None) -> str:
    """The value against its floor, in words, where there is one."""
    if floor is None:
        return ""
    about = guide(name)
    if about.better == "input":
        if not lateral_kept(value, floor):
            return "**coarser than the input's: detail lost**"
        return (f"kept (within {LATERAL_TOLERANCE:.0%} of the input's)"
                if value >= floor * (1 - LATERAL_TOLERANCE) else "finer than the input's")
    if about.better != "higher":
        ahead = from_ideal(about.better, value) <= from_ideal(about.better, floor)
        word = "finer" if about.better == "lower" else "closer to 1"
        return (f"{word} than the input" if ahead else f"**not {word} than the input**")
    gain = value - floor
    if gain >= 0:
        return f"{gain:+.3g}{about.unit} over the input: better than doing nothing"
    return f"**{-gain:.3g}{about.unit} below the input: worse than doing nothing**"


def from_ideal(better: str, value: float) -> float:
    """How far from ideal a "lower" or "one" metric is (the report's verdict, and the model
    choice of ``training.model_choice``)."""
    return value if better == "lower" else abs(math.log(value))


def below_floor(metrics: dict[str, float]) -> list[str]:
    """One sentence per metric that scores below its floor: the prediction is further from
    the reference than the untransformed input (said by ``utom run`` and the report). The gap
    is given on its own: a model that stayed at its input is a hair below it, at the same
    rounded score, and that reads differently from a drop of decibels."""
    return [f"{name} {metrics[name]:.3g}{guide(name).unit} is "
            f"{metrics[floor_of(name)] - metrics[name]:.2g}{guide(name).unit} below the input's "
            f"{metrics[floor_of(name)]:.3g}{guide(name).unit}"
            for name in ordered(metrics) if guide(name).better == "higher"
            and floor_of(name) in metrics and metrics[name] < metrics[floor_of(name)]]


def worse_warning(metrics: dict[str, float]) -> str:
    """The warning of a prediction that scores below its input, or "" where none does."""
    worse = below_floor(metrics)
    if not worse:
        return ""
    return ("warning: the prediction is worse than the input it was made from ("
            + "; ".join(worse) + "): doing nothing scores better on this reference. Look at "
            "the panels, train longer (the validation curve shows whether it helps), or check "
            "the thresholds")


LOW_CONTENT_IOU = 0.25
"""Content IoU below which a run is called failed: under every documented demo run (the
lowest, denoise, keeps 0.35 of a speckled noisy mask) and above what an inverted translation
keeps (a CycleGAN run on the real colorectal core that turned background into content: 0.106)."""


def low_content_warning(metrics: dict[str, float]) -> str:
    """The warning of a prediction that kept too little of its input's content, or ""."""
    iou = metrics.get("content_iou")
    if iou is None or iou >= LOW_CONTENT_IOU:
        return ""
    return (f"warning: the run failed to keep the content in place (content_iou {iou:.3g}, "
            f"below {LOW_CONTENT_IOU}: content moved, vanished or was inverted). Look at the "
            "panels, check the thresholds (`utom threshold`), or train longer or with "
            "another seed")


def run_warnings(metrics: dict[str, float]) -> list[str]:
    """What ``utom run`` says first and the report puts on top, most serious first."""
    return [w for w in (low_content_warning(metrics), worse_warning(metrics)) if w]


def periodic_note(metrics: dict[str, float]) -> str:
    """The report's line on a prediction that carries a periodic grid, or "" where none does."""
    score = metrics.get("periodic_artefact")
    if score is None or score <= PERIODIC_LIMIT:
        return ""
    return (f"The output carries a periodic grid: periodic_artefact {score:.3g} is above "
            f"{PERIODIC_LIMIT:g} (a 2- or 4-px pattern the generator prints over the image; "
            "docs/run.md#reading-the-metrics).")
