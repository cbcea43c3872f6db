"""Built-in evaluators: PSNR, SSIM, content overlap and colour fidelity of predictions.

All arrays are (C, Y, X) or (C, Z, Y, X) on the [-1, 1] scale (see ``evaluation.base``).
PSNR and SSIM use ``data_range = 2`` on that scale, which gives exactly the values the same
images would score on [0, 1] with ``data_range = 1`` (both are invariant to an affine rescaling
of the pair together with its range). SSIM is torchmetrics' (Gaussian window 11 × 11,
σ = 1.5, k1 0.01, k2 0.03, mean of the full map), which differs slightly from
scikit-image's default (a uniform 7 × 7 window). ``*_input`` keys compare the untransformed
input (``Sample.baseline``) with the reference — the "before" figure — where both have the
same shape. Every evaluator accumulates its statistics region by region, so a whole slide is
evaluated in row strips; one region holding the whole image gives the whole-image value.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from utom_core.evaluation.base import Region, Sample, StreamingEvaluator, core_rows, planes
from utom_core.saliency import SaliencyOperator

DATA_RANGE = 2.0
"""Width of the [-1, 1] scale all evaluated arrays are on."""
SSIM_PAD = 5
"""Half-width of torchmetrics' default 11-pixel SSIM window: the halo of an SSIM strip."""
SSIM_STRIP = 1024
"""Rows per SSIM strip: bounds the memory of SSIM on large images."""


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


def psnr_of(sum_squared_error: float, count: int) -> float:
    """PSNR in dB from a sum of squared errors, with torchmetrics' own float32 arithmetic."""
    sse = torch.tensor(sum_squared_error, dtype=torch.float32)
    base_e = 2 * torch.log(torch.tensor(DATA_RANGE)) - torch.log(sse / torch.tensor(count))
    return float(base_e * (10 / torch.log(torch.tensor(10.0))))


class PsnrAccumulator:
    """Squared errors over all pixels of all channels (inf for identical images)."""

    def __init__(self) -> None:
        self.sse: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, region: Region) -> None:
        if region.sample.reference is None:  # nothing to compare (_comparable: no pairs)
            return
        reference = core_rows(region.sample.reference, region)
        for key, image in _comparable(region.sample):
            diff = _tensor(core_rows(image, region)) - _tensor(reference)
            self.sse[key] += float(torch.sum(torch.pow(diff, 2)))
            self.count[key] += diff.numel()

    def result(self) -> dict[str, float]:
        return {f"psnr{key}": psnr_of(self.sse[key], self.count[key]) for key in self.sse}


class PSNR(StreamingEvaluator):
    """Peak signal-to-noise ratio against the reference (needs one)."""

    name = "psnr"

    def accumulator(self) -> PsnrAccumulator:
        return PsnrAccumulator()


def ssim_sum(image: np.ndarray, reference: np.ndarray, core: slice = slice(None)) -> float:
    """Sum of the SSIM map of one (Y, X) plane over its rows ``core``, computed in row strips.

    Each strip carries a halo of ``SSIM_PAD`` real rows (where the plane has them), so the map
    equals torchmetrics' whole-image map while memory stays bounded by ``SSIM_STRIP`` rows.
    """
    height = image.shape[0]
    first, last, _ = core.indices(height)
    total = 0.0
    for start in range(first, last, SSIM_STRIP):
        stop = min(start + SSIM_STRIP, last)
        lo, hi = max(0, start - SSIM_PAD), min(height, stop + SSIM_PAD)
        _, full = structural_similarity_index_measure(
            _tensor(image[lo:hi])[None, None], _tensor(reference[lo:hi])[None, None],
            data_range=DATA_RANGE, return_full_image=True)
        total += float(full[0, 0, start - lo: stop - lo].sum(dtype=torch.float64))
    return total


