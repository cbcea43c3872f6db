"""sr: wide-field fluorescence → super-resolution fluorescence."""

from utom_core.domain import Domain, PixelType
from utom_core.task import Task

TASK = Task(
    name="sr",
    summary="wide-field → super-resolution fluorescence",
    domain_a=Domain(name="wide-field fluorescence", channels=1, dtype=PixelType.uint16),
    domain_b=Domain(name="super-resolved fluorescence", channels=1, dtype=PixelType.uint16),
    evaluators=["psnr", "ssim", "content"],
)
