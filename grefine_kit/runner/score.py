"""The score job behind ``grefine score`` (outputs: docs/scoring.md).

The runner (:func:`grefine_kit.runner.run.run_job`) keeps the run folder: each image's
record is appended to ``reports.jsonl`` as soon as it is done (progress per image:
``grefine_kit.progress``), a rerun skips what is done, and :class:`ScoreJob` rebuilds
``results.csv`` or ``results.jsonl`` (one row per input file, in input order;
``grefine_kit.runner.results``) from the records when the run ends. A bad image
(unreadable, too large, NaN in its map) becomes an error row and the run goes on; when the
indicator raises on a batch, that batch is re-scored one image at a time so one bad image
cannot sink the others. An indicator raising a ``UserError`` that is not an ``ImageError``
(missing weights, bad options) stops the run: that is a setup problem every image would hit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.engines.base import Engine
from grefine_kit.errors import SetupError, UserError
from grefine_kit.images.loading import FROM_ENV, MaxPixels, resolve_max_pixels
from grefine_kit.indicators.base import Indicator
from grefine_kit.parts.base import as_part
from grefine_kit.runner.options import RunOptions
from grefine_kit.runner.results import (
    HEAD_COLUMNS,
    RESULTS_NAMES,
    TAIL_COLUMNS,
    Format,
    flatten_details,
    write_results,
)
from grefine_kit.runner.run import Fingerprints, RunSummary, run_job
from grefine_kit.runner.score_work import IndicatorSpec, ScoreWork
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.fingerprint import config_hash, indicator_config
from grefine_kit.runs.folder import RunFolder
from grefine_kit.runs.items import Item, make_items
from grefine_kit.runs.layout import output_stems
from grefine_kit.runs.shards import Shard

__all__ = [
    "HEAD_COLUMNS",
    "TAIL_COLUMNS",
    "IndicatorSpec",
    "ScoreJob",
    "flatten_details",
    "output_stems",
    "score_files",
    "score_items",
    "write_results",
]

#: images per indicator batch when the run options give none
DEFAULT_BATCH_SIZE = 8


@attrs.frozen
class ScoreJob:
    """Scoring as a :class:`~grefine_kit.runner.run.Job`: ``indicator`` (built once, used by
    the fingerprint and by in-process workers) from ``spec`` (picklable; None when a caller
    hands a built indicator alone: in-process engines only). ``config``: more of what
    identifies the setup in the fingerprints (e.g. the recipe's hash, ``--set`` values);
    ``limit``: the largest image in pixels; ``prompts_given``: prompts came per item."""

    indicator: Indicator
    spec: IndicatorSpec | None
    fmt: Format
    save_maps: bool
    limit: int | None
    config: Mapping[str, Any]
    prompts_given: bool

    @property
    def kind(self) -> str:
        return "score"

    @property
    def fingerprints(self) -> Fingerprints:
        cfg = config_hash({**indicator_config(self.indicator), **self.config})
        return Fingerprints(cfg, None, self.save_maps)

    @property
    def batch_size(self) -> int:
        return DEFAULT_BATCH_SIZE

    def required_outputs(self, stem: str) -> list[str]:
        return []

    def work(self, out_dir: Path) -> ScoreWork:
        return ScoreWork(self.spec, self.indicator, out_dir, self.save_maps, self.limit, self.prompts_given)

    def finish(self, folder: RunFolder, items: Sequence[Item]) -> Path:
        """Rebuild the results file whole from the log (never truncated up front): it lists
        every item with a record, whichever shard wrote it."""
        results_path = folder.path / RESULTS_NAMES[self.fmt]
        write_results(
            results_path, self.fmt, [folder.records[it.id] for it in items if it.id in folder.records]
        )
        fault_point("after-results")
        return results_path


def score_items(
    items: Sequence[Item],
    source: IndicatorSpec | Indicator,
    out_dir: Path,
    options: RunOptions | None = None,
    *,
    indicator: Indicator | None = None,
    fmt: Format = "csv",
    max_pixels: MaxPixels = FROM_ENV,
    config: Mapping[str, Any] | None = None,
    prompts_given: bool = False,
) -> RunSummary:
    """Score ``items`` into the run folder ``out_dir`` with ``source``: an
    :class:`IndicatorSpec` (engines in other processes build from it; ``indicator``: the one
    already built from it, else it is built here, once) or a built indicator (in-process
    engines only). ``options``: as for refine (the batch size defaults to 8). ``fmt``:
    ``"csv"`` -> ``results.csv``, ``"json"`` -> ``results.jsonl``. ``max_pixels``: as in
    ``load_image``. ``config``: more of what identifies the setup in the fingerprints (the
    indicator's name and options always do). ``prompts_given``: the prompts came per item
    (a CSV or manifest; for the error message of an item without one)."""
    if fmt not in RESULTS_NAMES:
        raise UserError(f"unknown format {fmt!r}; choose csv or json")
    options = options if options is not None else RunOptions(save_maps=True)
    # a bad GREFINE_MAX_PIXELS fails once, here, not once per image
    limit = resolve_max_pixels(max_pixels)
    if isinstance(source, IndicatorSpec):
        built, spec = (indicator if indicator is not None else source.build()), source
    else:
        built, spec = source, None
    job = ScoreJob(built, spec, fmt, options.save_maps, limit, dict(config or {}), prompts_given)
    return run_job(items, job, out_dir, options)


def score_files(
    paths: Sequence[Path],
    source: IndicatorSpec | Indicator,
    out_dir: Path,
    *,
    prompts: Mapping[str, str] | str | None = None,
    fmt: Format = "csv",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | str = True,
    save_maps: bool = True,
    max_pixels: MaxPixels = FROM_ENV,
    resume: bool = True,
    config: Mapping[str, Any] | None = None,
    shard: Shard | None = None,
    engine: Engine | None = None,
) -> RunSummary:
    """The keyword form for image files: :func:`score_items` on ``make_items(paths, prompts)``
    (``prompts``: one prompt for every image, or a mapping read by ``read_prompts_csv``,
    matched with :class:`~grefine_kit.runs.inputs.PromptIndex`). ``save_maps``: write
    ``<stem>.heatmap.png`` (overlay, same size as the image) and ``<stem>.map.npy`` (float32
    (H, W), 1 = good) per scored image. An indicator that needs a prompt, with none given,
    is one setup error (not one error row per image). Raises UserError for bad arguments and
    setup problems; per-image problems become error rows."""
    if fmt not in RESULTS_NAMES:
        raise UserError(f"unknown format {fmt!r}; choose csv or json")
    options = RunOptions(save_maps, resume, progress, shard, engine, batch_size)
    if not paths:
        raise UserError("no images to score")
    built = source.build() if isinstance(source, IndicatorSpec) else source
    if as_part(built).needs_prompt and prompts is None:
        # every image would fail the same way: one setup error instead of N error rows
        raise SetupError(
            f"indicator {as_part(built).name!r} needs a prompt: give --prompt TEXT or --prompts CSV"
        )
    return score_items(
        make_items(list(paths), prompts),
        source,
        out_dir,
        options,
        indicator=built,
        fmt=fmt,
        max_pixels=max_pixels,
        config=config,
        prompts_given=prompts is not None and not isinstance(prompts, str),
    )