class SsimAccumulator:
    """SSIM map sums per comparable image, channel and plane; the mean per plane, averaged
    over planes (volumes: XY slices), then over channels (RGB as in the paper)."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, int, int], list[float]] = defaultdict(lambda: [0.0, 0])

    def add(self, region: Region) -> None:
        reference = region.sample.reference
        if reference is None:  # nothing to compare (_comparable: no pairs)
            return
        for key, image in _comparable(region.sample):
            for c, (channel, ref_channel) in enumerate(zip(image, reference, strict=True)):
                pairs = zip(planes(channel), planes(ref_channel), strict=True)
                for z, (plane, ref_plane) in enumerate(pairs, start=region.first_plane):
                    entry = self.sums[key, c, z]
                    entry[0] += ssim_sum(plane, ref_plane, region.core)
                    entry[1] += plane[region.core].size

    def result(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for key in dict.fromkeys(k for k, _, _ in self.sums):
            channels = sorted({c for k, c, _ in self.sums if k == key})
            values = [float(np.mean([total / count for (k, c, _), (total, count)
                                     in self.sums.items() if k == key and c == channel]))
                      for channel in channels]
            metrics[f"ssim{key}"] = float(np.mean(values))
            if len(values) > 1:
                metrics.update({f"ssim{key}_c{i}": v for i, v in enumerate(values)})
        return metrics


class SSIM(StreamingEvaluator):
    """SSIM against the reference, averaged over channels (RGB as in the paper) and per channel."""

    name = "ssim"

    def accumulator(self) -> SsimAccumulator:
        return SsimAccumulator()


def content_mask(image: np.ndarray, operator: SaliencyOperator) -> np.ndarray:
    """Boolean content mask (Y, X) or (Z, Y, X): the saliency map above 0.5."""
    planes_ = _tensor(image).reshape(image.shape[0], -1, *image.shape[-2:]).transpose(0, 1)
    with torch.no_grad():
        saliency = operator(planes_)[:, 0]
    return saliency.numpy().reshape(image.shape[1:]) > 0.5


def core_mask(image: np.ndarray, operator: SaliencyOperator, region: Region) -> np.ndarray:
    """The content mask of the region's own rows (computed with the halo, which blurs need)."""
    return content_mask(image, operator)[..., region.core, :]


def overlap(mask: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(IoU, Dice) of two boolean masks; two empty masks agree perfectly (1, 1)."""
    return _overlap_of(float(np.logical_and(mask, other).sum()),
                       float(np.logical_or(mask, other).sum()))


def _overlap_of(intersection: float, union: float) -> tuple[float, float]:
    if union == 0:
        return 1.0, 1.0
    return intersection / union, 2.0 * intersection / (union + intersection)


class ContentAccumulator:
    """Intersections and unions of the content masks: input vs prediction, prediction vs
    reference."""

    def __init__(self) -> None:
        self.counts: dict[str, list[float]] = {}

    def _count(self, key: str, mask: np.ndarray, other: np.ndarray) -> None:
        entry = self.counts.setdefault(key, [0.0, 0.0])
        entry[0] += float(np.logical_and(mask, other).sum())
        entry[1] += float(np.logical_or(mask, other).sum())

    def add(self, region: Region) -> None:
        sample = region.sample
        if sample.output_saliency is None:
            return
        predicted = core_mask(sample.prediction, sample.output_saliency, region)
        if sample.input is not None and sample.input_saliency is not None:
            self._count("", core_mask(sample.input, sample.input_saliency, region), predicted)
        if sample.reference is not None:
            self._count("_ref", predicted,
                        core_mask(sample.reference, sample.output_saliency, region))

    def result(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for key, (intersection, union) in self.counts.items():
            metrics[f"content_iou{key}"], metrics[f"content_dice{key}"] = _overlap_of(
                intersection, union)
        return metrics


class ContentOverlap(StreamingEvaluator):
    """How well the prediction keeps the input's content: IoU and Dice of the content masks.

    The input's mask uses its own domain's operator, the prediction's (and the reference's)
    the target domain's — the paper's T_a(a) vs T_b(G(a)). ``*_ref`` keys compare the
    prediction's mask with the reference's.
    """

    name = "content"

    def accumulator(self) -> ContentAccumulator:
        return ContentAccumulator()


EVALUATORS = (PSNR(), SSIM(), ContentOverlap())
