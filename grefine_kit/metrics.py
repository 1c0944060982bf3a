"""Metrics: one number per image, used to compare images before and after refining.

Protocol: ``compute(images, prompts=None) -> list[float]`` plus ``higher_is_better: bool`` and
``needs_prompt: bool``. A refinement is a *negative optimisation* for a metric when the refined
image scores worse than the original (see ``negative_optimisation``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
from PIL import Image


@runtime_checkable
class Metric(Protocol):
    higher_is_better: bool
    needs_prompt: bool

    def compute(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]: ...


@attrs.define
class IndicatorMetric:
    """Any registered indicator's image score used as a metric (higher = better).

    Options: ``indicator`` (registry name, default ``"pq-map"``) and ``options``, the
    indicator's own options (e.g. ``{model = "grefine-tiny", weights = "random"}``).
    """

    indicator: str = "pq-map"
    options: Mapping[str, Any] = attrs.field(factory=dict)
    higher_is_better = True
    _part: Any = attrs.field(default=None, init=False, repr=False)

    @property
    def needs_prompt(self) -> bool:
        return bool(self._built().needs_prompt)

    def _built(self) -> Any:
        if self._part is None:
            from grefine_kit.registry import get_registry

            self._part = get_registry().create("indicator", self.indicator, self.options)
        return self._part

    def compute(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        return [q.score for q in self._built().score(images, prompts)]


def negative_optimisation(before: float, after: float, higher_is_better: bool = True) -> bool:
    """True when ``after`` is worse than ``before`` for a metric of that direction."""
    return after < before if higher_is_better else after > before
