"""The combiner protocol and what every combiner shares (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from grefine_kit.types import Mask, QualityMap

__all__ = ["Combiner", "check_size", "empty_mask"]


@runtime_checkable
class Combiner(Protocol):
    """Combine the indicators' QualityMaps into a Mask.

    ``maps`` holds every map the Refiner's indicators wrote, by role (``perceptual``,
    ``alignment``, a recipe's extra roles); a role the recipe lacks is absent. A combiner uses
    the roles it knows and ignores the others; the roles it cannot work without go in its
    ``requires`` (``PartBase.requires``), which the Refiner checks when it is built. ``size`` is
    the image's ``(width, height)``; the Mask comes back at ``(height, width)``.
    """

    def combine(self, maps: Mapping[str, QualityMap], size: tuple[int, int]) -> Mask: ...


def empty_mask(size: tuple[int, int]) -> Mask:
    """An all-zero Mask for an image of ``size = (width, height)``."""
    w, h = size
    zeros = np.zeros((h, w), np.float32)
    return Mask(binary=zeros, soft=zeros)


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as two positive ints ``(width, height)``; ValueError otherwise."""
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be a positive (width, height); got {size}")
    return w, h
