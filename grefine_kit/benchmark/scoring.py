"""Scoring one row of a benchmark (the originals, or one recipe's outputs) with every metric.

:func:`score_row` takes what the score cache holds (``benchmark.cache``; metrics with ``needs``
are never cached: their inputs are other files), loads only the images some metric still has
to score, scores them in chunks (progress per image) and retries a failing chunk image by
image, so one bad image costs only its own cell. :func:`contexts_for` builds what
full-reference and mask metrics get per image (``MetricBase.needs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from grefine_kit.benchmark.cache import ScoreCache, metric_key
from grefine_kit.benchmark.dataset import Dataset
from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.metrics.base import Metric, MetricContext, metric_needs, score_with
from grefine_kit.progress import RunProgress

__all__ = ["ContextOf", "MetricSpec", "contexts_for", "score_row"]

#: images loaded and scored at a time
_CHUNK = 16


@attrs.frozen
class MetricSpec:
    """A metric column: ``label`` (the column name), registry ``name`` and its ``options``."""

    label: str
    name: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


ContextOf = Callable[[int, Any], MetricContext]


def contexts_for(
    dataset: Dataset, needs: frozenset[str], folder: Path | None, stems: Sequence[str]
) -> ContextOf:
    """What the metrics with needs get for image ``i`` of a row: ``folder`` None = the
    ``original`` row (input = the image, empty refiner mask), else a recipe's run folder."""
    from grefine_kit.metrics.context import build_context
    from grefine_kit.runs.layout import OutputNames

    def context_of(i: int, image: Any) -> MetricContext:
        item = dataset.items[i]
        if folder is None:
            mask: Path | np.ndarray = np.zeros((image.height, image.width), bool)
        else:
            mask = folder / OutputNames(stems[i]).mask
        context = build_context(
            needs,
            image.size,
            input_image=image if folder is None else item.path,
            reference=item.reference,
            region=item.region,
            refiner_mask=mask,
        )
        if "refiner_mask" in needs and isinstance(mask, Path) and not mask.is_file():
            # refined before a metric asked for masks (a resumed run): say how to get them
            problems = {
                **context.problems,
                "refiner_mask": f"no refiner mask {mask.name} (rerun into a new --out)",
            }
            context = attrs.evolve(context, problems=problems)
        return context

    return context_of


def score_row(
    row: str,
    files: Sequence[Path],
    ids: Sequence[str],
    prompts: Sequence[str],
    built: Sequence[tuple[MetricSpec, Metric]],
    cache: ScoreCache,
    progress: bool | str,
    context_of: ContextOf,
    *,
    loads_models: bool = False,
) -> tuple[dict[str, list[float]], list[str], int]:
    """``({label: scores}, errors, number of scores reused from the cache)`` for one row.

    Progress shows on a :class:`~grefine_kit.progress.RunProgress` of kind ``score`` in mode
    ``progress`` (``grefine_kit.progress``), one item per image: an image every metric has a
    cached score for counts as already done; one that some metric could not score is an error
    item (its messages). ``loads_models``: the metrics load their weights during this row."""
    from grefine_kit.images.loading import load_image

    keys = {m.label: metric_key(m.name, m.options) for m, _ in built}
    uncached = {m.label for m, part in built if metric_needs(part)}  # their inputs are other files
    values: dict[str, dict[int, float]] = {
        m.label: {
            i: v
            for i in range(len(files))
            if m.label not in uncached and (v := cache.get(keys[m.label], row, ids[i], files[i])) is not None
        }
        for m, _ in built
    }
    reused = sum(len(v) for v in values.values())
    todo = [i for i in range(len(files)) if any(i not in values[m.label] for m, _ in built)]
    problems: list[tuple[int, str]] = []
    report = RunProgress("score", len(files), mode=progress)
    try:
        report.planned(len(files) - len(todo), loading=loads_models)
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            first_problem = len(problems)  # this chunk's problems are appended after it
            images: dict[int, Any] = {}
            for i in chunk:
                try:
                    images[i] = load_image(files[i])
                except UserError as exc:  # a recipe that failed on this image wrote no output
                    problems.append((i, str(exc)))  # the message names the file
            contexts = {i: context_of(i, im) for i, im in images.items()} if uncached else {}
            new: list[tuple[str, str, str, Path, float]] = []
            for spec, metric in built:
                wanted = {i: im for i, im in images.items() if i not in values[spec.label]}
                scored = _score_chunk(spec, metric, wanted, prompts, problems, contexts)
                if spec.label not in uncached:
                    new += [(keys[spec.label], row, ids[i], files[i], v) for i, v in scored.items()]
                values[spec.label].update(scored)
            cache.put_many(new)
            for i in chunk:
                said = [message for j, message in problems[first_problem:] if j == i]
                record = {"id": ids[i], "file": str(files[i]), "status": "error" if said else "ok"}
                report.item(record | ({"error": "; ".join(said)} if said else {}))
    finally:
        report.close()
    table = {label: [got.get(i, math.nan) for i in range(len(files))] for label, got in values.items()}
    return table, [message for _, message in problems], reused


def _score_chunk(
    spec: MetricSpec,
    metric: Metric,
    images: Mapping[int, Any],
    prompts: Sequence[str],
    errors: list[tuple[int, str]],
    contexts: Mapping[int, MetricContext],
) -> dict[int, float]:
    """Scores by dataset index; one failing image is retried alone so it costs only its own cell
    (``errors`` gets ``(index, message)``). An image lacking what the metric needs is not
    scored: its error names what is missing."""
    needs = sorted(metric_needs(metric))
    if needs:
        ready = {}
        for i, image in images.items():
            try:
                contexts[i].require(needs, spec.label)
                ready[i] = image
            except UserError as exc:
                errors.append((i, f"{spec.label} on image {i}: {exc}"))
        images = ready
    if not images:
        return {}
    keys = list(images)

    def call(indices: list[int]) -> list[float]:
        texts = [prompts[i] for i in indices] if metric.needs_prompt else None
        extra = [contexts[i] for i in indices] if needs else None
        got = score_with(metric, [images[i] for i in indices], texts, extra)
        if len(got) != len(indices):
            raise RuntimeError(f"returned {len(got)} scores for {len(indices)} images")
        return [float(v) for v in got]

    try:
        return dict(zip(keys, call(keys), strict=True))
    except MissingDependencyError:
        raise  # every image would fail the same way: stop with the message
    except Exception:
        pass
    out: dict[int, float] = {}
    for i in keys:
        try:
            out[i] = call([i])[0]
        except MissingDependencyError:
            raise
        except Exception as exc:  # one image must not sink the table
            errors.append((i, f"{spec.label} on image {i}: {type(exc).__name__}: {exc}"))
    return out
