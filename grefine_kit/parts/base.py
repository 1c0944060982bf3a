"""The small base every part may derive from (the shape of httpx's ``BaseTransport``).

A part is a plain object that follows its kind's protocol (``Indicator.score``,
``Combiner.combine``, ``Stage.run``, ``RegionDetector.detect``, ``Metric.score``). What the
toolkit may ask of a part *beyond* that protocol is declared here once, on :class:`PartBase`,
with a documented default (docs/plugins.md, "Capabilities"):

- :attr:`PartBase.name`: a short label for messages and records. Default: the class name.
- :attr:`PartBase.requires`: the maps (indicator roles) the part cannot work without; the
  Refiner checks at build time that earlier blocks write them. Default: none.
- :attr:`PartBase.writes_report`: an indicator whose maps carry an ``AlignmentReport``
  (``QualityMap.report``); its block writes the ``alignment_report`` state entry (emphasis,
  regions). Default: False.
- :attr:`PartBase.needs_prompt`: the part reads one prompt per image. Default: False.
- :attr:`PartBase.needs_region`: an indicator that reads each item's region mask: it is called
  as ``score(images, prompts, regions=...)``. Default: False.
- :attr:`PartBase.quality_kind`: what an indicator's score judges, ``"perceptual"`` or
  ``"alignment"``. Default: ``"alignment"`` when it needs a prompt, else ``"perceptual"``.
- :attr:`PartBase.score_range`: ``(lo, hi)``, the values a score can take. Default: open,
  ``(-inf, inf)``.
- :meth:`PartBase.required_weights`: the hub files the part loads (:class:`HubWeights`);
  ``grefine doctor``/``recipe validate`` look them up in the local Hugging Face cache.
  Default: none.
- :meth:`PartBase.preflight`: what else the part lacks on this machine (local files, packages,
  devices) as :class:`Missing` findings, found without importing anything heavy. Default: none.
- :meth:`PartBase.extra_files`: local files the part reads beyond its model (a LoRA, a local
  VAE); their digests enter a run's fingerprint, so a changed file redoes the items. Default:
  none.
- :meth:`PartBase.fetch_weights`: download what the part needs (``grefine fetch-weights``) and
  return one line per item. Default: nothing to fetch.

The toolkit never probes a part for these names. It asks :func:`as_part` for a
:class:`PartBase` view: a part derived from ``PartBase`` is its own view; any other object (a
plugin part that only follows its kind's protocol) is wrapped in an adapter that supplies the
defaults, except that ``name``, ``needs_prompt``, ``writes_report`` and ``score_range`` come
from the part itself when its kind's protocol has them (indicators and metrics declare
``needs_prompt``, indicators may declare ``writes_report``, metrics ``name`` and
``score_range``; a plugin indicator's ``name`` is read the same way).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import attrs

from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL

__all__ = [
    "DEVICE",
    "FILE",
    "FINDING_KINDS",
    "PACKAGE",
    "WEIGHTS",
    "Capabilities",
    "HubWeights",
    "Missing",
    "PartBase",
    "as_part",
    "capabilities",
]

#: kinds of :class:`Missing`: weights are fixed by ``grefine fetch-weights``, the others by the user
WEIGHTS: Final = "weights"
PACKAGE: Final = "package"
DEVICE: Final = "device"
FILE: Final = "file"
FINDING_KINDS: Final = (WEIGHTS, PACKAGE, DEVICE, FILE)


@attrs.frozen
class Missing:
    """One thing a run needs and this machine lacks (a finding of :meth:`PartBase.preflight`).

    ``what`` names it briefly (``"CLIP weights ViT-B-16-quickgelu/openai"``), ``where`` is the
    recipe role or part that needs it (a part leaves it empty: the caller knows the role),
    ``kind`` one of :data:`FINDING_KINDS`, ``fix`` the command that fixes it (empty for weights:
    the caller knows the right ``grefine fetch-weights`` call).
    """

    what: str
    where: str = ""
    kind: str = attrs.field(default=FILE, validator=attrs.validators.in_(FINDING_KINDS))
    fix: str = ""


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen
class HubWeights:
    """Weights a part loads from the Hugging Face hub (see :meth:`PartBase.required_weights`).

    Attributes:
        repo: the hub repository, ``org/name``.
        files: the weights are there when *any one* of these files is in the cached snapshot;
            empty means a diffusers pipeline folder (``model_index.json`` and a subfolder for
            every component it names).
        revision: a branch, tag or commit; empty for the default branch.
        label: how ``grefine doctor`` names them (default: ``weights <repo>``).
    """

    repo: str
    files: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    revision: str = ""
    label: str = ""

    @property
    def what(self) -> str:
        return self.label or f"weights {self.repo}"


class PartBase:
    """Base class with the documented defaults; override what your part can do.

    ``needs_prompt``, ``quality_kind`` and ``score_range`` are read-only properties here, so a
    subclass may override them with a class attribute (``needs_prompt: ClassVar[bool] = True``),
    an attrs field or a property of its own.
    """

    #: indicator roles (``perceptual``, ``alignment``) whose maps this part needs
    requires: ClassVar[tuple[str, ...]] = ()
    #: an indicator whose maps carry an AlignmentReport: the Refiner stores it as the
    #: ``alignment_report`` entry
    writes_report: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """A short label for messages and records (the registry name for built-ins). Default:
        the class name."""
        return type(self).__name__

    @property
    def needs_prompt(self) -> bool:
        """True when the part reads one prompt per image. Default: False."""
        return False

    @property
    def needs_region(self) -> bool:
        """True for an indicator that reads each item's region mask (``score(images, prompts,
        regions=...)``, one bool ``(H, W)`` mask or None per image). Default: False."""
        return False

    @property
    def quality_kind(self) -> str:
        """What an indicator's score judges: ``"perceptual"`` or ``"alignment"``. Default:
        ``"alignment"`` for a part that needs a prompt, ``"perceptual"`` otherwise."""
        return ALIGNMENT if self.needs_prompt else PERCEPTUAL

    @property
    def score_range(self) -> tuple[float, float]:
        """``(lo, hi)``: the values a score can take (``±inf`` for an open side). Default: open."""
        return (-math.inf, math.inf)

    def required_weights(self) -> list[HubWeights]:
        """The hub weights this part loads with its current options. Default: none.

        Must be cheap and import nothing heavy: ``grefine doctor`` calls it for every recipe.
        A local file given as an option is not listed here (report a missing one in
        :meth:`preflight`)."""
        return []

    def preflight(self) -> list[Missing]:
        """What else the part lacks on this machine (local files, packages, devices), found
        from the file system alone (no heavy import, nothing loaded). Default: nothing.

        Hub weights are *not* reported here: declare them in :meth:`required_weights` and the
        toolkit looks them up (and knows when a download would fix them)."""
        return []

    def extra_files(self) -> list[str]:
        """Local files the part reads beyond its model (their digests enter the run's
        fingerprint: a changed file redoes the items). Default: none."""
        return []

    def fetch_weights(self) -> list[str]:
        """Download weights into the usual caches; one human-readable line per item."""
        return []


@runtime_checkable
class _Named(Protocol):
    name: str


@runtime_checkable
class _ReadsPrompts(Protocol):
    needs_prompt: bool


@runtime_checkable
class _WritesReport(Protocol):
    writes_report: bool


@runtime_checkable
class _HasRange(Protocol):
    score_range: tuple[float, float]


class _ProtocolOnly(PartBase):
    """The :class:`PartBase` view of a part that does not derive from it: the defaults, with
    ``needs_prompt``/``score_range`` taken from the part where its kind's protocol has them."""

    def __init__(self, part: object) -> None:
        self.part = part

    @property
    def name(self) -> str:
        if isinstance(self.part, _Named) and self.part.name:
            return str(self.part.name)
        return type(self.part).__name__

    @property
    def needs_prompt(self) -> bool:
        return bool(self.part.needs_prompt) if isinstance(self.part, _ReadsPrompts) else False

    @property
    def reports(self) -> bool:
        """The part's own ``writes_report`` when it declares one (an indicator protocol member)."""
        return bool(self.part.writes_report) if isinstance(self.part, _WritesReport) else False

    @property
    def score_range(self) -> tuple[float, float]:
        if not isinstance(self.part, _HasRange):
            return super().score_range
        lo, hi = self.part.score_range
        return (float(lo), float(hi))

    def __repr__(self) -> str:
        return f"as_part({self.part!r})"


