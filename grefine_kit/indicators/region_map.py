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
from typing import Any, ClassVar

import attrs
import numpy as np
from PIL import Image

from grefine_kit.errors import ImageError
from grefine_kit.types import QualityMap

__all__ = ["RegionMap", "read_region"]


def read_region(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """A region mask file as bool ``(H, W)`` (True = inside). A mask is a greyscale (or RGB with
    equal channels) image whose pixels are all 0 or all-on (1 or 255); anything else, a file
    that is no image, or a size other than ``size = (width, height)`` is an ``ImageError`` (one
    line, that item's error)."""
    from grefine_kit.runs.items import display_path

    name = display_path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode, got = im.mode, im.size
            arr = np.asarray(im.convert("RGB") if mode not in ("1", "L", "I", "I;16") else im)
    except FileNotFoundError:
        raise ImageError(f"{name}: region mask not found") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"{name}: region mask is not a readable image ({exc})") from None
    if size is not None and got != tuple(size):
        raise ImageError(
            f"{name}: region mask is {got[0]}x{got[1]}, the image is {size[0]}x{size[1]} (they must match)"
        )
    if arr.ndim == 3:
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise ImageError(f"{name}: region mask is a colour image, not a mask (use black and white)")
        arr = arr[..., 0]
    values = np.unique(arr)
    on = values[values > 0]
    if len(on) > 1 or (len(on) == 1 and on[0] not in (1, 255)):
        raise ImageError(
            f"{name}: region mask is not a mask: it has {len(values)} grey levels (use 0 and 255 only)"
        )
    return np.asarray(arr > 0)


@attrs.define(kw_only=True)
class RegionMap:
    """The item's region as the map (no options; see the module docstring)."""

    needs_prompt: ClassVar[bool] = False
    #: the refiner hands ``score`` each item's region (``regions=``)
    needs_region: ClassVar[bool] = True
    quality_kind: ClassVar[str] = "perceptual"
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
