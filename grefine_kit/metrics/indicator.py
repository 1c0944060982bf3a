"""Indicator scores as metrics: ``pq-map``, ``aq-map`` and ``indicator-score`` (any indicator).

An indicator's image score (``QualityMap.score``, in [0, 1], 1 = good) becomes one number per
image. The options are the indicator's own (``model``, ``weights``, ``prompt_checkpoints``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from PIL import Image

from grefine_kit.indicators.base import Indicator
from grefine_kit.metrics.base import MetricBase, check_prompts
from grefine_kit.parts.base import HubWeights, Missing, as_part

__all__ = ["IndicatorMetric", "aq_map_metric", "pq_map_metric"]


@attrs.define
class IndicatorMetric(MetricBase):
    """A registered indicator's image score as a metric (higher = better, range [0, 1]).

    Options: ``indicator`` (registry name, default ``"pq-map"``) and ``options``, the
    indicator's own options (e.g. ``{model = "grefine-tiny", weights = "random"}``).
    """

    indicator: str = attrs.field(default="pq-map", validator=attrs.validators.instance_of(str))
    options: Mapping[str, Any] = attrs.field(factory=dict)
    lower_better = False
    score_range = (0.0, 1.0)
    _part: Indicator | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def name(self) -> str:
        return self.indicator

    @property
    def needs_prompt(self) -> bool:
        return as_part(self._built()).needs_prompt

    def required_weights(self) -> list[HubWeights]:
        """The wrapped indicator's."""
        return as_part(self._built()).required_weights()

    def preflight(self) -> list[Missing]:
        """The wrapped indicator's."""
        return as_part(self._built()).preflight()

    def _built(self) -> Indicator:
        if self._part is None:
            from grefine_kit.parts.registry import get_registry

            self._part = get_registry().create_as("indicator", self.indicator, self.options, Indicator)
        return self._part

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        part = self._built()
        if part.needs_prompt:
            prompts = check_prompts(self.indicator, images, prompts)
        return [float(q.score) for q in part.score(list(images), prompts if part.needs_prompt else None)]


def pq_map_metric(**options: Any) -> IndicatorMetric:
    """PQ-Map's perceptual score ``p`` as a metric; ``options`` are ``pq-map``'s indicator options."""
    return IndicatorMetric("pq-map", options)


def aq_map_metric(**options: Any) -> IndicatorMetric:
    """AQ-Map's alignment score ``a`` as a metric (needs a prompt); options are ``aq-map``'s."""
    return IndicatorMetric("aq-map", options)
