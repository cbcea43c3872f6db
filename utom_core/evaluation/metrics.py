"""Built-in evaluators: PSNR, SSIM, content overlap and colour fidelity of predictions.

All arrays are (C, Y, X) or (C, Z, Y, X) on the [-1, 1] scale (see ``evaluate.Sample``).
PSNR and SSIM use ``data_range = 2`` on that scale, which gives exactly the values the same
images would score on [0, 1] with ``data_range = 1`` (both are invariant to an affine rescaling
of the pair together with its range). ``*_input`` keys compare the untransformed input
(``Sample.baseline``) with the reference — the "before" figure — where both have the same
shape.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from utom_core.evaluation.base import Evaluator, Sample
from utom_core.saliency import SaliencyOperator

DATA_RANGE = 2.0
"""Width of the [-1, 1] scale all evaluated arrays are on."""
SSIM_PAD = 5
"""Half-width of torchmetrics' default 11-pixel SSIM window: the halo of an SSIM strip."""
SSIM_STRIP = 1024
"""Rows per SSIM strip: bounds the memory of SSIM on large images."""
COLOR_BINS = 256
"""Histogram bins on [-1, 1] for colour distances: one bin per 8-bit level."""


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _comparable(sample: Sample) -> list[tuple[str, np.ndarray]]:
    """(key suffix, image) pairs to compare with the reference: the prediction, and the input."""
    if sample.reference is None:
        return []
    pairs = [("", sample.prediction)]
    if sample.baseline is not None and sample.baseline.shape == sample.reference.shape:
        pairs.append(("_input", sample.baseline))
    for _, image in pairs:
        if image.shape != sample.reference.shape:
            raise ValueError(f"shape mismatch: {image.shape} vs reference {sample.reference.shape}")
    return pairs


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB over all pixels of all channels (inf for identical images)."""
    value = peak_signal_noise_ratio(_tensor(image), _tensor(reference), data_range=DATA_RANGE)
    return float(value)


def ssim_plane(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM of one (Y, X) plane (Gaussian window σ 1.5, 11 px), computed in row strips.

    Each strip carries a halo of ``SSIM_PAD`` real rows, so the result equals torchmetrics'
    whole-image value while memory stays bounded by ``SSIM_STRIP`` rows.
    """
    height = image.shape[0]
    total = 0.0
    for start in range(0, height, SSIM_STRIP):
        stop = min(start + SSIM_STRIP, height)
        lo, hi = max(0, start - SSIM_PAD), min(height, stop + SSIM_PAD)
        _, full = structural_similarity_index_measure(
            _tensor(image[lo:hi])[None, None],
            _tensor(reference[lo:hi])[None, None],
            data_range=DATA_RANGE,
            return_full_image=True,
        )
        total += float(full[0, 0, start - lo : stop - lo].sum(dtype=torch.float64))
    return total / image.size


def ssim_channels(image: np.ndarray, reference: np.ndarray) -> list[float]:
    """Per-channel SSIM of (C, Y, X) or (C, Z, Y, X) arrays; volumes: mean over XY slices."""
    values = []
    for channel, ref_channel in zip(image, reference, strict=True):
        planes = channel.reshape(-1, *channel.shape[-2:])
        ref_planes = ref_channel.reshape(-1, *ref_channel.shape[-2:])
        values.append(
            float(np.mean([ssim_plane(p, r) for p, r in zip(planes, ref_planes, strict=True)]))
        )
    return values


class PSNR(Evaluator):
    """Peak signal-to-noise ratio against the reference (needs one)."""

    name = "psnr"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        return {f"psnr{key}": psnr(image, sample.reference) for key, image in _comparable(sample)}


class SSIM(Evaluator):
    """SSIM against the reference, averaged over channels (RGB as in the paper) and per channel."""

    name = "ssim"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for key, image in _comparable(sample):
            values = ssim_channels(image, sample.reference)
            metrics[f"ssim{key}"] = float(np.mean(values))
            if len(values) > 1:
                metrics.update({f"ssim{key}_c{i}": v for i, v in enumerate(values)})
        return metrics


