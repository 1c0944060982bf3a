"""``piqe``: PIQE (Venkatanath et al., 2015) as a metric; weight-free, so it runs anywhere.

The score is ``grefine_kit.indicators.piqe.piqe`` on the image's MATLAB rgb2gray luma (as MATLAB's
``piqe``; it reproduces the official scores, ``grefine metrics check``): 0..100, lower =
better. It is the same PIQE that ``piqe-map`` pools into its score (``1 − PIQE/100``), so a
recipe whose mask comes from ``piqe-map`` is judged by its own yardstick here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import numpy as np
from PIL import Image

from grefine_kit.metrics.base import MetricBase

__all__ = ["PiqeMetric"]

_threshold = [attrs.validators.instance_of(float), attrs.validators.gt(0.0)]


@attrs.define(kw_only=True)
class PiqeMetric(MetricBase):
    """PIQE (``piqe``), 0..100, lower = better; images need at least one 16×16 block.

    Options: ``activity_threshold`` (0.1: block variance above which a block counts) and
    ``segment_threshold`` (0.1: edge-segment deviation below which a segment is flat).
    """

    activity_threshold: float = attrs.field(default=0.1, converter=float, validator=_threshold)
    segment_threshold: float = attrs.field(default=0.1, converter=float, validator=_threshold)

    name: ClassVar[str] = "piqe"
    lower_better: ClassVar[bool] = True
    needs_prompt: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float]] = (0.0, 100.0)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        from grefine_kit.indicators.piqe import grey_levels, piqe

        return [
            piqe(
                grey_levels(np.asarray(image.convert("RGB"))),
                activity_threshold=self.activity_threshold,
                segment_threshold=self.segment_threshold,
            ).score
            for image in images
        ]
