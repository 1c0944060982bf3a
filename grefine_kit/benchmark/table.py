"""The benchmark summary in the paper's layout (Tables 2-5, 8), as plain data.

Rows: the original images (the reference), then each recipe. Columns: the metrics, each with
its direction. Per cell: the mean over the images that have a score, its mark among the recipe
rows (``best`` / ``second``), whether it is a *negative optimisation* (worse than the original's
mean beyond the tie tolerance), and the per-image win rate against the original (share of the
images, scored in both rows, where the recipe's image is better; ties and NaN are not wins).
The marking rules are ``grefine_kit.metrics.marking``'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from grefine_kit.benchmark.run import ORIGINAL, BenchmarkResult
from grefine_kit.metrics.base import MetricInfo
from grefine_kit.metrics.marking import compare, rank_marks

__all__ = ["Cell", "Row", "Summary", "summarise"]


@attrs.frozen
class Cell:
    """One recipe x metric value. ``mean`` is NaN when no image has a score."""

    mean: float
    n: int
    mark: str = ""
    negative: bool = False
    outcome: str = "n/a"
    change: float = math.nan
    wins: int = 0
    losses: int = 0
    ties: int = 0

    @property
    def pairs(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        """Wins over the images scored in both rows (NaN when there are none)."""
        return self.wins / self.pairs if self.pairs else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": _num(self.mean),
            "n": self.n,
            "mark": self.mark,
            "negative": self.negative,
            "outcome": self.outcome,
            "change": _num(self.change),
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "win_rate": _num(self.win_rate),
        }


@attrs.frozen
class Row:
    """A table row: the original images or one recipe (with Table 8's indicator / stage facts)."""

    name: str
    cells: tuple[Cell, ...]
    is_original: bool = False
    indicators: str = ""
    stages: str = ""

    @property
    def negatives(self) -> int:
        """How many metrics this recipe made worse than the original images."""
        return sum(c.negative for c in self.cells)

    @property
    def win_rate(self) -> float:
        """Per-image win rate over every metric together (wins / image-metric pairs)."""
        pairs = sum(c.pairs for c in self.cells)
        return sum(c.wins for c in self.cells) / pairs if pairs else math.nan


@attrs.frozen
class Summary:
    """The whole table; ``rows[0]`` is the original images."""

    metrics: tuple[MetricInfo, ...]
    rows: tuple[Row, ...]
    n_images: int
    tolerance: float
    ablation: bool = False

    @property
    def recipes(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if not r.is_original)

    def to_json(self) -> dict[str, Any]:
        return {
            "n_images": self.n_images,
            "tolerance": self.tolerance,
            "tie_rule": "|a - b| <= tolerance * max(1, |a|, |b|) is a tie (not worse)",
            "ablation": self.ablation,
            "metrics": [m.to_json() for m in self.metrics],
            "rows": [
                {
                    "name": r.name,
                    "original": r.is_original,
                    "indicators": r.indicators,
                    "stages": r.stages,
                    "negative_optimisations": None if r.is_original else r.negatives,
                    "win_rate": None if r.is_original else _num(r.win_rate),
                    "cells": {m.name: c.to_json() for m, c in zip(self.metrics, r.cells, strict=True)},
                }
                for r in self.rows
            ],
        }


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _mean(values: Sequence[float]) -> tuple[float, int]:
    finite = [v for v in values if not math.isnan(v)]
    return (math.fsum(finite) / len(finite) if finite else math.nan), len(finite)


def _change(before: float, after: float, lower_better: bool) -> float:
    """Improvement in % of the original's magnitude (positive = better, whatever the direction)."""
    if math.isnan(before) or math.isnan(after):
        return math.nan
    delta = (before - after) if lower_better else (after - before)
    return 100.0 * delta / abs(before) if abs(before) > 1e-12 else math.nan


def summarise(result: BenchmarkResult, *, ablation: bool = False) -> Summary:
    """The paper-layout summary of a benchmark run (marking rules: ``metrics.marking``)."""
    tol = result.tolerance
    original = result.scores[ORIGINAL]
    names = [r.name for r in result.rows]
    columns: list[list[Cell]] = []
    for info in result.metrics:
        ref, ref_n = _mean(original[info.name])
        means = [_mean(result.scores[n][info.name]) for n in names]
        marks = rank_marks([m for m, _ in means], lower_better=info.lower_better, tolerance=tol)
        cells = [Cell(mean=ref, n=ref_n)]
        for n, (mean, count), mark in zip(names, means, marks, strict=True):
            outcome = compare(ref, mean, lower_better=info.lower_better, tolerance=tol)
            tally = {"better": 0, "worse": 0, "tie": 0, "n/a": 0}
            for b, a in zip(original[info.name], result.scores[n][info.name], strict=True):
                tally[compare(b, a, lower_better=info.lower_better, tolerance=tol)] += 1
            cells.append(
                Cell(
                    mean=mean,
                    n=count,
                    mark=mark,
                    negative=outcome == "worse",
                    outcome=outcome,
                    change=_change(ref, mean, info.lower_better),
                    wins=tally["better"],
                    losses=tally["worse"],
                    ties=tally["tie"],
                )
            )
        columns.append(cells)
    by_row = list(zip(*columns, strict=True)) if columns else [() for _ in range(len(names) + 1)]
    rows = [Row(ORIGINAL, tuple(by_row[0]), is_original=True)]
    for i, recipe_row in enumerate(result.rows, start=1):
        rows.append(
            Row(
                recipe_row.name,
                tuple(by_row[i]),
                indicators=recipe_row.indicators,
                stages=recipe_row.stages,
            )
        )
    return Summary(
        metrics=tuple(result.metrics),
        rows=tuple(rows),
        n_images=len(result.dataset.items),
        tolerance=tol,
        ablation=ablation,
    )
