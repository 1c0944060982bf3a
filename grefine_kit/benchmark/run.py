"""``run_benchmark``: refine a dataset with each recipe, score originals and outputs with each metric.

Layout of ``out_dir``:

- ``<recipe>/``: what ``grefine refine`` writes (``<stem>.png``, reports), reused on a rerun:
  images already refined are skipped (resumable), so only the scoring runs again;
- ``score-cache.jsonl``: every score computed, so a rerun scores only new or changed images and
  metrics (``benchmark.cache``; ``resume=False`` ignores it);
- ``scores.csv``: one line per image and row (``original`` and every recipe), one column per metric;
- ``summary.json`` / ``summary.md`` / ``summary.html``: the table (see ``table`` and ``render``);
- ``chart.png``: each recipe's change per metric against the original images.

The original images are scored first, so missing metric weights stop the run before any
refining; each recipe's outputs are scored right after it refines them.

Full-reference and mask metrics (``MetricBase.needs``) get per image: the refiner's ``input``
(the dataset image), the item's ``reference`` and ``region`` (manifest columns) and the
``refiner_mask`` (the recipe's ``<stem>.mask.png``: maps are saved when a metric needs it). The
``original`` row is the refiner that changes nothing: its input is the image itself and its
mask is empty. An item lacking what a metric needs gets a blank cell and a one-line error.
Those metrics are not cached (their inputs are other files; they are cheap to recompute).

A metric that fails on an image gives NaN there (``n/a`` in the tables), as does an image a
recipe failed to refine; missing weights or libraries stop the run with one clear error
(refined images and computed scores stay on disk).
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.benchmark.cache import CACHE_NAME, ScoreCache
from grefine_kit.benchmark.dataset import Dataset
from grefine_kit.benchmark.scoring import MetricSpec, contexts_for, score_row
from grefine_kit.errors import UserError
from grefine_kit.metrics.base import Metric, MetricInfo, describe, metric_needs
from grefine_kit.metrics.marking import DEFAULT_TOLERANCE
from grefine_kit.parts.roles import ALIGNMENT, COMBINER, PERCEPTUAL, STAGE1, STAGE2
from grefine_kit.progress import log_mode
from grefine_kit.recipes.recipe import PartSpec, Recipe

if TYPE_CHECKING:
    from grefine_kit.engines.base import Engine

__all__ = [
    "ORIGINAL",
    "BenchmarkResult",
    "RecipeRow",
    "ablation_variants",
    "announce_step",
    "run_benchmark",
]

#: the reference row: the images as given
ORIGINAL = "original"


@attrs.frozen
class RecipeRow:
    """A recipe row with the Table 8 facts: which indicators make its mask, which stages run."""

    recipe: Recipe

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def indicators(self) -> str:
        roles = (("PQ", PERCEPTUAL), ("AQ", ALIGNMENT))
        used = [tag for tag, role in roles if self.recipe.part(role)]
        return "+".join(used) or "none"

    @property
    def stages(self) -> str:
        roles = (("1", STAGE1), ("2", STAGE2))
        used = [tag for tag, role in roles if self.recipe.part(role)]
        return ",".join(used) or "none"


@attrs.frozen
class BenchmarkResult:
    """Scores per row (``original`` first, then the recipes) and metric label, aligned with
    ``dataset.items`` (NaN = no score), plus what the refiners and metrics reported."""

    dataset: Dataset
    rows: tuple[RecipeRow, ...]
    metrics: tuple[MetricInfo, ...]
    scores: Mapping[str, Mapping[str, list[float]]]
    errors: Mapping[str, list[str]]
    refine_counts: Mapping[str, Mapping[str, int]]
    out_dir: Path
    tolerance: float = DEFAULT_TOLERANCE
    #: scores reused from ``score-cache.jsonl`` (not recomputed)
    n_cached: int = 0

    @property
    def n_missing(self) -> int:
        """Scores that are NaN (failed refines or metric errors)."""
        return sum(math.isnan(v) for per in self.scores.values() for col in per.values() for v in col)


def ablation_variants(base: Recipe) -> list[Recipe]:
    """Table 8's rows from a full recipe: PQ+AQ/1,2 (itself), AQ/1,2, PQ/1,2, PQ+AQ/1.

    The one-map variants take the matching single-map combiner with its default options."""
    if not all(base.part(role) for role in (PERCEPTUAL, ALIGNMENT, STAGE1, STAGE2)):
        raise UserError(
            f"--ablation needs a recipe with both indicators and both stages; {base.name!r} has "
            f"indicators {RecipeRow(base).indicators}, stages {RecipeRow(base).stages}"
        )

    def variant(suffix: str, drop: str, combiner: str | None = None) -> Recipe:
        parts = {role: spec for role, spec in base.parts.items() if role != drop}
        if combiner is not None:
            parts[COMBINER] = PartSpec(COMBINER, combiner)
        return attrs.evolve(base, name=f"{base.name}-{suffix}", parts=parts)

    # the one-map combiners are registered under their map role's name
    return [
        base,
        variant(ALIGNMENT, drop=PERCEPTUAL, combiner=ALIGNMENT),
        variant(PERCEPTUAL, drop=ALIGNMENT, combiner=PERCEPTUAL),
        variant(STAGE1, drop=STAGE2),
    ]


def _with_runtime(spec: MetricSpec, registry: Any, **runtime: str | None) -> MetricSpec:
    accepted = registry.option_names("metric", spec.name)
    extra = {
        k: v
        for k, v in runtime.items()
        if v is not None and k not in spec.options and accepted is not None and k in accepted
    }
    return attrs.evolve(spec, options={**spec.options, **extra}) if extra else spec


def _folder_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "recipe"
    if safe == ORIGINAL:
        raise UserError(f"a recipe may not be named {ORIGINAL!r}: that is the reference row")
    return safe


def reads_prompts(
    recipes: Sequence[str | Recipe], metrics: Sequence[MetricSpec], *, ablation: bool = False
) -> bool:
    """True when any recipe (its Table 8 variants with ``ablation``) or metric of a benchmark
    reads prompts (``PartBase.needs_prompt``: AQ-Map, the diffusion stages, CLIPScore...). Builds
    the parts, which loads nothing; a bad name fails here as it would in :func:`run_benchmark`."""
    from grefine_kit.parts.base import as_part
    from grefine_kit.parts.registry import get_registry

    loaded = [r if isinstance(r, Recipe) else Recipe.load(r) for r in recipes]
    if ablation and len(loaded) == 1:
        loaded = ablation_variants(loaded[0])
    if any(recipe.build().needs_prompt for recipe in loaded):
        return True
    registry = get_registry()
    built = (registry.create_as("metric", m.name, m.options, Metric) for m in metrics)
    return any(as_part(metric).needs_prompt for metric in built)


def run_benchmark(
    recipes: Sequence[str | Recipe],
    dataset: Dataset,
    metrics: Sequence[MetricSpec],
    out_dir: str | Path,
    *,
    ablation: bool = False,
    resume: bool = True,
    device: str | None = None,
    dtype: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: bool | str = True,
    engine: Engine | None = None,
    batch_size: int | None = None,
) -> BenchmarkResult:
    """Refine ``dataset`` with every recipe into ``out_dir/<recipe>/``, score the originals and the
    outputs with every metric, write ``scores.csv`` and return the scores (see ``table``).

    ``ablation``: ``recipes`` must be one full recipe; its Table 8 variants are run instead.
    ``progress``: a :data:`~grefine_kit.progress.LogFormat` mode (``True``: ``"bar"``, ``False``:
    ``"off"``) for the refine and score steps, each announced by :func:`announce_step`.
    ``engine``: who refines (None: the local engine; engines in other processes rebuild each
    recipe from its spec), in batches of ``batch_size`` (None: each recipe's
    ``refiner.batch_size``); the scoring runs in this process."""
    from grefine_kit.parts.registry import get_registry
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runner.refine import make_items, refine_items
    from grefine_kit.runs.inputs import make_output_dir
    from grefine_kit.runs.layout import output_stems

    mode = log_mode(progress)
    if not recipes:
        raise UserError("no recipes to benchmark")
    if not metrics:
        raise UserError("no metrics to score with")
    loaded = [r if isinstance(r, Recipe) else Recipe.load(r) for r in recipes]
    if ablation:
        if len(loaded) != 1:
            raise UserError("--ablation takes one base recipe (its variants are made from it)")
        loaded = ablation_variants(loaded[0])
    rows = tuple(RecipeRow(r) for r in loaded)
    folders = [_folder_name(r.name) for r in rows]
    if len(set(folders)) != len(folders):
        raise UserError(f"two recipes share a name: {', '.join(folders)}")
    labels = [m.label for m in metrics]
    if len(set(labels)) != len(labels):
        raise UserError(f"two metric columns share a name: {', '.join(labels)}")
    target = Path(out_dir).resolve()
    if any(p.resolve().parent == target for p in dataset.paths):
        # chart.png and the summaries would be read back as input images on the next run
        raise UserError(f"--out {out_dir} holds the benchmark's input images: choose another folder")
    out = make_output_dir(out_dir)
    for name in (CACHE_NAME, *folders):  # appended to / used as run folders: never through a link
        if (out / name).is_symlink():
            raise UserError(
                f"{out / name} is a symbolic link; grefine never writes through links in an output "
                "folder: remove it, or choose another --out"
            )
    registry = get_registry()
    # --device/--dtype reach the metrics that take them, unless their own options say otherwise
    metrics = [_with_runtime(m, registry, device=device, dtype=dtype) for m in metrics]
    # build every metric first: a bad name or option fails before any refining starts
    built = [(m, registry.create_as("metric", m.name, m.options, Metric)) for m in metrics]
    infos = tuple(
        describe(part, name=m.label, licence=registry.get("metric", m.name).licence) for m, part in built
    )
    # and every refiner (cheap, no weights load): a bad recipe fails before any work too
    runtime = [row.recipe.with_runtime(device=device, dtype=dtype) for row in rows]
    refiners = [recipe.build() for recipe in runtime]
    scores: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, list[str]] = {}
    prompts = [item.prompt for item in dataset.items]
    ids = [item.id for item in dataset.items]
    cache = ScoreCache(out / CACHE_NAME, enabled=resume)
    stems = output_stems(dataset.paths)
    # the originals first: every metric loads its weights now, so a missing one stops the run
    # before hours of refining rather than after
    needs = frozenset().union(*(metric_needs(part) for _, part in built))
    what = f"scoring {len(ids)} image(s) with {len(built)} metric(s)"
    announce_step(mode, f"{ORIGINAL}: {what}", step="score", row=ORIGINAL, index=0, rows=len(rows))
    scores[ORIGINAL], errors[ORIGINAL], reused = score_row(
        ORIGINAL,
        dataset.paths,
        ids,
        prompts,
        built,
        cache,
        mode,
        contexts_for(dataset, needs, None, stems=[]),
        loads_models=True,
    )
    counts: dict[str, dict[str, int]] = {}
    # the refiner's items carry each dataset item's reference and region too (the region-map
    # indicator reads the region: the oracle arm of a planted-defect benchmark)
    run_items = [
        attrs.evolve(it, reference=d.reference, region=d.region)
        for it, d in zip(make_items(dataset.paths, dataset.prompts), dataset.items, strict=True)
    ]
    for k, (row, folder, recipe, refiner) in enumerate(zip(rows, folders, runtime, refiners, strict=True), 1):
        where: dict[str, str | int] = {"row": row.name, "index": k, "rows": len(rows)}
        refining = f"[{k}/{len(rows)}] {row.name}: refining into {out / folder}"
        announce_step(mode, refining, step="refine", **where)
        options = RunOptions(
            save_maps="refiner_mask" in needs,  # the mask file mask metrics read
            resume=resume,
            progress=mode,
            engine=engine,
            batch_size=batch_size,
        )
        summary = refine_items(run_items, recipe, out / folder, options, refiner=refiner)
        counts[row.name] = {"ok": summary.n_ok, "failed": summary.n_failed, "skipped": summary.n_skipped}
        files = [out / folder / f"{stem}.png" for stem in stems]
        announce_step(mode, f"[{k}/{len(rows)}] {row.name}: {what}", step="score", **where)
        scores[row.name], errors[row.name], n = score_row(
            row.name,
            files,
            ids,
            prompts,
            built,
            cache,
            mode,
            contexts_for(dataset, needs, out / folder, stems),
        )
        reused += n
    result = BenchmarkResult(
        dataset=dataset,
        rows=rows,
        metrics=infos,
        scores=scores,
        errors=errors,
        refine_counts=counts,
        out_dir=out,
        tolerance=tolerance,
        n_cached=reused,
    )
    write_scores_csv(result, out / "scores.csv")
    return result


def announce_step(mode: str, line: str, **event: str | int) -> None:
    """A benchmark step begins (``step``: ``refine`` or ``score``; ``row``: ``original`` or a
    recipe, ``index`` of ``rows`` recipes, 0 for the originals): ``line`` on stderr, or with
    ``jsonl`` ``{"event": "step", **event}`` on stdout; nothing with ``off``."""
    if mode == "jsonl":
        print(json.dumps({"event": "step", **event}, ensure_ascii=False), flush=True)
    elif mode != "off":
        print(line, file=sys.stderr, flush=True)


def write_scores_csv(result: BenchmarkResult, path: Path) -> None:
    """``id,image,prompt,row,<metric>...`` for every image and row (empty cell = no score)."""
    import io

    from grefine_kit.runs.atomic import write_text

    labels = [m.name for m in result.metrics]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "image", "prompt", "row", *labels])
    for row_name, per in result.scores.items():
        for i, item in enumerate(result.dataset.items):
            cells = ["" if math.isnan(per[m][i]) else repr(per[m][i]) for m in labels]
            writer.writerow([item.id, str(item.path), item.prompt, row_name, *cells])
    write_text(path, buffer.getvalue())
