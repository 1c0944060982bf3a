"""Full-reference and mask metrics as metric parts (``psnr``, ``ssim``, ``psnr-region``,
``ssim-region``, ``psnr-rest``, ``ssim-rest``, ``ssim-unmasked``, ``mask-iou``).

Each declares what it needs per image (``MetricBase.needs``) and computes with
:mod:`grefine_kit.metrics.fidelity` (whose docstring gives the exact definitions):

=================  ==========================  ============================================
``psnr``           reference                   PSNR of the image vs the reference, dB
``ssim``           reference                   SSIM of the image vs the reference
``psnr-region``    reference, region           the same over the region's pixels
``ssim-region``    reference, region           the SSIM map's mean over the region
``psnr-rest``      reference, region           over the pixels outside the region
``ssim-rest``      reference, region           the SSIM map's mean outside the region
``ssim-unmasked``  input, refiner_mask         SSIM of the image vs the refiner's *input*
                                               over the pixels its mask left alone (the
                                               whole image when the mask is empty)
``mask-iou``       refiner_mask, region        IoU of the refiner's mask and the region
=================  ==========================  ============================================

PSNR parts cap the score at ``max_db`` (100 dB): identical pixels would be ``+inf``, which no
mean, table or JSON file can hold. SSIM parts take ``convention`` (``canonical``, the default;
``downsampled``; ``skimage``). An image whose needs are missing, or whose region leaves no
pixel, fails alone with a one-line ``UserError`` (a blank cell in ``grefine benchmark``).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np
from PIL import Image

from grefine_kit.metrics.base import MetricContext, PerImageMetric
from grefine_kit.metrics.fidelity import CONVENTIONS, mask_iou, psnr, ssim, ssim_unmasked

__all__ = [
    "MaskIou",
    "Psnr",
    "PsnrRegion",
    "PsnrRest",
    "Ssim",
    "SsimRegion",
    "SsimRest",
    "SsimUnmasked",
]


def _area(context: MetricContext, area: str) -> np.ndarray | None:
    """The pixels counted: all (None), the region's, or the rest's."""
    if area == "all":
        return None
    assert context.region is not None  # checked by contexts_for
    return context.region if area == "region" else ~context.region


class _Fidelity(PerImageMetric):
    """One value per image from ``score_one(image, context)``; no part here reads the prompt.
    ``area`` says which pixels count: ``all``, the ``region``'s or the ``rest``."""

    name: ClassVar[str]
    needs_prompt: ClassVar[bool] = False
    lower_better: ClassVar[bool] = False
    area: ClassVar[str] = "all"


class _InRegion:
    """Mixin of the ``-region`` variants: over the region's pixels (needs the region too)."""

    needs: ClassVar[frozenset[str]] = frozenset({"reference", "region"})
    area: ClassVar[str] = "region"


class _OutsideRegion:
    """Mixin of the ``-rest`` variants: over the pixels outside the region (needs the region)."""

    needs: ClassVar[frozenset[str]] = frozenset({"reference", "region"})
    area: ClassVar[str] = "rest"


@attrs.define(kw_only=True)
class Psnr(_Fidelity):
    """``psnr``: PSNR (dB, RGB 0..255) of the image against the reference, capped at ``max_db``."""

    max_db: float = attrs.field(default=100.0, converter=float, validator=attrs.validators.gt(0.0))

    name: ClassVar[str] = "psnr"
    needs: ClassVar[frozenset[str]] = frozenset({"reference"})

    @property
    def score_range(self) -> tuple[float, float]:
        return (0.0, self.max_db)

    def score_one(self, image: Image.Image, context: MetricContext) -> float:
        return min(self.max_db, psnr(image, context.reference, _area(context, self.area)))


@attrs.define(kw_only=True)
class PsnrRegion(_InRegion, Psnr):
    """``psnr-region``: PSNR over the region's pixels."""

    name: ClassVar[str] = "psnr-region"


@attrs.define(kw_only=True)
class PsnrRest(_OutsideRegion, Psnr):
    """``psnr-rest``: PSNR over the pixels outside the region."""

    name: ClassVar[str] = "psnr-rest"


@attrs.define(kw_only=True)
class Ssim(_Fidelity):
    """``ssim``: SSIM of the image against the reference (``convention``: canonical, downsampled
    or skimage; see ``grefine_kit.metrics.fidelity``)."""

    convention: str = attrs.field(default="canonical", validator=attrs.validators.in_(CONVENTIONS))

    name: ClassVar[str] = "ssim"
    needs: ClassVar[frozenset[str]] = frozenset({"reference"})
    score_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    def score_one(self, image: Image.Image, context: MetricContext) -> float:
        return ssim(image, context.reference, _area(context, self.area), convention=self.convention)


@attrs.define(kw_only=True)
class SsimRegion(_InRegion, Ssim):
    """``ssim-region``: the SSIM map's mean over the region."""

    name: ClassVar[str] = "ssim-region"


@attrs.define(kw_only=True)
class SsimRest(_OutsideRegion, Ssim):
    """``ssim-rest``: the SSIM map's mean outside the region."""

    name: ClassVar[str] = "ssim-rest"


@attrs.define(kw_only=True)
class SsimUnmasked(Ssim):
    """``ssim-unmasked``: SSIM of the image against the refiner's own input over the pixels its
    mask left alone: how much of what it was told to keep it changed. Needs no reference."""

    name: ClassVar[str] = "ssim-unmasked"
    needs: ClassVar[frozenset[str]] = frozenset({"input", "refiner_mask"})

    def score_one(self, image: Image.Image, context: MetricContext) -> float:
        return ssim_unmasked(image, context.input, context.refiner_mask, convention=self.convention)


@attrs.define(kw_only=True)
class MaskIou(_Fidelity):
    """``mask-iou``: intersection over union of the refiner's mask and the region (1.0 when
    both are empty)."""

    name: ClassVar[str] = "mask-iou"
    needs: ClassVar[frozenset[str]] = frozenset({"refiner_mask", "region"})
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def score_one(self, image: Image.Image, context: MetricContext) -> float:
        return mask_iou(context.refiner_mask, context.region)


#: every part here by registry name (builtins registers them; tests check the two agree)
PARTS: dict[str, type[_Fidelity]] = {
    cls.name: cls for cls in (Psnr, PsnrRegion, PsnrRest, Ssim, SsimRegion, SsimRest, SsimUnmasked, MaskIou)
}
