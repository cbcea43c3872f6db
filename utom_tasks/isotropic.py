"""isotropic: axially blurred volumes → isotropic volumes, learned from XZ/YZ vs XY planes."""

from utom_core.domain import Domain, PixelType
from utom_core.task import Slicing, Task

TASK = Task(
    name="isotropic",
    summary="axially blurred → isotropic 3D (XZ/YZ planes learn from XY planes)",
    domain_a=Domain(name="axial planes (XZ/YZ)", channels=1, axes="zyx", dtype=PixelType.uint16),
    domain_b=Domain(name="lateral planes (XY)", channels=1, axes="zyx", dtype=PixelType.uint16),
    slicing=Slicing.xz_yz,
    evaluators=["psnr", "ssim", "content"],
)
