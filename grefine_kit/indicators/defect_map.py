"""``defect-map``: a weight-free local quality map from three detectors (noise, blur, JPEG).

The detectors are documented in :mod:`grefine_kit.indicators.defect_features`: each compares a
16×16 block with the rest of the same image, so the map finds *local* defects (a noisy, blurred
or blocky patch) on textured photos as well as smooth ones. The map is ``1 − max(evidence)``
over the kinds asked for (1 = good), bilinear between block centres at the image's ``(H, W)``;
the score is ``1 −`` the fraction of blocks whose evidence exceeds 0.5 (the share of the image
that looks defective). ``details`` has, per kind, that fraction (``<kind>_fraction``), the
kind covering most blocks (``dominant``: ``none`` when no block is flagged) and the block arrays.

A companion of ``piqe-map`` (PIQE's own block map, unchanged): where ``piqe-map`` judges
overall naturalness, ``defect-map`` names the defect, which ``restore``'s ``auto`` method uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np
from PIL import Image

from grefine_kit.images.heatmaps import upsample_blocks
from grefine_kit.indicators.defect_features import (
    BLOCK,
    BLUR_REL,
    BLUR_SHARP,
    DEFECT_KINDS,
    EDGE_FLOOR,
    JPEG_RATIO,
    NOISE_FLOOR,
    NOISE_RATIO,
    defect_evidence,
)
from grefine_kit.parts.roles import PERCEPTUAL
from grefine_kit.types import QualityMap

__all__ = ["DefectMap"]


def _kinds(value: Any) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    bad = [k for k in items if k not in DEFECT_KINDS]
    if bad or not items:
        raise ValueError(f"kinds must be a non-empty list of {', '.join(DEFECT_KINDS)}; got {list(items)}")
    return tuple(dict.fromkeys(items))


def _positive(lo: float, hi: float) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ValueError(f"{attribute.name} must be a number in [{lo}, {hi}]; got {value!r}")

    return check


@attrs.define(kw_only=True)
class DefectMap:
    """Noise / blur / JPEG-blocking map (no weights; see the module docstring).

    Options (the detectors' thresholds; defaults measured on planted defects, docs/benchmark.md):
        kinds: which detectors count (default all three: ``["noise", "blur", "jpeg"]``).
        noise_ratio / noise_floor: a block is noisy from ``max(noise_ratio × typical σ,
            typical σ + noise_floor)`` (1.8, 4 grey levels).
        blur_sharp / blur_rel: a block is blurred below an edge re-blur ratio of
            ``min(blur_sharp, blur_rel × typical)`` (1.6, 0.8).
        edge_floor: gradient (grey levels / px, after the re-blur) a block needs for the blur
            test (1.0): without an edge, sharpness cannot be judged.
        jpeg_ratio: blockiness (grid steps / inner steps) from which a block is blocky (1.3).
    """

    kinds: tuple[str, ...] = attrs.field(default=("noise", "blur", "jpeg"), converter=_kinds)
    noise_ratio: float = attrs.field(default=NOISE_RATIO, validator=_positive(1.0, 100.0))
    noise_floor: float = attrs.field(default=NOISE_FLOOR, validator=_positive(0.0, 255.0))
    blur_sharp: float = attrs.field(default=BLUR_SHARP, validator=_positive(1.0, 10.0))
    blur_rel: float = attrs.field(default=BLUR_REL, validator=_positive(0.0, 1.0))
    edge_floor: float = attrs.field(default=EDGE_FLOOR, validator=_positive(0.0, 255.0))
    jpeg_ratio: float = attrs.field(default=JPEG_RATIO, validator=_positive(1.0, 100.0))

    needs_prompt: ClassVar[bool] = False
    quality_kind: ClassVar[str] = PERCEPTUAL
    name: ClassVar[str] = "defect-map"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        """One QualityMap per RGB image (see the module docstring)."""
        return [self._one(image) for image in images]

    def _one(self, image: Image.Image) -> QualityMap:
        rgb = np.asarray(image.convert("RGB"), np.float64)
        h, w = rgb.shape[:2]
        if h < BLOCK or w < BLOCK:  # one block at least: replicate the border of a tiny image
            rgb = np.pad(rgb, ((0, max(0, BLOCK - h)), (0, max(0, BLOCK - w)), (0, 0)), mode="edge")
        ev = defect_evidence(
            rgb,
            noise_ratio=self.noise_ratio,
            noise_floor=self.noise_floor,
            blur_sharp=self.blur_sharp,
            blur_rel=self.blur_rel,
            edge_floor=self.edge_floor,
            jpeg_ratio=self.jpeg_ratio,
        )
        per_kind = {k: ev.kind(k) for k in self.kinds}
        combined = np.maximum.reduce(list(per_kind.values()))
        qmap = upsample_blocks(1.0 - combined, (max(w, BLOCK), max(h, BLOCK)), BLOCK)[:h, :w]
        fractions = {k: float((m > 0.5).mean()) for k, m in per_kind.items()}
        dominant = max(fractions, key=lambda k: fractions[k])
        details: dict[str, Any] = {
            **{f"{k}_fraction": f for k, f in fractions.items()},
            "dominant": dominant if fractions[dominant] > 0 else "none",
            "blocks": [int(combined.shape[0]), int(combined.shape[1])],
            # per-block arrays (rows, columns) for analysis; JSON reports leave them out
            **{f"{k}_blocks": m for k, m in per_kind.items()},
        }
        score = 1.0 - float((combined > 0.5).mean())
        return QualityMap(map=qmap, score=score, indicator=self.name, details=details)
