"""``grefine evaluate``: score a rated database with an indicator and correlate with its MOS."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.evaluation.correlation import LOGISTIC_MIN, LogisticFitError, krcc, plcc, srcc
from grefine_kit.evaluation.mos import MosRow
from grefine_kit.parts.base import as_part
from grefine_kit.runner.results import RESULTS_NAMES
from grefine_kit.runner.score import score_files
from grefine_kit.runs.atomic import write_json

__all__ = ["Evaluation", "evaluate"]


@attrs.frozen
class Evaluation:
    """Correlations of one indicator with MOS over the images it could score (``nan`` when undefined)."""

    indicator: str
    n_rated: int
    n_scored: int
    srcc: float
    plcc: float
    plcc_logistic: float | None
    krcc: float
    results_path: Path
    #: the CSV column the MOS came from (``None`` when the rows were given without one)
    mos_column: str | None = None
    #: why a figure is missing (e.g. the logistic fit with fewer than 5 images)
    notes: tuple[str, ...] = ()

    @property
    def plcc_kind(self) -> str:
        """``"fitted"`` when the logistic PLCC exists (the figure IQA papers report), else ``"raw"``."""
        return "fitted" if self.plcc_logistic is not None else "raw"

    @property
    def plcc_reported(self) -> float:
        """The PLCC to quote: the fitted one when it exists, else the raw one (``plcc_kind`` says which)."""
        return self.plcc_logistic if self.plcc_logistic is not None else self.plcc

    @property
    def n_failed(self) -> int:
        return self.n_rated - self.n_scored

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["results_path"] = str(self.results_path)
        data["notes"] = list(self.notes)
        data["n_failed"] = self.n_failed
        data["plcc_kind"] = self.plcc_kind
        data["plcc_reported"] = self.plcc_reported
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def evaluate(
    rows: Sequence[MosRow],
    indicator: Any,
    out_dir: Path,
    *,
    batch_size: int = 8,
    save_maps: bool = False,
    progress: bool | str = True,
    mos_column: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Score every rated image (``results.csv`` in ``out_dir``, as ``grefine score`` writes it), then
    write ``evaluation.json`` with SRCC, PLCC (raw and, with SciPy, after the logistic fit) and KRCC
    over the images that scored. Images that fail are left out of the correlations and counted.
    ``mos_column`` (which column ``rows`` were read from) is recorded in ``evaluation.json``."""
    if not rows:
        raise UserError("no rated images to evaluate")
    paths = [row.image.resolve() for row in rows]
    prompts = {str(p): row.prompt for p, row in zip(paths, rows, strict=True) if row.prompt}
    summary = score_files(
        paths,
        indicator,
        Path(out_dir),
        prompts=prompts or None,
        fmt="csv",
        batch_size=batch_size,
        save_maps=save_maps,
        progress=progress,
        config=config,
    )
    results_path = summary.out_dir / RESULTS_NAMES["csv"]
    with results_path.open(newline="", encoding="utf-8") as f:
        scored = [(r["file"], float(r["score"])) for r in csv.DictReader(f) if r["status"] == "ok"]
    mos_of = {str(p): row.mos for p, row in zip(paths, rows, strict=True)}
    pred = [s for file, s in scored]
    mos = [mos_of[file] for file, _ in scored]
    notes: list[str] = []
    logistic: float | None = None
    if len(pred) < LOGISTIC_MIN:
        notes.append(
            f"no logistic PLCC: the fit needs at least {LOGISTIC_MIN} scored images ({len(pred)} here)"
        )
    else:
        try:
            logistic = plcc(pred, mos, fit="logistic")
        except MissingDependencyError:
            notes.append("no logistic PLCC: it needs SciPy (pip install scipy)")
        except LogisticFitError as exc:
            notes.append(f"no logistic PLCC: {exc}")
    name = as_part(indicator).name
    result = Evaluation(
        indicator=name,
        n_rated=len(rows),
        n_scored=len(scored),
        srcc=srcc(pred, mos),
        plcc=plcc(pred, mos),
        plcc_logistic=logistic,
        krcc=krcc(pred, mos),
        results_path=results_path,
        mos_column=mos_column,
        notes=tuple(notes),
    )
    write_json(Path(out_dir) / "evaluation.json", result.to_json())
    return result
