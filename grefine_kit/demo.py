"""What ``grefine demo`` runs on, and how it reads the result back for its summary.

The bundled image (``grefine_kit/data/example.png``, made by tools/make_example_image.py) is a
real AI-generated image (Q-Refine's example, Apache-2.0: ``grefine_kit/data/NOTICE``) with one
planted defect, Gaussian noise over ``DEFECT_BOX``. The ``demo`` recipe's weight-free piqe-map
should mask that box and little else; ``mask_summary`` measures how well it did.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import attrs
import numpy as np

__all__ = ["DEFECT_BOX", "DEMO_PROMPT", "MaskSummary", "example_path", "mask_summary"]

DEMO_PROMPT = "a close-up portrait of a cheetah cub with amber eyes"
#: x0, y0, x1, y1 of the planted noise patch (tools/make_example_image.py)
DEFECT_BOX = (149, 111, 245, 207)


def example_path() -> Path:
    """The bundled example image."""
    return Path(str(resources.files("grefine_kit") / "data" / "example.png"))


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
            f"           covers {self.defect_covered:.0%} of the planted defect (noise, x {x0}..{x1}, "
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
