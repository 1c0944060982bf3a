"""The small base every part may derive from (the shape of httpx's ``BaseTransport``).

A part is a plain object that follows its kind's protocol (``Indicator.score``,
``Combiner.combine``, ``Stage.run``, ``RegionDetector.detect``). What the toolkit may ask of a
part *beyond* that protocol is declared here once, with a documented default:

- :attr:`PartBase.requires`: the maps (indicator roles) the part cannot work without; the
  Refiner checks at build time that earlier blocks write them. Default: none.
- :meth:`PartBase.fetch_weights`: download what the part needs (``grefine fetch-weights``) and
  return one line per item. Default: nothing to fetch.

The toolkit calls :func:`capabilities` instead of probing attributes: a part that derives from
:class:`PartBase` gets its overrides honoured; any other object gets the defaults (so a plugin
part that only implements its kind's protocol still works, it just declares nothing extra).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

__all__ = ["Capabilities", "PartBase", "capabilities"]


class PartBase:
    """Base class with the documented defaults; override what your part can do."""

    #: indicator roles (``perceptual``, ``alignment``) whose maps this part needs
    requires: ClassVar[tuple[str, ...]] = ()

    def fetch_weights(self) -> list[str]:
        """Download weights into the usual caches; one human-readable line per item."""
        return []


@attrs.frozen
class Capabilities:
    """What a part declares beyond its kind's protocol (see :class:`PartBase`)."""

    requires: tuple[str, ...] = ()
    fetches_weights: bool = False


def capabilities(part: Any) -> Capabilities:
    """The part's declared capabilities; the defaults for a part not derived from ``PartBase``."""
    if not isinstance(part, PartBase):
        return Capabilities()
    overrides = type(part).fetch_weights is not PartBase.fetch_weights
    return Capabilities(requires=tuple(type(part).requires), fetches_weights=overrides)
