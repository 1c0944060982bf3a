"""Scoring one row of a benchmark (the originals, or one recipe's outputs) with every metric.

:func:`score_row` loads each image only when some metric still has to score it, takes what the
score cache holds (``benchmark.cache``; metrics with ``needs`` are never cached: their inputs
are other files), scores the rest in chunks, and retries a failing chunk image by image so one
bad image costs only its own cell. :func:`contexts_for` builds what full-reference and mask
metrics get per image (``MetricBase.needs``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from tqdm.auto import tqdm

from grefine_kit.benchmark.cache import ScoreCache, metric_key
from grefine_kit.benchmark.dataset import Dataset
from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.metrics.base import Metric, MetricContext, metric_needs, score_with

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
    progress: bool,
    context_of: ContextOf,
) -> tuple[dict[str, list[float]], list[str], int]:
    """``({label: scores}, errors, number of scores reused from the cache)`` for one row."""
    from grefine_kit.images.loading import load_image

    values: dict[str, list[float]] = {m.label: [] for m, _ in built}
    keys = {m.label: metric_key(m.name, m.options) for m, _ in built}
    uncached = {m.label for m, part in built if metric_needs(part)}  # their inputs are other files
    errors: list[str] = []
    reused = 0
    bar = tqdm(
        total=len(files), unit="img", desc=f"scoring {row}", disable=not progress or not sys.stderr.isatty()
    )
    try:
        for start in range(0, len(files), _CHUNK):
            chunk = list(range(start, min(start + _CHUNK, len(files))))
            cached = {
                m.label: {
                    i: v
                    for i in chunk
                    if m.label not in uncached
                    and (v := cache.get(keys[m.label], row, ids[i], files[i])) is not None
                }
                for m, _ in built
            }
            needed = {i for m, _ in built for i in chunk if i not in cached[m.label]}
            images: dict[int, Any] = {}
            for i in sorted(needed):  # load only what some metric still has to score
                try:
                    images[i] = load_image(files[i])
                except UserError as exc:  # a recipe that failed on this image wrote no output
                    errors.append(f"{files[i].name}: {exc}")
            contexts = {i: context_of(i, im) for i, im in images.items()} if uncached else {}
            new: list[tuple[str, str, str, Path, float]] = []
            for spec, metric in built:
                todo = {i: im for i, im in images.items() if i not in cached[spec.label]}
                scored = _score_chunk(spec, metric, todo, prompts, errors, contexts)
                if spec.label not in uncached:
                    new += [(keys[spec.label], row, ids[i], files[i], v) for i, v in scored.items()]
                scored.update(cached[spec.label])
                reused += len(cached[spec.label])
                values[spec.label].extend(scored.get(i, math.nan) for i in chunk)
            cache.put_many(new)
            bar.update(len(chunk))
    finally:
        bar.close()
    return values, errors, reused


def _score_chunk(
    spec: MetricSpec,
    metric: Metric,
    images: Mapping[int, Any],
    prompts: Sequence[str],
    errors: list[str],
    contexts: Mapping[int, MetricContext],
) -> dict[int, float]:
    """Scores by dataset index; one failing image is retried alone so it costs only its own cell.
    An image lacking what the metric needs is not scored: its error names what is missing."""
    needs = sorted(metric_needs(metric))
    if needs:
        ready = {}
        for i, image in images.items():
            try:
                contexts[i].require(needs, spec.label)
                ready[i] = image
            except UserError as exc:
                errors.append(f"{spec.label} on image {i}: {exc}")
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
            errors.append(f"{spec.label} on image {i}: {type(exc).__name__}: {exc}")
    return out
