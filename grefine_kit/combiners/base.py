"""The combiner protocol and what every combiner shares (see the package docstring)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from grefine_kit.types import Mask, QualityMap

__all__ = ["Combiner", "check_size", "empty_mask"]


@runtime_checkable
class Combiner(Protocol):
    """Combine a perceptual and an alignment QualityMap (either may be None) into a Mask.

    ``size`` is the image's ``(width, height)``; the Mask comes back at ``(height, width)``.
    """

    def combine(
        self, perceptual: QualityMap | None, alignment: QualityMap | None, size: tuple[int, int]
    ) -> Mask: ...


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
