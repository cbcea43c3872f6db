"""stain-he: label-free autofluorescence (1 channel, dark background) → H&E (RGB, bright)."""

from utom_core.domain import Domain, Polarity, PixelType
from utom_core.task import Task

TASK = Task(
    name="stain-he",
    summary="virtual H&E staining of label-free autofluorescence",
    domain_a=Domain(name="autofluorescence", channels=1, dtype=PixelType.uint16,
                    background=Polarity.dark),
    domain_b=Domain(name="H&E bright-field", channels=3, dtype=PixelType.uint8,
                    background=Polarity.bright, threshold=220.0),
    evaluators=["content", "color", "ssim"],
)
