"""Correlation coefficients used to judge an IQA indicator against MOS (numpy only).

- ``srcc``: Spearman rank-order correlation (monotonicity); ties get average ranks.
- ``plcc``: Pearson linear correlation (accuracy); ``fit="logistic"`` first maps the predictions
  through the 4-parameter logistic that IQA papers fit (VQEG practice), which needs SciPy and
  at least ``LOGISTIC_MIN`` (5) points.
- ``krcc``: Kendall's tau-b rank correlation.

All take two equal-length sequences of finite numbers (at least 3) and return a float in
[-1, 1]; higher is better. Constant inputs give ``nan`` (the correlation is undefined).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from grefine_kit.errors import MissingDependencyError, UserError

__all__ = ["LOGISTIC_MIN", "LogisticFitError", "krcc", "plcc", "rankdata", "srcc"]

#: the logistic has 4 parameters: with fewer than 5 points it fits anything exactly (or not at all)
LOGISTIC_MIN = 5


def _pair(pred: Sequence[float], mos: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(mos, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise UserError(f"predictions ({x.size}) and MOS ({y.size}) differ in length")
    if x.size < 3:
        raise UserError(f"a correlation needs at least 3 scored images; got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UserError("predictions and MOS must be finite numbers")
    return x, y


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((xc * xc).sum() * (yc * yc).sum()))
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (like ``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    start = 0
    for end in range(1, values.size + 1):
        if end == values.size or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of ranks start+1 .. end
            start = end
    return ranks


def srcc(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Spearman rank-order correlation coefficient."""
    x, y = _pair(pred, mos)
    return _pearson(rankdata(x), rankdata(y))


def krcc(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Kendall's tau-b (O(n²): fine for the few thousand images of an IQA database)."""
    x, y = _pair(pred, mos)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(x.size, k=1)
    concordance = float((dx * dy)[upper].sum())
    tx, ty = float(np.abs(dx[upper]).sum()), float(np.abs(dy[upper]).sum())
    return concordance / float(np.sqrt(tx * ty)) if tx and ty else float("nan")


class LogisticFitError(UserError):
    """``plcc(fit="logistic")`` could not fit the logistic (no convergence); no value is returned."""


def _logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / np.abs(b4))) + b2


def plcc(pred: Sequence[float], mos: Sequence[float], fit: str = "none") -> float:
    """Pearson linear correlation, on raw predictions (``fit="none"``) or after fitting the
    4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` to the MOS.

    Raises ``LogisticFitError`` when the fit does not converge (never a silent fallback to the
    raw value), ``UserError`` with fewer than ``LOGISTIC_MIN`` points, ``MissingDependencyError``
    without SciPy."""
    x, y = _pair(pred, mos)
    if fit == "none":
        return _pearson(x, y)
    if fit != "logistic":
        raise UserError(f"fit must be 'none' or 'logistic'; got {fit!r}")
    try:
        from scipy.optimize import curve_fit
    except ImportError as exc:
        raise MissingDependencyError("plcc(fit='logistic') needs SciPy: pip install scipy") from exc
    if x.size < LOGISTIC_MIN:
        raise UserError(
            f"the 4-parameter logistic fit needs at least {LOGISTIC_MIN} scored images; got {x.size}"
        )
    spread = float(np.std(x)) or 1.0
    start = [float(y.max()), float(y.min()), float(np.mean(x)), spread]
    try:
        with warnings.catch_warnings():
            # a perfect or degenerate fit has no covariance estimate; we only use the parameters
            warnings.simplefilter("ignore")
            params, _ = curve_fit(_logistic4, x, y, p0=start, maxfev=20000)
    except (RuntimeError, ValueError, TypeError) as exc:
        # never fall back silently: a caller that wants the raw PLCC asks for fit="none"
        raise LogisticFitError(f"the 4-parameter logistic fit did not converge ({exc})") from exc
    fitted = _logistic4(x, *params)
    if not np.all(np.isfinite(fitted)):
        raise LogisticFitError("the 4-parameter logistic fit gave non-finite values")
    return _pearson(fitted, y)
