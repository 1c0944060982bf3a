"""The indicator protocol: image (+ prompt) in, QualityMap out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from PIL import Image

from grefine_kit.types import QualityMap


@runtime_checkable
class Indicator(Protocol):
    """A quality indicator.

    Contract:
    - Construction is cheap: it validates options and loads no weights. Weights load on
      first use (or an explicit ``load()``), through the shared model cache.
    - ``score`` takes RGB PIL images (``grefine_kit.images.loading.load_image`` output) and, when
      ``needs_prompt`` is true, one prompt per image. It returns one ``QualityMap`` per
      image, whose map has that image's ``(H, W)``; values in [0, 1], 1 = good.
    """

    needs_prompt: bool

    def score(
        self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None
    ) -> list[QualityMap]: ...
