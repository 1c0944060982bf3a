"""A third-party plugin: a brightness indicator and a recipe, registered by entry point."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
from PIL import Image

from grefine_kit import hookimpl
from grefine_kit.types import QualityMap


@attrs.define
class BrightnessIndicator:
    """Map = pixel luminance (1 = bright = 'good' for this toy); score = mean luminance."""

    gamma: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    needs_prompt = False

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        out = []
        for image in images:
            lum = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
            lum = lum**self.gamma
            out.append(QualityMap(map=lum, score=float(lum.mean()), indicator="brightness"))
        return out


@hookimpl
def register_indicators(register):
    register("brightness", "grefine_example_plugin:BrightnessIndicator", summary="toy luminance map")


@hookimpl
def register_recipes(register):
    register("example-recipe", Path(__file__).with_name("example.toml"))
