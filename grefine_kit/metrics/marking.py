"""Marking rules of the benchmark tables: better / worse / tie, best and second best, NaN.

The rules (docs/benchmark.md):

- **Direction** per metric: ``lower_better`` metrics are better when smaller.
- **Ties**: two values tie when ``|a - b| <= tolerance * max(1, |a|, |b|)`` (``DEFAULT_TOLERANCE``
  = 1e-6: absolute for values below 1, relative above). A tie is *not worse*: equal to the
  original is never a negative optimisation, and tied rows share a rank.
- **NaN** (no score: the image failed to refine or to score): shown as ``n/a``, never best or
  second, never a negative optimisation (it is counted apart as missing), never a win.
- **Best / second best**: dense ranking of the distinct (tie-grouped) values among the recipe
  rows only; the original images are the reference, not a contestant. Every row in the best
  group is marked best, every row in the next group second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "DEFAULT_TOLERANCE",
    "Outcome",
    "compare",
    "is_tie",
    "negative_optimisation",
    "rank_marks",
]

DEFAULT_TOLERANCE = 1e-6

Outcome = Literal["better", "worse", "tie", "n/a"]


def _check_tolerance(tolerance: float) -> None:
    if not (tolerance >= 0.0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a finite number >= 0; got {tolerance!r}")


def is_tie(a: float, b: float, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """True when finite ``a`` and ``b`` are equal within ``tolerance * max(1, |a|, |b|)``."""
    _check_tolerance(tolerance)
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def compare(
    before: float, after: float, *, lower_better: bool = False, tolerance: float = DEFAULT_TOLERANCE
) -> Outcome:
    """How ``after`` compares to ``before`` for a metric of that direction (``"n/a"`` if either is NaN)."""
    if math.isnan(before) or math.isnan(after):
        return "n/a"
    if is_tie(before, after, tolerance):
        return "tie"
    improved = after < before if lower_better else after > before
    return "better" if improved else "worse"


def negative_optimisation(
    before: float, after: float, *, lower_better: bool = False, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """True when ``after`` is worse than ``before`` (beyond the tie tolerance; NaN is never)."""
    return compare(before, after, lower_better=lower_better, tolerance=tolerance) == "worse"


def rank_marks(
    values: Sequence[float], *, lower_better: bool = False, tolerance: float = DEFAULT_TOLERANCE
) -> list[str]:
    """``"best"``, ``"second"`` or ``""`` per value (dense ranking over tie groups; NaN gets ``""``)."""
    order = sorted(
        (i for i, v in enumerate(values) if not math.isnan(v)),
        key=lambda i: values[i] if lower_better else -values[i],
    )
    marks = [""] * len(values)
    group, anchor = 0, None
    for i in order:
        if anchor is not None and not is_tie(values[anchor], values[i], tolerance):
            group += 1
            anchor = i
        if anchor is None:
            anchor = i
        if group > 1:
            break
        marks[i] = "best" if group == 0 else "second"
    return marks
