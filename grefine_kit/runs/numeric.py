"""Numeric checks on model outputs: NaN or inf fail the item, never pass as "ok"."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grefine_kit.errors import NonFiniteError
from grefine_kit.types import QualityMap

__all__ = ["check_finite", "check_quality_map"]


def check_finite(values: Any, what: str) -> None:
    """Raise NonFiniteError("non-finite output: WHAT ...") when ``values`` holds NaN or inf."""
    arr = np.asarray(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise NonFiniteError(f"non-finite output: {what} has {n_bad} NaN/inf value(s)")


def check_quality_map(qm: object, what: str) -> None:
    """A QualityMap's ``score`` and ``map`` must be finite (anything else, None included, is
    not checked here)."""
    if not isinstance(qm, QualityMap):
        return
    if not math.isfinite(qm.score):
        raise NonFiniteError(f"non-finite output: {what} score is {qm.score}")
    check_finite(qm.map, f"{what} map")