def as_part(part: object) -> PartBase:
    """``part`` itself when it derives from :class:`PartBase`, else an adapter with the
    defaults (see the module docstring). Ask capabilities through this, never by probing."""
    return part if isinstance(part, PartBase) else _ProtocolOnly(part)


@attrs.frozen
class Capabilities:
    """The cheap declared values of a part, in one record (see :class:`PartBase`)."""

    requires: tuple[str, ...] = ()
    writes_report: bool = False
    fetches_weights: bool = False
    needs_prompt: bool = False
    needs_region: bool = False
    quality_kind: str = PERCEPTUAL
    score_range: tuple[float, float] = (-math.inf, math.inf)


def capabilities(part: Any) -> Capabilities:
    """The part's declared values; the defaults for a part not derived from ``PartBase``
    (``needs_prompt``/``score_range`` from its kind's protocol)."""
    view = as_part(part)
    return Capabilities(
        requires=tuple(type(view).requires),
        writes_report=view.reports if isinstance(view, _ProtocolOnly) else bool(type(view).writes_report),
        fetches_weights=type(view).fetch_weights is not PartBase.fetch_weights,
        needs_prompt=bool(view.needs_prompt),
        needs_region=bool(view.needs_region),
        quality_kind=str(view.quality_kind),
        score_range=view.score_range,
    )
