"""denoise: low-SNR fluorescence → high-SNR fluorescence (16-bit)."""

from utom_core.domain import Domain, PixelType
from utom_core.task import Task

TASK = Task(
    name="denoise",
    summary="low-SNR → high-SNR fluorescence",
    domain_a=Domain(name="low-SNR fluorescence", channels=1, dtype=PixelType.uint16,
                    saliency_smooth=1.5),
    domain_b=Domain(name="high-SNR fluorescence", channels=1, dtype=PixelType.uint16),
    evaluators=["psnr", "ssim", "content"],
)
