"""The refine job behind ``grefine refine``: many images, resumable, never losing done work.

Per item with output stem ``<stem>`` (``grefine_kit.runs.layout``) the output folder gets:

- ``<stem>.png``: the refined image, at exactly the input's size;
- ``<stem>.report.json``: the per-image report (scores, mask area, strength, steps run per
  stage, seed, timings, recipe name and hash, package versions, the item's fingerprint);
- with ``save_maps``: ``<stem>.mask.png`` (white = repainted), ``<stem>.pq.heatmap.png`` /
  ``<stem>.aq.heatmap.png`` overlays and ``<stem>.pq.map.npy`` / ``<stem>.aq.map.npy`` raw maps;

and ``reports.jsonl`` gets one record per item, errors included, appended atomically as each
item finishes. The runner (:func:`grefine_kit.runner.run.run_job`) plans, resumes, shards and
counts; :class:`RefineJob` supplies what is particular to refining: the fingerprint (recipe
hash, stage files, seed, region prompts, maps), the outputs a done item has, and the
:class:`~grefine_kit.runner.refine_work.RefineWork` its workers come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from grefine_kit.engines.base import Engine
from grefine_kit.errors import UserError
from grefine_kit.recipes.recipe import Recipe
from grefine_kit.runner.options import RunOptions
from grefine_kit.runner.refine_work import BatchRefiner, RefineWork, stage_parts
from grefine_kit.runner.run import Fingerprints, RunSummary, run_job
from grefine_kit.runs.fingerprint import config_hash
from grefine_kit.runs.folder import RunFolder
from grefine_kit.runs.items import Item, make_items
from grefine_kit.runs.layout import OutputNames
from grefine_kit.runs.shards import Shard

__all__ = ["RefineJob", "make_items", "refine_files", "refine_items", "refiner_config"]


def refiner_config(refiner: BatchRefiner) -> str:
    """The configuration part of every item's fingerprint: the recipe hash, plus the SHA-256 of
    the local files the stages read beyond their models (LoRAs, a VAE), when any do."""
    from grefine_kit.stages.controls import stage_file_digests

    base = refiner.recipe_hash or config_hash({"refiner": type(refiner).__qualname__})
    files = stage_file_digests(stage_parts(refiner))
    return config_hash({"config": base, "files": files}) if files else base


@attrs.frozen
class RefineJob:
    """Refining as a :class:`~grefine_kit.runner.run.Job`: ``refiner`` (built once, here, and
    used by the fingerprint and by in-process workers) from ``recipe`` (its picklable spec;
    None when a caller hands a built refiner alone: in-process engines only)."""

    refiner: BatchRefiner
    recipe: Recipe | None
    save_maps: bool

    @classmethod
    def of(
        cls, source: Recipe | BatchRefiner, save_maps: bool, refiner: BatchRefiner | None = None
    ) -> RefineJob:
        """The job for ``source``: a ``Recipe`` (built here unless ``refiner``, already built
        from it, is given) or a built refiner."""
        if isinstance(source, Recipe):
            return cls(refiner if refiner is not None else source.build(), source, save_maps)
        return cls(source, None, save_maps)

    @property
    def kind(self) -> str:
        return "refine"

    @property
    def fingerprints(self) -> Fingerprints:
        return Fingerprints(
            refiner_config(self.refiner), self.refiner.seed, self.save_maps, region_prompts=True
        )

    @property
    def batch_size(self) -> int:
        return self.refiner.batch_size

    def required_outputs(self, stem: str) -> list[str]:
        names = OutputNames(stem)
        return [names.image, names.report]

    def work(self, out_dir: Path) -> RefineWork:
        return RefineWork(self.recipe, self.refiner, out_dir, self.save_maps)

    def finish(self, folder: RunFolder, items: Sequence[Item]) -> Path | None:
        return None  # every record and output is written as its item finishes


def refine_items(
    items: Sequence[Item],
    source: Recipe | BatchRefiner,
    out_dir: Path,
    options: RunOptions | None = None,
    *,
    refiner: BatchRefiner | None = None,
) -> RunSummary:
    """Refine ``items`` into the run folder ``out_dir`` (module docstring) with ``source``: a
    ``Recipe`` (engines in other processes rebuild the Refiner from it; ``refiner``: the one
    already built from it, else it is built here, once) or a built refiner
    (:class:`~grefine_kit.runner.refine_work.BatchRefiner`; in-process engines only).

    ``options``: save_maps, resume, progress, shard, engine, batch size (default: the
    refiner's ``batch_size``). A failing image (unreadable, no prompt, a model error, NaN
    output) becomes an error record and the run goes on; a setup problem (missing weights, a
    broken checkpoint, an unwritable folder) stops it, keeping finished items."""
    if not items:
        raise UserError("no images to refine")
    options = options if options is not None else RunOptions()
    return run_job(items, RefineJob.of(source, options.save_maps, refiner), out_dir, options)


def refine_files(
    paths: Sequence[Path],
    source: Recipe | BatchRefiner,
    out_dir: Path,
    *,
    prompts: Mapping[str, str] | str,
    save_maps: bool = False,
    resume: bool = True,
    progress: bool | str = True,
    shard: Shard | None = None,
    engine: Engine | None = None,
    batch_size: int | None = None,
) -> RunSummary:
    """The keyword form for image files: :func:`refine_items` on ``make_items(paths, prompts)``
    (``prompts``: one prompt for all images or a mapping from ``read_prompts_csv``; item ids
    are the paths relative to the inputs' common folder); the other keywords are the
    :class:`~grefine_kit.runner.options.RunOptions`."""
    if not paths:
        raise UserError("no images to refine")
    options = RunOptions(save_maps, resume, progress, shard, engine, batch_size)
    return refine_items(make_items(paths, prompts), source, out_dir, options)
