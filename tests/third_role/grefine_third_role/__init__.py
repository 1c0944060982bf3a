"""A test plugin that adds a third map role and a third stage through a recipe alone.

It registers, through a real ``grefine_kit`` entry point (tests/test_third_role.py writes the
``dist-info``), an indicator (``edge-map``: 1 = smooth, 0 = strong edges), a combiner that
needs that map (``edge-mask``), and two stages (``soften``: global; ``touch-up``: masked). Its
recipe wires ``edge-map`` as ``[indicators.edges]`` and ``soften`` as ``[stages.polish]``; no
file of the core names either.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

import attrs
import numpy as np
from PIL import Image, ImageFilter

from grefine_kit import hookimpl
from grefine_kit.parts.base import PartBase
from grefine_kit.parts.roles import GLOBAL, MASKED
from grefine_kit.stages.base import StageRequest, StageResult
from grefine_kit.types import Mask, QualityMap

ROLE = "edges"  # the recipe's name for the third map role (only the recipe and this test use it)


@attrs.define(kw_only=True)
class EdgeMap(PartBase):
    """Map = 1 − normalised gradient magnitude of the luminance; score = its mean."""

    scale: float = attrs.field(default=4.0, validator=attrs.validators.gt(0))

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        out = []
        for image in images:
            lum = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
            gy, gx = np.gradient(lum)
            qmap = np.clip(1.0 - self.scale * np.hypot(gx, gy), 0.0, 1.0).astype(np.float32)
            out.append(QualityMap(map=qmap, score=float(qmap.mean()), indicator="edge-map"))
        return out


@attrs.define(kw_only=True)
class EdgeMask(PartBase):
    """Repaint where the ``edges`` map is below ``threshold`` (needs that map)."""

    threshold: float = 0.5
    requires: ClassVar[tuple[str, ...]] = (ROLE,)

    def combine(self, maps: Mapping[str, QualityMap], size: tuple[int, int]) -> Mask:
        w, h = size
        qmap = np.asarray(maps[ROLE].map, dtype=np.float32)
        binary = (qmap[:h, :w] < self.threshold).astype(np.float32)
        return Mask(binary=binary, soft=binary.copy())


def _soften(request: StageRequest) -> StageResult:
    started = time.perf_counter()
    blurred = request.image.filter(ImageFilter.BoxBlur(1))
    image = Image.blend(request.image, blurred, request.strength)
    steps = min(int(request.steps * request.strength), request.steps)
    return StageResult(image=image, steps_run=steps, seconds=time.perf_counter() - started)


@attrs.define(kw_only=True)
class Soften(PartBase):
    """A global pass: blend the image with its 3x3 box blur by the stage's strength."""

    role: ClassVar[str] = GLOBAL

    def run(self, request: StageRequest) -> StageResult:
        return _soften(request)


@attrs.define(kw_only=True)
class TouchUp(PartBase):
    """The same blend as a masked stage (the refiner pastes the original back outside the mask)."""

    role: ClassVar[str] = MASKED

    def run(self, request: StageRequest) -> StageResult:
        return _soften(request)


@hookimpl
def register_indicators(register):  # type: ignore[no-untyped-def]
    register("edge-map", "grefine_third_role:EdgeMap", summary="test: 1 - gradient magnitude")


@hookimpl
def register_combiners(register):  # type: ignore[no-untyped-def]
    register("edge-mask", "grefine_third_role:EdgeMask", summary="test: mask from the edges map")


@hookimpl
def register_stages(register):  # type: ignore[no-untyped-def]
    register("soften", "grefine_third_role:Soften", summary="test: global blur blend")
    register("touch-up", "grefine_third_role:TouchUp", summary="test: masked blur blend")
