"""Metrics: one number per image, to judge images before and after refining (``grefine benchmark``).

- ``base``: the ``Metric`` protocol (``name``, ``lower_better``, ``score_range``, ``needs_prompt``,
  ``score(images, prompts=None) -> list[float]``) and ``MetricInfo``;
- ``marking``: better / worse / tie, best and second best, NaN (the benchmark tables' rules);
- built-ins: ``pq-map`` / ``aq-map`` / ``indicator-score`` (``indicator``), ``clipscore`` and
  ``hpsv2`` (``clip_metrics``, open_clip), ``pickscore`` (``pickscore``, transformers).

Importing this package loads no model library.
"""

from grefine_kit.metrics.base import Metric, MetricInfo, check_prompts, describe, format_range
from grefine_kit.metrics.indicator import IndicatorMetric
from grefine_kit.metrics.marking import (
    DEFAULT_TOLERANCE,
    compare,
    is_tie,
    negative_optimisation,
    rank_marks,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "IndicatorMetric",
    "Metric",
    "MetricInfo",
    "check_prompts",
    "compare",
    "describe",
    "format_range",
    "is_tie",
    "negative_optimisation",
    "rank_marks",
]
