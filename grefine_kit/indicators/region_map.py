"""``region-map``: the item's own region mask as the quality map (the oracle arm).

A planted-defect set (``grefine make-defects``) knows where each defect is: its manifest's
``region`` column names a mask per image. ``region-map`` returns ``1 − region`` (1 = good, 0
inside the region) with score ``1 − region area``, so a recipe with it repairs exactly the
planted defect: a benchmark then separates how well defects are *found* (a detector's map
against this one, ``mask-iou``) from how well they are *repaired* (this arm's region figures).

The region reaches the indicator through the refiner's state (``RefineState.region``, from the
item's ``region`` file, read by :func:`read_region`). An item without one fails with one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
from PIL import Image

from grefine_kit.errors import ImageError
from grefine_kit.parts.base import PartBase
from grefine_kit.parts.roles import PERCEPTUAL
from grefine_kit.types import QualityMap

__all__ = ["RegionMap", "read_region"]


def read_region(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """A region mask file as bool ``(H, W)`` (True = inside), by the fidelity metrics' rule
    (:func:`grefine_kit.images.references.load_region`: black and white only, the image's
    ``size = (width, height)``). Any problem is an ``ImageError``: one line, that item's error,
    never the run's."""
    from grefine_kit.errors import UserError
    from grefine_kit.images.references import load_region

    try:
        return load_region(Path(path), size)
    except ImageError:
        raise
    except UserError as exc:
        raise ImageError(str(exc)) from None


@attrs.define(kw_only=True)
class RegionMap(PartBase):
    """The item's region as the map (no options; see the module docstring)."""

    needs_prompt: ClassVar[bool] = False
    #: the refiner hands ``score`` each item's region (``regions=``)
    needs_region: ClassVar[bool] = True
    quality_kind: ClassVar[str] = PERCEPTUAL
    name: ClassVar[str] = "region-map"

    def score(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str] | None = None,
        regions: Sequence[np.ndarray | None] | None = None,
    ) -> list[QualityMap]:
        """``regions``: one bool ``(H, W)`` array per image (None: the item has none: an error)."""
        if regions is None:
            regions = [None] * len(images)
        return [self._one(image, region) for image, region in zip(images, regions, strict=True)]

    def _one(self, image: Image.Image, region: Any) -> QualityMap:
        if region is None:
            raise ImageError(
                "region-map needs the item's region mask: give a manifest with a region column "
                "(grefine make-defects writes one)"
            )
        mask = np.asarray(region, bool)
        if mask.shape != (image.height, image.width):
            raise ImageError(
                f"region mask is {mask.shape[1]}x{mask.shape[0]}, the image is {image.width}x{image.height}"
            )
        return QualityMap(
            map=1.0 - mask.astype(np.float32),
            score=1.0 - float(mask.mean()),
            indicator=self.name,
            details={"region_area": float(mask.mean())},
        )
