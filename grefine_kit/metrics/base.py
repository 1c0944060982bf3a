"""The metric protocol: images (+ prompts) in, one number per image out.

A metric says which way is good (``lower_better``), the range its scores can take
(``score_range``, ``(lo, hi)``; ``-inf``/``inf`` for an open side) and whether it reads a
prompt (``needs_prompt``). Metrics judge *outcomes* (``grefine benchmark``); indicators make
maps that drive the refiner. Construction is cheap; weights load on the first ``score``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
from PIL import Image

from grefine_kit.errors import UserError

__all__ = ["Metric", "MetricInfo", "check_prompts", "describe", "format_range"]


@runtime_checkable
class Metric(Protocol):
    """A quality metric.

    Contract:
    - ``name``: a short label (the registry name for built-ins).
    - ``lower_better``: True when smaller scores mean better images (BRISQUE, NIQE, ...).
    - ``score_range``: ``(lo, hi)``, the values a score can take (may be ``±inf``).
    - ``needs_prompt``: True when ``score`` needs one prompt per image.
    - ``score(images, prompts=None)``: RGB PIL images -> one finite float per image, in order,
      deterministic. A metric that needs a prompt raises ``UserError`` when none is given.
    """

    name: str
    lower_better: bool
    score_range: tuple[float, float]
    needs_prompt: bool

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]: ...


@attrs.frozen
class MetricInfo:
    """What a table needs to know about a metric (JSON-able through ``to_json``)."""

    name: str
    lower_better: bool = False
    score_range: tuple[float, float] = (-math.inf, math.inf)
    needs_prompt: bool = False
    licence: str = ""

    @property
    def arrow(self) -> str:
        """``↓`` for lower-better metrics, ``↑`` otherwise (the paper's column headers)."""
        return "↓" if self.lower_better else "↑"

    def to_json(self) -> dict[str, Any]:
        lo, hi = self.score_range
        return {
            "name": self.name,
            "lower_better": self.lower_better,
            "score_range": [_json_float(lo), _json_float(hi)],
            "needs_prompt": self.needs_prompt,
            "licence": self.licence,
        }


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def describe(metric: Any, name: str | None = None, licence: str = "") -> MetricInfo:
    """The ``MetricInfo`` of a built metric (``name`` overrides the metric's own label)."""
    lo, hi = getattr(metric, "score_range", (-math.inf, math.inf))
    return MetricInfo(
        name=name or str(getattr(metric, "name", type(metric).__name__)),
        lower_better=bool(metric.lower_better),
        score_range=(float(lo), float(hi)),
        needs_prompt=bool(metric.needs_prompt),
        licence=licence or str(getattr(metric, "licence", "") or ""),
    )


def format_range(score_range: Sequence[Any]) -> str:
    """``[0, 2.5]``, ``[-inf, inf]``: the range as shown by ``grefine list metric``."""
    lo, hi = (float(v) for v in score_range)
    return f"[{lo:g}, {hi:g}]"


def check_prompts(name: str, images: Sequence[Any], prompts: Sequence[str] | None) -> list[str]:
    """The prompts of a prompt-reading metric, checked: one string per image, else ``UserError``."""
    if prompts is None:
        raise UserError(f"metric {name!r} needs a prompt per image (give --prompt, --prompts or a manifest)")
    prompts = list(prompts)
    if len(prompts) != len(images):
        raise UserError(f"metric {name!r}: {len(images)} images but {len(prompts)} prompts")
    return prompts
