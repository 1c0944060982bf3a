"""What a region is and what a region detector does (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL
from grefine_kit.types import AlignmentReport, Mask, QualityMap

__all__ = ["MERGE_MODES", "SOURCES", "Box", "Region", "RegionDetector"]


#: ``each``: one crop per region; ``single``: one crop around the whole mask (the old only_masked)
MERGE_MODES = ("each", "single")
#: what made a region: a map role, ``mask`` (no map explains it), ``mixed`` (a merged region)
SOURCES = (PERCEPTUAL, ALIGNMENT, "mask", "mixed")

Box = tuple[int, int, int, int]


def _pairs(value: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    return tuple((str(p), float(w)) for p, w in value)


@attrs.frozen
class Region:
    """One defect to refine on its own crop.

    Attributes:
        box: the tight bounding box of the region's mask, in image pixels.
        crop: the box stage 1 gets (``box`` plus padding, clipped to the image).
        mask: the region's mask, crop-local; outside its ``binary`` the original pixels are kept.
        area: fraction of the image the region's ``binary`` covers, in [0, 1].
        source: ``perceptual``, ``alignment``, ``mask`` or ``mixed`` (see :data:`SOURCES`).
        phrase: for alignment regions, the prompt phrase whose defect made it (else None).
        emphasis: ``(phrase, weight)`` pairs added to stage 1's conditioning for this region.
        max_upscale: the most stage 1 may enlarge the crop to reach its working area (0 = no cap).
        label: what the detector calls it (``face``, ``hand``...; ``components`` uses its
            source); region prompts and skip rules match it (None: unlabelled).
        score: the detector's confidence in [0, 1] (``components``: the mean deficiency of its
            source over it); ``refiner.region_min_score`` skips below it (None: no score).
    """

    box: Box
    crop: Box
    mask: Mask = attrs.field(eq=False, repr=False)
    area: float
    source: str = attrs.field(validator=attrs.validators.in_(SOURCES))
    phrase: str | None = None
    emphasis: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_pairs)
    max_upscale: float = 0.0
    label: str | None = None
    score: float | None = None

    def __attrs_post_init__(self) -> None:
        left, top, right, bottom = self.crop
        if self.mask.binary.shape != (bottom - top, right - left):
            raise ValueError(f"region mask {self.mask.binary.shape} does not match its crop {self.crop}")

    def to_json(self) -> dict[str, object]:
        return {
            "box": list(self.box),
            "crop": list(self.crop),
            "area": self.area,
            "source": self.source,
            "phrase": self.phrase,
            "emphasis": [list(e) for e in self.emphasis],
            "label": self.label,
            "score": self.score,
        }


@runtime_checkable
class RegionDetector(Protocol):
    """Split a mask into regions.

    ``maps`` holds the indicators' QualityMaps by role (1 = good; a recipe's extra roles
    included: a detector uses the roles it knows, and lists those it cannot work without in
    ``requires``); ``report`` the alignment
    report (its ``defect_maps`` say which phrase is wrong where) or None. An empty mask gives no
    regions. Regions may overlap; stage 1 refines them in the order given.
    """

    def detect(
        self, mask: Mask, maps: Mapping[str, QualityMap], report: AlignmentReport | None
    ) -> list[Region]: ...
