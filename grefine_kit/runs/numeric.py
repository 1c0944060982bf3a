"""Numeric checks on model outputs: NaN or inf fail the item, never pass as "ok"."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grefine_kit.errors import NonFiniteError

__all__ = ["check_finite", "check_quality_map"]


def check_finite(values: Any, what: str) -> None:
    """Raise NonFiniteError("non-finite output: WHAT ...") when ``values`` holds NaN or inf."""
    arr = np.asarray(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise NonFiniteError(f"non-finite output: {what} has {n_bad} NaN/inf value(s)")


def check_quality_map(qm: Any, what: str) -> None:
    """A QualityMap's ``score`` and ``map`` must be finite."""
    if qm is None:
        return
    score = getattr(qm, "score", None)
    if isinstance(score, float) and not math.isfinite(score):
        raise NonFiniteError(f"non-finite output: {what} score is {score}")
    check_finite(getattr(qm, "map", 0.0), f"{what} map")
