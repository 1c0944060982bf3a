"""The per-image state the Refiner's blocks read and write, keyed by entry name.

A block names the entries it reads and writes (:mod:`grefine_kit.refiner.blocks`); the state
stores every written entry under that name in :attr:`RefineState.entries`. The well-known
entries have constants here and typed accessors on the state:

=====================  ==================================  ==========================
entry                  holds                               accessor
=====================  ==================================  ==========================
``image``              the current image (each stage)      ``state.image``
``maps.<role>``        an indicator role's QualityMap      ``state.maps[role]``
``alignment_report``   an indicator's AlignmentReport      ``state.alignment_report``
``mask``               the combiner's repaint Mask         ``state.mask``
``regions``            the regions block's Regions         ``state.regions``
=====================  ==================================  ==========================

``image``, ``prompt``, ``image_id`` and ``seed`` are inputs (:data:`INPUTS`): every state
starts with them. The Refiner checks at build time that every read is an input or written by an
earlier block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
from PIL import Image

from grefine_kit.refiner.region_rules import RegionPrompts
from grefine_kit.regions.base import Region
from grefine_kit.types import AlignmentReport, Mask, QualityMap

__all__ = ["IMAGE", "INPUTS", "MAPS", "MASK", "PROMPT", "REGIONS_ENTRY", "REPORT", "RefineState", "map_entry"]

IMAGE = "image"
PROMPT = "prompt"
MASK = "mask"
REGIONS_ENTRY = "regions"
REPORT = "alignment_report"
#: the prefix of the indicator maps' entries (``maps.<role>``)
MAPS = "maps."
#: what every state starts with
INPUTS: tuple[str, ...] = (IMAGE, PROMPT, "image_id", "seed")


def map_entry(role: str) -> str:
    """The state entry of an indicator role's map (``maps.perceptual``)."""
    return f"{MAPS}{role}"


@attrs.define(kw_only=True)
class RefineState:
    """One image on its way through the blocks.

    Attributes:
        original: the input as RGB (never changed: stages paste back from it).
        prompt / image_id / seed: the inputs; ``seed`` is the per-image seed
            (``derive_seed(recipe seed, image_id)``).
        region: the item's own region mask, bool ``(H, W)``, when its manifest gives one (the
            ``region-map`` indicator reads it); None otherwise.
        entries: what the blocks wrote, by entry name (see the module docstring); ``image``
            starts as ``original``.
        region_prompts: this image's own region prompts (None: the recipe's).
        stages: per-stage JSON-able results by role (strength, steps, steps run, skipped, ...).
        previews: intermediate whole-image previews per stage, ``(step, image)``.
        timings: seconds per block (indicator seconds are per image of their batch).
    """

    original: Image.Image = attrs.field(repr=False)
    prompt: str
    image_id: str
    seed: int
    region: np.ndarray | None = attrs.field(default=None, repr=False, eq=False)
    entries: dict[str, Any] = attrs.field(factory=dict, repr=False)
    region_prompts: RegionPrompts | None = attrs.field(default=None, repr=False)
    stages: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    previews: dict[str, list[tuple[int, Image.Image]]] = attrs.field(factory=dict, repr=False)
    timings: dict[str, float] = attrs.field(factory=dict)

    @classmethod
    def start(
        cls, image: Image.Image, prompt: str, image_id: str, seed: int, region: np.ndarray | None = None
    ) -> RefineState:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        state = cls(original=rgb, prompt=prompt, image_id=image_id, seed=seed, region=region)
        state.entries[IMAGE] = rgb
        return state

    # -- entries ---------------------------------------------------------------------------

    def read(self, entry: str) -> object:
        """The value of ``entry``; None when no block wrote it (the inputs are always there)."""
        if entry == PROMPT:
            return self.prompt
        if entry in ("image_id", "seed"):
            return self.image_id if entry == "image_id" else self.seed
        return self.entries.get(entry)

    def write(self, entry: str, value: Any) -> None:
        """Store ``value`` under ``entry`` (a block writes only what it declares)."""
        self.entries[entry] = value

    @property
    def image(self) -> Image.Image:
        """The current image (entry ``image``; each stage replaces it, same size as ``original``)."""
        image: Image.Image = self.entries[IMAGE]
        return image

    @image.setter
    def image(self, value: Image.Image) -> None:
        self.entries[IMAGE] = value

    @property
    def maps(self) -> Mapping[str, QualityMap]:
        """The indicators' QualityMaps by role (entries ``maps.<role>``, in the order written;
        a fresh mapping: write a map with :meth:`write`)."""
        return {k[len(MAPS) :]: v for k, v in self.entries.items() if k.startswith(MAPS)}

    @property
    def alignment_report(self) -> AlignmentReport | None:
        """The alignment findings an indicator gave (entry ``alignment_report``), or None."""
        report: AlignmentReport | None = self.entries.get(REPORT)
        return report

    @property
    def mask(self) -> Mask | None:
        """The combiner's repaint mask at the image size (entry ``mask``), once combined."""
        mask: Mask | None = self.entries.get(MASK)
        return mask

    @property
    def regions(self) -> tuple[Region, ...] | None:
        """The regions block's output (entry ``regions``; None: no regions block, stage 1 runs
        whole-image)."""
        regions: tuple[Region, ...] | None = self.entries.get(REGIONS_ENTRY)
        return regions

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the image."""
        return self.original.size

    @property
    def emphasis(self) -> tuple[tuple[str, float], ...]:
        """The alignment report's emphasised ``(phrase, weight)`` pairs (none without a report)."""
        report = self.alignment_report
        return report.emphasis if report is not None else ()

    def score(self, role: str) -> float | None:
        """The image score of an indicator role, None when the recipe has no such indicator."""
        qmap: QualityMap | None = self.entries.get(map_entry(role))
        return qmap.score if qmap is not None else None
