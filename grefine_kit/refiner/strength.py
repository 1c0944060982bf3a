"""Stage strength and the stage policy (docs/design.md 6.4-6.5, paper eq. 9).

A stage block holds a :class:`StagePolicy`: how strongly its stage runs (a quality-driven rule
for a masked stage, the fixed ``delta`` for a global one), how many schedule steps it gets, when
it skips (``mask_min_area``) and which indicator roles' scores decide the strength. The policy
is built from the recipe's ``[refiner]`` options (:meth:`StagePolicy.masked`,
:meth:`StagePolicy.global_pass`). diffusers step arithmetic lives in
:mod:`grefine_kit.stages.steps`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import attrs

from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL

__all__ = [
    "SCORE_ROLES",
    "STRENGTH_RULES",
    "StagePolicy",
    "quality_of",
    "split_iterations",
    "stage1_strength",
    "strength_for",
]

#: ``falling``: strength falls as quality rises (HQ images are barely touched; our default);
#: ``paper``: the paper's literal ``(p + a) / 2``; ``fixed``: always ``strength_max``.
STRENGTH_RULES = ("falling", "paper", "fixed")
#: the indicator roles whose scores decide a masked stage's strength (paper eq. 9: p and a)
SCORE_ROLES: tuple[str, ...] = (PERCEPTUAL, ALIGNMENT)


def split_iterations(iterations: int, split: float) -> tuple[int, int]:
    """Split the iteration budget: ``round(iterations * split)`` to stage 1, the rest to stage 2
    (paper §4.2: 20 iterations, half each)."""
    if iterations < 0 or not (0.0 <= split <= 1.0):
        raise ValueError(f"need iterations >= 0 and split in [0, 1]; got {iterations}, {split}")
    first = round(iterations * split)
    return first, iterations - first


def quality_of(*scores: float | None) -> float:
    """Mean of the available scores in [0, 1]; 0.5 (undecided) when none is available."""
    given = [s for s in scores if s is not None]
    if not given:
        return 0.5
    q = sum(given) / len(given)
    if not math.isfinite(q):
        raise ValueError(f"scores must be finite; got {', '.join(map(str, scores))}")
    return min(max(q, 0.0), 1.0)


def strength_for(
    scores: Sequence[float | None], rule: str = "falling", minimum: float = 0.3, maximum: float = 0.95
) -> float:
    """A masked stage's strength in [0, 1] from image scores (higher = better).

    - ``falling``: ``minimum + (maximum − minimum) · (1 − q)`` with ``q`` the mean score.
    - ``paper``: ``q`` itself, the paper's literal ``(p + a)/2`` (it *rises* with quality).
    - ``fixed``: ``maximum``.
    A missing score (None) is left out of the mean (``q`` = 0.5 when all are missing).
    """
    if rule not in STRENGTH_RULES:
        raise ValueError(f"strength rule must be one of {STRENGTH_RULES}; got {rule!r}")
    if not (0.0 <= minimum <= maximum <= 1.0):
        raise ValueError(f"need 0 <= minimum <= maximum <= 1; got {minimum}, {maximum}")
    q = quality_of(*scores)
    if rule == "paper":
        return q
    if rule == "fixed":
        return maximum
    return minimum + (maximum - minimum) * (1.0 - q)


def stage1_strength(
    perceptual: float | None,
    alignment: float | None,
    rule: str = "falling",
    minimum: float = 0.3,
    maximum: float = 0.95,
) -> float:
    """:func:`strength_for` of the perceptual and alignment scores (the built-in stage 1's rule)."""
    return strength_for((perceptual, alignment), rule, minimum, maximum)


@attrs.frozen(kw_only=True)
class StagePolicy:
    """How a stage block runs its stage.

    Attributes:
        steps: the schedule length the stage gets (its share of ``iterations``).
        rule: ``falling`` / ``paper`` / ``fixed`` (:func:`strength_for`), or ``delta``: always
            ``delta`` (a global pass).
        strength_min / strength_max: the strength range of the quality-driven rules.
        delta: the strength of the ``delta`` rule.
        mask_min_area: a masked stage skips when the mask covers this fraction or less.
        score_roles: the indicator roles whose scores decide the strength (absent ones are
            left out of the mean).
    """

    steps: int = attrs.field(validator=attrs.validators.ge(0))
    rule: str = attrs.field(default="falling", validator=attrs.validators.in_((*STRENGTH_RULES, "delta")))
    strength_min: float = 0.3
    strength_max: float = 0.95
    delta: float = 0.2
    mask_min_area: float = 0.0
    score_roles: tuple[str, ...] = SCORE_ROLES

    def strength(self, score: Callable[[str], float | None]) -> float:
        """The strength for an image whose role scores ``score(role)`` gives (None: absent)."""
        if self.rule == "delta":
            return self.delta
        return strength_for(
            [score(r) for r in self.score_roles], self.rule, self.strength_min, self.strength_max
        )
