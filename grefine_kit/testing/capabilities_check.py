"""Conformance check of a part's declared capabilities (:mod:`grefine_kit.parts.base`).

``check_capabilities(part)`` asks the part what the toolkit asks it (through
:func:`grefine_kit.parts.base.as_part`, so a part that only follows its kind's protocol is checked
with the defaults it gets) and asserts the answers have the documented types and values.
"""

from __future__ import annotations

import math

from grefine_kit.parts.base import FINDING_KINDS, WEIGHTS, HubWeights, Missing, as_part
from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL

__all__ = ["check_capabilities"]

_QUALITY_KINDS = (PERCEPTUAL, ALIGNMENT)


def check_capabilities(part: object) -> None:
    """``name`` a non-empty str; ``needs_prompt`` a bool; ``quality_kind`` perceptual or
    alignment; ``score_range`` two numbers, lo < hi; ``required_weights()`` a list of
    ``HubWeights`` naming ``org/name`` repos; ``preflight()`` a list of ``Missing`` findings
    of a known kind, none of them weights (those belong in ``required_weights``)."""
    view = as_part(part)
    assert isinstance(view.name, str) and view.name, f"{part!r}: name must be a non-empty str"
    assert isinstance(view.needs_prompt, bool), f"{view.name}: needs_prompt must be a bool"
    assert view.quality_kind in _QUALITY_KINDS, (
        f"{view.name}: quality_kind must be one of {_QUALITY_KINDS}; got {view.quality_kind!r}"
    )
    lo, hi = view.score_range
    assert not (math.isnan(lo) or math.isnan(hi)) and lo < hi, (
        f"{view.name}: score_range must be (lo, hi) with lo < hi; got {view.score_range!r}"
    )
    weights = view.required_weights()
    assert isinstance(weights, list), f"{view.name}: required_weights() must return a list"
    for item in weights:
        assert isinstance(item, HubWeights), f"{view.name}: required_weights() items must be HubWeights"
        assert item.repo.count("/") == 1 and all(item.repo.split("/")), (
            f"{view.name}: a hub repo looks like 'org/name'; got {item.repo!r}"
        )
    found = view.preflight()
    assert isinstance(found, list), f"{view.name}: preflight() must return a list"
    for finding in found:
        assert isinstance(finding, Missing), f"{view.name}: preflight() items must be Missing findings"
        assert finding.kind in FINDING_KINDS and finding.kind != WEIGHTS, (
            f"{view.name}: a preflight() finding is a file, package or device (weights: "
            f"declare them in required_weights()); got {finding.kind!r}"
        )