def content_mask(image: np.ndarray, operator: SaliencyOperator) -> np.ndarray:
    """Boolean content mask (Y, X) or (Z, Y, X): the saliency map above 0.5."""
    planes = _tensor(image).reshape(image.shape[0], -1, *image.shape[-2:]).transpose(0, 1)
    with torch.no_grad():
        saliency = operator(planes)[:, 0]
    return saliency.numpy().reshape(image.shape[1:]) > 0.5


def overlap(mask: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(IoU, Dice) of two boolean masks; two empty masks agree perfectly (1, 1)."""
    intersection = float(np.logical_and(mask, other).sum())
    union = float(np.logical_or(mask, other).sum())
    if union == 0:
        return 1.0, 1.0
    return intersection / union, 2.0 * intersection / (union + intersection)


class ContentOverlap(Evaluator):
    """How well the prediction keeps the input's content: IoU and Dice of the content masks.

    The input's mask uses its own domain's operator, the prediction's (and the reference's)
    the target domain's — the paper's T_a(a) vs T_b(G(a)). ``*_ref`` keys compare the
    prediction's mask with the reference's.
    """

    name = "content"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        if sample.output_saliency is None:
            return {}
        predicted = content_mask(sample.prediction, sample.output_saliency)
        metrics: dict[str, float] = {}
        if sample.input is not None and sample.input_saliency is not None:
            source = content_mask(sample.input, sample.input_saliency)
            metrics["content_iou"], metrics["content_dice"] = overlap(source, predicted)
        if sample.reference is not None:
            reference = content_mask(sample.reference, sample.output_saliency)
            metrics["content_iou_ref"], metrics["content_dice_ref"] = overlap(predicted, reference)
        return metrics


def wasserstein(values: np.ndarray, other: np.ndarray) -> float:
    """1D earth mover's distance of two samples on [-1, 1], in 8-bit levels (256-bin CDFs)."""
    edges = np.linspace(-1.0, 1.0, COLOR_BINS + 1)
    cdf = np.cumsum(np.histogram(values, edges)[0]) / values.size
    other_cdf = np.cumsum(np.histogram(other, edges)[0]) / other.size
    return float(np.abs(cdf - other_cdf).sum() * (2.0 / COLOR_BINS) * 127.5)


class ColorFidelity(Evaluator):
    """Colour distance of an RGB prediction to the reference, in tissue and in background.

    Per channel the earth mover's distance between the two images' value histograms (in 8-bit
    levels), averaged over R, G, B. Tissue and background are each image's own content mask
    (the target domain's operator), so colour is judged even where structures are not aligned.
    """

    name = "color"

    def evaluate(self, sample: Sample) -> dict[str, float]:
        pred, ref = sample.prediction, sample.reference
        if ref is None or pred.shape[0] != 3 or ref.shape[0] != 3:
            return {}
        regions = {"": (np.ones(pred.shape[1:], bool), np.ones(ref.shape[1:], bool))}
        if sample.output_saliency is not None:
            pred_tissue = content_mask(pred, sample.output_saliency)
            ref_tissue = content_mask(ref, sample.output_saliency)
            regions["_tissue"] = (pred_tissue, ref_tissue)
            regions["_background"] = (~pred_tissue, ~ref_tissue)
        metrics = {}
        for key, (pred_mask, ref_mask) in regions.items():
            if pred_mask.any() and ref_mask.any():
                pairs = zip(pred, ref, strict=True)
                distances = [wasserstein(p[pred_mask], r[ref_mask]) for p, r in pairs]
                metrics[f"color_emd{key}"] = float(np.mean(distances))
        return metrics


EVALUATORS = (PSNR(), SSIM(), ContentOverlap(), ColorFidelity())
