"""Soft deficiency without binarisation (registry ``soft``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
import numpy as np

from grefine_kit.checks import number
from grefine_kit.combiners.base import check_size, empty_mask
from grefine_kit.combiners.g_refine import GRefineCombiner
from grefine_kit.images.ops import feather
from grefine_kit.parts.base import PartBase
from grefine_kit.types import Mask, QualityMap

__all__ = ["SoftCombiner"]


@attrs.define(kw_only=True)
class SoftCombiner(PartBase):
    """Soft deficiency, no binarisation: the blend weight follows ``D`` itself.

    ``soft = clip((D − low) / (high − low), 0, 1)``, smoothed over ``feather``; ``binary`` is
    its support (everything that may change). A pixel at ``D <= low`` is kept exactly, one at
    ``D >= high`` is fully repainted, in between it is mixed. ``min_area`` as in ``g-refine``
    (measured on ``D > low``). ``D`` is ``g-refine``'s: the perceptual and alignment maps.
    """

    low: float = attrs.field(default=0.25, validator=number(0.0, 2.0))
    high: float = attrs.field(default=0.75, validator=number(0.0, 2.0))
    feather: float = attrs.field(default=0.02, validator=number(0.0, 0.5))
    min_area: float = attrs.field(default=0.002, validator=number(0.0, 1.0))

    requires: ClassVar[tuple[str, ...]] = ()

    def __attrs_post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")

    def combine(self, maps: Mapping[str, QualityMap], size: tuple[int, int]) -> Mask:
        size = check_size(size)
        d = GRefineCombiner().deficiency(maps, size)
        weight = np.clip((d - self.low) / (self.high - self.low), 0.0, 1.0).astype(np.float32)
        if (weight > 0).mean() < self.min_area or not weight.any():
            return empty_mask(size)
        soft = feather(weight, round(self.feather * min(size)))
        return Mask(binary=(soft > 0).astype(np.float32), soft=soft)
