"""What ``grefine demo`` runs on, and how it reads the result back for its summary.

The bundled image (``grefine_kit/data/example.png``, made by tools/make_example_image.py) is a
real AI-generated image (Q-Refine's example, Apache-2.0: ``grefine_kit/data/NOTICE``) with one
planted defect, Gaussian noise over ``DEFECT_BOX``; ``example-clean.png`` is the same image
without it. The demo's ``restore`` recipe should mask that box and little else
(``mask_summary``), repair it and leave the rest alone (``repair_summary``: PSNR inside the box
and SSIM outside it, against the clean original, by ``grefine_kit.metrics.fidelity``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import attrs
import numpy as np
from PIL import Image

__all__ = [
    "DEFECT_BOX",
    "DEMO_PROMPT",
    "FIDELITY_SUFFIX",
    "MaskSummary",
    "RepairSummary",
    "clean_path",
    "defect_region",
    "example_path",
    "mask_summary",
    "repair_summary",
]

DEMO_PROMPT = "a close-up portrait of a cheetah cub with amber eyes"
#: x0, y0, x1, y1 of the planted noise patch (tools/make_example_image.py)
DEFECT_BOX = (149, 111, 245, 207)


#: the demo writes its repair figures next to the output as ``<stem>.fidelity.json``; the HTML
#: report shows them
FIDELITY_SUFFIX = ".fidelity.json"


def example_path() -> Path:
    """The bundled example image."""
    return Path(str(resources.files("grefine_kit") / "data" / "example.png"))


def clean_path() -> Path:
    """The bundled example's clean original (the same image without the planted defect)."""
    return Path(str(resources.files("grefine_kit") / "data" / "example-clean.png"))


def defect_region(size: tuple[int, int]) -> np.ndarray:
    """Bool ``(H, W)`` of the planted box for an image of ``size = (width, height)``."""
    w, h = size
    region = np.zeros((h, w), bool)
    x0, y0, x1, y1 = DEFECT_BOX
    region[y0:y1, x0:x1] = True
    return region


@attrs.frozen
class MaskSummary:
    """``area``: fraction of the image masked; ``defect_covered``: fraction of the planted box
    inside the mask; ``outside``: fraction of the rest of the image masked (all in [0, 1])."""

    area: float
    defect_covered: float
    outside: float

    def lines(self) -> list[str]:
        x0, y0, x1, y1 = DEFECT_BOX
        return [
            f"  mask:    {self.area:.1%} of the image",
            f"           covers {self.defect_covered:.1%} of the planted defect (noise, x {x0}..{x1}, "
            f"y {y0}..{y1}) and {self.outside:.1%} of the rest",
        ]


def mask_summary(binary: np.ndarray) -> MaskSummary:
    """Measure a ``(H, W)`` 0/1 mask of the example image (1 = repaint) against ``DEFECT_BOX``."""
    mask = np.asarray(binary) > 0.5
    truth = np.zeros(mask.shape, bool)
    x0, y0, x1, y1 = DEFECT_BOX
    truth[y0:y1, x0:x1] = True
    return MaskSummary(
        area=float(mask.mean()),
        defect_covered=float(mask[truth].mean()),
        outside=float(mask[~truth].mean()),
    )


@attrs.frozen
class RepairSummary:
    """The demo's repair against the clean original: PSNR (dB) inside the planted box and SSIM
    (canonical, :mod:`grefine_kit.metrics.fidelity`) outside it, of the input and of the output."""

    psnr_region_input: float
    psnr_region_output: float
    ssim_rest_input: float
    ssim_rest_output: float

    def lines(self) -> list[str]:
        gain = self.psnr_region_output - self.psnr_region_input
        return [
            f"  repair:  psnr-region {self.psnr_region_input:.2f} -> {self.psnr_region_output:.2f} dB "
            f"({gain:+.2f} dB inside the planted patch, against the clean original)",
            f"           ssim-rest   {self.ssim_rest_input:.4f} -> {self.ssim_rest_output:.4f} "
            "(outside the patch: 1 = left exactly as it was)",
        ]

    def to_json(self) -> dict[str, float]:
        return {
            "psnr-region": round(self.psnr_region_output, 4),
            "ssim-rest": round(self.ssim_rest_output, 6),
            "psnr-region (input)": round(self.psnr_region_input, 4),
            "ssim-rest (input)": round(self.ssim_rest_input, 6),
        }


def repair_summary(output: Image.Image, given: Image.Image, clean: Image.Image) -> RepairSummary:
    """Measure ``output`` (and the ``given`` input) against ``clean`` over ``DEFECT_BOX``."""
    from grefine_kit.metrics.fidelity import psnr, ssim

    region = defect_region(clean.size)
    return RepairSummary(
        psnr_region_input=psnr(given, clean, region),
        psnr_region_output=psnr(output, clean, region),
        ssim_rest_input=ssim(given, clean, ~region),
        ssim_rest_output=ssim(output, clean, ~region),
    )
