"""The metric protocol: images (+ prompts) in, one number per image out.

A metric says which way is good (``lower_better``), the range its scores can take
(``score_range``, ``(lo, hi)``; ``-inf``/``inf`` for an open side) and whether it reads a
prompt (``needs_prompt``). Metrics judge *outcomes* (``grefine benchmark``); indicators make
maps that drive the refiner. Construction is cheap; weights load on the first ``score``.

Full-reference and mask metrics need more than the image: a metric that subclasses
:class:`MetricBase` *declares* in ``needs`` which of :data:`METRIC_NEEDS` it reads per image
(the refiner's ``input`` image, a ``reference`` image, a ``region`` mask, the
``refiner_mask``), and receives them as one :class:`MetricContext` per image:
``score(images, prompts=None, contexts=None)``. A metric that declares nothing (every metric
that does not subclass ``MetricBase`` included) is called as before, ``score(images, prompts)``.
:func:`metric_needs` reads the declaration; :func:`score_with` makes the right call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, runtime_checkable

import attrs
from PIL import Image

if TYPE_CHECKING:
    import numpy as np

from grefine_kit.errors import UserError
from grefine_kit.parts.base import PartBase, as_part

__all__ = [
    "METRIC_NEEDS",
    "Metric",
    "MetricBase",
    "MetricContext",
    "MetricInfo",
    "PerImageMetric",
    "check_prompts",
    "describe",
    "format_needs",
    "format_range",
    "metric_needs",
    "score_with",
]

#: what a metric may need per image besides the image and its prompt (``MetricBase.needs``):
#: ``input`` (the image the refiner was given), ``reference`` (a clean image of the same size),
#: ``region`` (a bool mask, True = the region) and ``refiner_mask`` (the refiner's repaint
#: mask, True = repainted)
METRIC_NEEDS: Final = ("input", "reference", "region", "refiner_mask")

#: where each need comes from, for error messages
_SOURCES: Final = {
    "input": "refiner input image",
    "reference": "reference image (manifest column 'reference')",
    "region": "region mask (manifest column 'region')",
    "refiner_mask": "refiner mask",
}


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
class MetricContext:
    """What a run knows about one scored image besides the image and its prompt.

    Attributes:
        input: the refiner's input image (RGB, the scored image's size). For the ``original``
            row of a benchmark (no refiner) it is the image itself.
        reference: the clean reference image (RGB, the scored image's size).
        region: bool ``(H, W)``, True = inside the region (e.g. where a defect was planted).
        refiner_mask: bool ``(H, W)``, True = the refiner repainted the pixel (its binary
            mask); all False for the ``original`` row and for a refiner without a mask.
        problems: for a field that is None, why (one line: "reference x.png: not found");
            shown as the item's error by :meth:`require`.
    """

    input: Image.Image | None = None
    reference: Image.Image | None = None
    region: np.ndarray | None = attrs.field(default=None, eq=False, repr=False)
    refiner_mask: np.ndarray | None = attrs.field(default=None, eq=False, repr=False)
    problems: Mapping[str, str] = attrs.field(factory=dict)

    def value(self, need: str) -> Image.Image | np.ndarray | None:
        """The field called ``need`` (one of :data:`METRIC_NEEDS`; ``KeyError`` otherwise)."""
        values: dict[str, Image.Image | np.ndarray | None] = {
            "input": self.input,
            "reference": self.reference,
            "region": self.region,
            "refiner_mask": self.refiner_mask,
        }
        return values[need]

    def require(self, needs: Iterable[str], metric: str) -> None:
        """Raise ``UserError`` (one line) when a field in ``needs`` is None: the problem
        recorded for it, else which input is missing."""
        for need in needs:
            if self.value(need) is None:
                why = self.problems.get(need) or f"no {_SOURCES.get(need, need)} for this image"
                raise UserError(f"metric {metric!r} needs {need}: {why}")


class MetricBase(PartBase):
    """Base for metrics that declare what they need per image (``needs``, default nothing);
    the capabilities of every part (:class:`grefine_kit.parts.base.PartBase`) come with it.

    Subclasses set ``needs`` to a frozenset of :data:`METRIC_NEEDS` and implement
    ``score(images, prompts=None, contexts=None)``; ``contexts`` holds one
    :class:`MetricContext` per image whenever ``needs`` is not empty. Without contexts such a
    metric raises ``UserError`` (see :meth:`contexts_for`). The rest of the ``Metric`` protocol
    (``name``, ``lower_better``, ``score_range``, ``needs_prompt``) is the subclass's.
    """

    needs: ClassVar[frozenset[str]] = frozenset()

    def contexts_for(
        self, images: Sequence[Any], contexts: Sequence[MetricContext] | None
    ) -> list[MetricContext]:
        """``contexts`` checked: one per image, each holding every declared need (else
        ``UserError`` naming the first missing one)."""
        name = self.name
        if contexts is None:
            if not self.needs or not images:
                return [MetricContext() for _ in images]
            raise UserError(
                f"metric {name!r} needs {', '.join(sorted(self.needs))} per image (contexts=None)"
            )
        contexts = list(contexts)
        if len(contexts) != len(images):
            raise UserError(f"metric {name!r}: {len(images)} images but {len(contexts)} contexts")
        for context in contexts:
            context.require(sorted(self.needs), name)
        return contexts


class PerImageMetric(MetricBase):
    """A :class:`MetricBase` that scores each image on its own: ``score`` checks the contexts
    (:meth:`MetricBase.contexts_for`) and calls :meth:`score_one` per image, in order."""

    def score(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str] | None = None,
        contexts: Sequence[MetricContext] | None = None,
    ) -> list[float]:
        checked = self.contexts_for(images, contexts)
        return [self.score_one(image, context) for image, context in zip(images, checked, strict=True)]

    def score_one(self, image: Image.Image, context: MetricContext) -> float:
        """One image's score; ``context`` holds every declared need (checked)."""
        raise NotImplementedError


def metric_needs(metric: Any) -> frozenset[str]:
    """What ``metric`` declares it needs per image: ``MetricBase.needs``; nothing for a metric
    that does not subclass :class:`MetricBase`."""
    return frozenset(metric.needs) if isinstance(metric, MetricBase) else frozenset()


def score_with(
    metric: Any,
    images: Sequence[Image.Image],
    prompts: Sequence[str] | None = None,
    contexts: Sequence[MetricContext] | None = None,
) -> list[float]:
    """``metric.score`` called the way it is declared: with ``contexts`` when it needs any,
    as ``score(images, prompts)`` otherwise (plugin metrics written before ``needs`` existed)."""
    if metric_needs(metric):
        return list(metric.score(images, prompts, contexts))
    return list(metric.score(images, prompts))


@attrs.frozen
class MetricInfo:
    """What a table needs to know about a metric (JSON-able through ``to_json``)."""

    name: str
    lower_better: bool = False
    score_range: tuple[float, float] = (-math.inf, math.inf)
    needs_prompt: bool = False
    licence: str = ""
    #: what the metric reads per image besides the image (see ``METRIC_NEEDS``), sorted
    needs: tuple[str, ...] = ()

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
            "needs": list(self.needs),
        }


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def describe(metric: Any, name: str | None = None, licence: str = "") -> MetricInfo:
    """The ``MetricInfo`` of a built metric (``name`` overrides the metric's own label;
    ``licence`` is the registry entry's). Range, prompt and label are the metric's declared
    capabilities (:func:`grefine_kit.parts.base.as_part`: a metric that only follows the protocol
    gives them as protocol members)."""
    view = as_part(metric)
    lo, hi = view.score_range
    return MetricInfo(
        name=name or view.name,
        lower_better=bool(metric.lower_better),
        score_range=(float(lo), float(hi)),
        needs_prompt=view.needs_prompt,
        licence=licence,
        needs=tuple(sorted(metric_needs(metric))),
    )


def format_needs(needs: Iterable[str]) -> str:
    """``reference+region``: a metric's needs as ``grefine list metric`` shows them ('' = none)."""
    return "+".join(n for n in METRIC_NEEDS if n in set(needs))


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
