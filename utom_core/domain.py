"""Domains: what one side of an unpaired transformation looks like, and how to normalise it."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from utom_core.saliency import DEFAULT_SLOPE, SigmoidSaliency


class Polarity(StrEnum):
    """Which intensity is background: dark (fluorescence) or bright (bright-field)."""

    dark = "dark"
    bright = "bright"


class PixelType(StrEnum):
    """Storage type of a domain's images; predictions are written back in this type."""

    uint8 = "uint8"
    uint16 = "uint16"
    float32 = "float32"


DTYPE_RANGE = {PixelType.uint8: (0.0, 255.0), PixelType.uint16: (0.0, 65535.0)}


class Domain(BaseModel):
    """One image domain of a task: channels, axes, pixel type, background and content threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Human-readable name, e.g. "autofluorescence"."""
    channels: int = Field(ge=1, le=64)
    """Number of channels the generator reads or writes for this domain."""
    axes: str = "yx"
    """Spatial axes of one image: "yx" for 2D, "zyx" for volumes (sliced for 2D networks)."""
    dtype: PixelType = PixelType.uint16
    """Pixel type outputs in this domain are written in."""
    background: Polarity = Polarity.dark
    """Background polarity; bright backgrounds use the inverted saliency operator."""
    threshold: float | None = None
    """Content threshold in raw units of ``dtype`` (None: estimated from the data)."""
    percentiles: tuple[float, float] = (0.5, 99.8)
    """Robust intensity range mapped to [-1, 1]; a few saturated pixels must not squash it."""
    per_channel: bool = False
    """Normalise channels separately (independent fluorophores) or jointly (RGB colour)."""
    saliency_slope: float = DEFAULT_SLOPE
    """Slope of the saliency sigmoid on the [-1, 1] scale (paper: 100)."""
    saliency_smooth: float = 0.0
    """Gaussian sigma in pixels applied to the channel mean before thresholding (noisy domains)."""

    @field_validator("axes")
    @classmethod
    def _known_axes(cls, axes: str) -> str:
        if axes not in ("yx", "zyx"):
            raise ValueError(f"axes must be 'yx' or 'zyx', not {axes!r}")
        return axes

    @model_validator(mode="after")
    def _ordered_percentiles(self) -> Domain:
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
        return self

    def saliency(self, normalisation: Normalisation, threshold: float | None = None):
        """The domain's SaliencyOperator for a fitted normalisation (threshold in raw units)."""
        raw = self.threshold if threshold is None else threshold
        if raw is None:
            raise ValueError(f"domain {self.name!r} has no threshold: give one or estimate it")
        return SigmoidSaliency(
            threshold=normalisation.threshold_to_unit(raw),
            slope=self.saliency_slope,
            inverted=self.background is Polarity.bright,
            smooth_sigma=self.saliency_smooth,
            weights=normalisation.channel_weights(),
        )

    def content_map(self, raw: np.ndarray, normalisation: Normalisation,
                    threshold: float | None = None) -> np.ndarray:
        """T of a raw (C, H, W) image as (H, W) floats in [0, 1]: the map L_sc constrains,
        and the one ``utom threshold --preview`` shows, so the two cannot disagree."""
        unit = torch.from_numpy(normalisation.apply(raw))[None]
        with torch.no_grad():
            return self.saliency(normalisation, threshold)(unit)[0, 0].numpy()


