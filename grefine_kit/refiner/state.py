"""The typed per-image state the Refiner's blocks read and write.

A block names the state entries it reads and writes with the strings in :data:`ENTRIES`
(``maps.perceptual`` for one indicator's map); the Refiner checks at build time that every
read is written by an earlier block or is an input (:data:`INPUTS`).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from PIL import Image

from grefine_kit.refiner.region_rules import RegionPrompts
from grefine_kit.refiner.roles import INDICATOR_ROLES
from grefine_kit.regions.base import Region
from grefine_kit.types import AlignmentReport, Mask, QualityMap

__all__ = ["ENTRIES", "INPUTS", "RefineState", "map_entry"]

#: what every state starts with
INPUTS: tuple[str, ...] = ("image", "prompt", "image_id", "seed")


def map_entry(role: str) -> str:
    """The state entry of an indicator role's map (``maps.perceptual``)."""
    return f"maps.{role}"


#: every entry a block may read or write
ENTRIES: tuple[str, ...] = (
    *INPUTS,
    *(map_entry(r) for r in INDICATOR_ROLES),
    "alignment_report",
    "mask",
    "regions",
)


@attrs.define(kw_only=True)
class RefineState:
    """One image on its way through the blocks.

    Attributes:
        original: the input as RGB (never changed: stages paste back from it).
        image: the current image (each stage replaces it; same size as ``original``).
        prompt / image_id / seed: the inputs; ``seed`` is the per-image seed
            (``derive_seed(recipe seed, image_id)``).
        region: the item's own region mask, bool ``(H, W)``, when its manifest gives one (the
            ``region-map`` indicator reads it); None otherwise.
        maps: the indicators' QualityMaps by role (1 = good).
        alignment_report: the typed alignment findings, when an indicator gave one.
        mask: the combiner's repaint mask at the image size (1 = repaint), once combined.
        regions: the regions block's output (None: no regions block, stage 1 runs whole-image).
        region_prompts: this image's own region prompts (None: the recipe's).
        stages: per-stage JSON-able results by role (strength, steps, steps run, skipped, ...).
        timings: seconds per block (indicator seconds are per image of their batch).
    """

    original: Image.Image = attrs.field(repr=False)
    image: Image.Image = attrs.field(repr=False)
    prompt: str
    image_id: str
    seed: int
    region: np.ndarray | None = attrs.field(default=None, repr=False, eq=False)
    maps: dict[str, QualityMap] = attrs.field(factory=dict, repr=False)
    alignment_report: AlignmentReport | None = attrs.field(default=None, repr=False)
    mask: Mask | None = attrs.field(default=None, repr=False)
    regions: tuple[Region, ...] | None = attrs.field(default=None, repr=False)
    region_prompts: RegionPrompts | None = attrs.field(default=None, repr=False)
    stages: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: intermediate whole-image previews per stage role, ``(step, image)`` (stage option previews)
    previews: dict[str, list[tuple[int, Image.Image]]] = attrs.field(factory=dict, repr=False)
    timings: dict[str, float] = attrs.field(factory=dict)

    @classmethod
    def start(
        cls, image: Image.Image, prompt: str, image_id: str, seed: int, region: np.ndarray | None = None
    ) -> RefineState:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return cls(original=rgb, image=rgb, prompt=prompt, image_id=image_id, seed=seed, region=region)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the image."""
        return self.original.size

    @property
    def emphasis(self) -> tuple[tuple[str, float], ...]:
        """The alignment report's emphasised ``(phrase, weight)`` pairs (none without a report)."""
        return self.alignment_report.emphasis if self.alignment_report is not None else ()

    def score(self, role: str) -> float | None:
        """The image score of an indicator role, None when the recipe has no such indicator."""
        qmap = self.maps.get(role)
        return qmap.score if qmap is not None else None
