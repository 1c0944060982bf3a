"""The paper's mask ``Bi(1 - P + A)`` (registry ``g-refine``) and its one-map ablations
(``perceptual``, ``alignment``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
import numpy as np

from grefine_kit.checks import number
from grefine_kit.combiners.base import check_size, empty_mask
from grefine_kit.images.ops import at_size, dilate, feather
from grefine_kit.parts.base import PartBase
from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL
from grefine_kit.types import Mask, QualityMap

__all__ = ["AlignmentCombiner", "GRefineCombiner", "PerceptualCombiner"]


@attrs.define(kw_only=True)
class GRefineCombiner(PartBase):
    """The paper's mask: ``D = (1 − P) + (1 − A)``, binarised at ``threshold``, grown, feathered.

    Options:
        threshold: τ; a pixel is deficient when ``D > τ``. Default 0.5: with the alignment term
            0 this is "the perceptual map says bad is more likely than good" (``P < 0.5``, the
            decision boundary of PQ-Map's good/bad softmax); any alignment-defect region of
            weight > 0.5 is masked on its own.
        grow: dilation radius as a fraction of the image's shorter side (0.02 = 20 px at 1024):
            quality maps come from 16-px patches, so defects bleed past the map's blob.
        feather: width of the soft blending ramp outside the grown mask, same unit. The ramp
            lies entirely outside the grown mask, so every deficient pixel is fully repainted.
        min_area: if the deficient pixels (before growing) cover less than this fraction of
            the image, the mask is empty (specks are not worth a diffusion pass); the refiner
            skips stage 1 for an empty mask.
    ``D`` sums ``1 − map`` over the roles in :attr:`roles` (perceptual and alignment); a role
    the recipe lacks contributes no deficiency, maps of other roles are ignored.
    """

    threshold: float = attrs.field(default=0.5, validator=number(0.0, 2.0))
    grow: float = attrs.field(default=0.02, validator=number(0.0, 0.5))
    feather: float = attrs.field(default=0.02, validator=number(0.0, 0.5))
    min_area: float = attrs.field(default=0.002, validator=number(0.0, 1.0))

    #: map roles that must be present; the refiner checks this at build time
    requires: ClassVar[tuple[str, ...]] = ()
    #: the map roles whose deficiencies ``D`` sums, in this order
    roles: ClassVar[tuple[str, ...]] = (PERCEPTUAL, ALIGNMENT)

    def deficiency(self, maps: Mapping[str, QualityMap], size: tuple[int, int]) -> np.ndarray:
        """``(H, W)`` float32 deficiency (1 = bad; up to the number of :attr:`roles`), at
        ``size = (width, height)``."""
        w, h = size
        d = np.zeros((h, w), np.float32)
        for name in self.roles:
            qmap = maps.get(name)
            if qmap is not None:
                d += 1.0 - at_size(qmap, size)
        return d

    def _missing(self, maps: Mapping[str, QualityMap]) -> None:
        for name in self.requires:
            if maps.get(name) is None:
                raise ValueError(f"combiner {type(self).__name__} needs a {name} map; the recipe has none")

    def combine(self, maps: Mapping[str, QualityMap], size: tuple[int, int]) -> Mask:
        size = check_size(size)
        self._missing(maps)
        core = (self.deficiency(maps, size) > self.threshold).astype(np.float32)
        if core.mean() < self.min_area or not core.any():
            return empty_mask(size)
        return self._grow_and_feather(core, size)

    def _grow_and_feather(self, core: np.ndarray, size: tuple[int, int]) -> Mask:
        short = min(size)
        grown = dilate(core, round(self.grow * short))
        # blurring a region R with a kernel of support k gives 1 on erode(R, k) and 0 beyond
        # dilate(R, k): with R = dilate(grown, k), the ramp runs from grown's edge outwards over 2k
        k = round(self.feather * short) // 2
        soft = feather(dilate(grown, k), k)
        soft = np.maximum(soft, grown)  # exact 1 on the grown mask despite float round-off
        binary = (soft > 0).astype(np.float32)
        return Mask(binary=binary, soft=soft)


@attrs.define(kw_only=True)
class PerceptualCombiner(GRefineCombiner):
    """Perceptual map only: ``D = 1 − P`` (the paper's Table 8 "PQ" ablation)."""

    requires: ClassVar[tuple[str, ...]] = (PERCEPTUAL,)
    roles: ClassVar[tuple[str, ...]] = (PERCEPTUAL,)


@attrs.define(kw_only=True)
class AlignmentCombiner(GRefineCombiner):
    """Alignment defects only: ``D = 1 − A`` (the paper's Table 8 "AQ" ablation)."""

    requires: ClassVar[tuple[str, ...]] = (ALIGNMENT,)
    roles: ClassVar[tuple[str, ...]] = (ALIGNMENT,)
