"""label: transmitted-light (phase) image → three fluorescence channels."""

from utom_core.domain import Domain, PixelType
from utom_core.task import Task

TASK = Task(
    name="label",
    summary="phase contrast → 3-channel fluorescence (virtual labelling)",
    domain_a=Domain(name="phase contrast", channels=1, dtype=PixelType.uint16),
    domain_b=Domain(name="fluorescence (3 labels)", channels=3, dtype=PixelType.uint16,
                    per_channel=True),
    evaluators=["psnr", "ssim", "content"],
)