class Normalisation(BaseModel):
    """A fitted affine map of raw intensities to [-1, 1] and back, stored with every run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: tuple[float, ...]
    """Raw value mapped to -1, per channel."""
    high: tuple[float, ...]
    """Raw value mapped to +1, per channel."""
    dtype: PixelType
    """Pixel type that ``invert`` returns."""

    @model_validator(mode="after")
    def _valid_range(self) -> Normalisation:
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError("low and high need one value per channel")
        # compared as float32, the precision ``apply`` computes in (else x / 0: NaN pixels)
        if any(np.float32(h) <= np.float32(lo) for lo, h in zip(self.low, self.high, strict=True)):
            raise ValueError(f"empty intensity range: low {self.low}, high {self.high}")
        return self

    @property
    def channels(self) -> int:
        return len(self.low)

    def _params(self, like: np.ndarray | torch.Tensor, channel_axis: int):
        shape = [1] * like.ndim
        shape[channel_axis] = self.channels
        low: torch.Tensor | np.ndarray
        high: torch.Tensor | np.ndarray
        if isinstance(like, torch.Tensor):
            low = torch.tensor(self.low, dtype=like.dtype, device=like.device).view(shape)
            high = torch.tensor(self.high, dtype=like.dtype, device=like.device).view(shape)
        else:
            low = np.asarray(self.low, dtype=np.float32).reshape(shape)
            high = np.asarray(self.high, dtype=np.float32).reshape(shape)
        return low, high

    def apply(self, raw: np.ndarray, channel_axis: int = 0) -> np.ndarray:
        """Raw pixels (any dtype) → float32 in [-1, 1] (clipped)."""
        low, high = self._params(raw, channel_axis)
        with np.errstate(over="ignore"):  # values far outside float32's range clip to ±1
            unit = 2.0 * (raw.astype(np.float32) - low) / (high - low) - 1.0
        return np.clip(unit, -1.0, 1.0)

    def unrounded(self, unit: np.ndarray, channel_axis: int = 0) -> np.ndarray:
        """[-1, 1] floats → raw values as float32, before ``invert`` rounds them to ``dtype``
        (what a zoo package gives)."""
        low, high = self._params(unit, channel_axis)
        return ((np.asarray(unit, dtype=np.float32) + 1.0) / 2.0 * (high - low) + low
                ).astype(np.float32)

    def invert(self, unit: np.ndarray, channel_axis: int = 0) -> np.ndarray:
        """[-1, 1] floats → raw pixels in ``dtype`` (rounded and clipped for integer types)."""
        raw = self.unrounded(unit, channel_axis)
        if self.dtype in DTYPE_RANGE:
            lo, hi = DTYPE_RANGE[self.dtype]
            return np.clip(np.rint(raw), lo, hi).astype(self.dtype.value)
        return raw

    def channel_weights(self) -> tuple[float, ...] | None:
        """Weights of the normalised channel mean that make it an affine map of the raw
        channel mean: each channel's share of the summed ranges (None: equal ranges, the
        plain mean). A raw threshold then means the same with per-channel ranges."""
        ranges = [h - lo for lo, h in zip(self.low, self.high, strict=True)]
        if len(set(ranges)) == 1:
            return None
        return tuple(r / sum(ranges) for r in ranges)

    def threshold_to_unit(self, raw_threshold: float) -> float:
        """A raw threshold on the channel mean, expressed on the [-1, 1] scale of the
        ``channel_weights`` mean of the normalised channels."""
        low = float(np.mean(self.low))
        high = float(np.mean(self.high))
        return 2.0 * (raw_threshold - low) / (high - low) - 1.0


def fit_normalisation(samples: np.ndarray, domain: Domain) -> Normalisation:
    """Fit a domain's percentile range on a (C, N) sample of raw pixels from all its images."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[0] != domain.channels:
        raise ValueError(f"expected a ({domain.channels}, N) sample, got {samples.shape}")
    if not np.isfinite(samples).all():
        raise ValueError("image contains NaN or infinite values")
    p_low, p_high = domain.percentiles
    if domain.per_channel:
        low = np.percentile(samples, p_low, axis=1)
        high = np.percentile(samples, p_high, axis=1)
    else:
        low = np.full(domain.channels, np.percentile(samples, p_low))
        high = np.full(domain.channels, np.percentile(samples, p_high))
    if np.any(high.astype(np.float32) <= low.astype(np.float32)):  # float32: see Normalisation
        raise ValueError(
            f"all sampled pixels lie in one value ({float(low.min()):g}): "
            "the image has no contrast to learn from"
        )
    return Normalisation(
        low=tuple(float(v) for v in low), high=tuple(float(v) for v in high), dtype=domain.dtype
    )
