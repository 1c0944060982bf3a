"""The batch scoring runner behind ``grefine score`` (outputs: docs/scoring.md).

The output folder is a run folder (``grefine_kit.runs``): each image's record is appended to
``reports.jsonl`` as soon as it is done (progress per image: ``grefine_kit.progress``), a
rerun skips what is done, and ``results.csv`` or ``results.jsonl`` (one row per input file,
in input order; ``grefine_kit.runner.results``) is rebuilt from the records when the run ends. A
bad image (unreadable, too large, NaN in its map) becomes an error row and the run goes on;
when the indicator raises on a batch, that batch is re-scored one image at a time so one bad
image cannot sink the others. An indicator raising a ``UserError`` that is not an
``ImageError`` (missing weights, bad options) stops the run: that is a setup problem every
image would hit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.engines.base import Engine, Task
from grefine_kit.errors import SetupError, UserError
from grefine_kit.images.loading import FROM_ENV, MaxPixels, resolve_max_pixels
from grefine_kit.indicators.base import Indicator
from grefine_kit.parts.base import as_part
from grefine_kit.progress import RunProgress
from grefine_kit.runner.results import (
    HEAD_COLUMNS,
    RESULTS_NAMES,
    TAIL_COLUMNS,
    Format,
    flatten_details,
    write_results,
)
from grefine_kit.runner.score_work import ScoreWork
from grefine_kit.runs.failures import FailureSummary
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.fingerprint import config_hash, indicator_config, item_fingerprint
from grefine_kit.runs.folder import RunFolder
from grefine_kit.runs.items import Item, make_items
from grefine_kit.runs.layout import output_stems
from grefine_kit.runs.shards import Shard

__all__ = [
    "HEAD_COLUMNS",
    "TAIL_COLUMNS",
    "ScoreSummary",
    "flatten_details",
    "output_stems",
    "score_files",
    "score_items",
    "write_results",
]


@attrs.frozen
class ScoreSummary:
    """What a scoring run did. ``exit_code``: 0 all images ok, 1 some failed."""

    n_ok: int
    n_failed: int
    results_path: Path
    out_dir: Path
    n_skipped: int = 0
    n_redone: int = 0
    redo_reasons: Mapping[str, int] = attrs.field(factory=dict)
    failures: FailureSummary = attrs.field(factory=FailureSummary, eq=False)
    n_other_shards: int = 0

    @property
    def n_total(self) -> int:
        return self.n_ok + self.n_failed + self.n_skipped

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


def score_files(
    paths: Sequence[Path],
    indicator: Indicator,
    out_dir: Path,
    *,
    prompts: Mapping[str, str] | str | None = None,
    fmt: Format = "csv",
    batch_size: int = 8,
    progress: bool | str = True,
    save_maps: bool = True,
    max_pixels: MaxPixels = FROM_ENV,
    resume: bool = True,
    config: Mapping[str, Any] | None = None,
    shard: Shard | None = None,
    engine: Engine | None = None,
) -> ScoreSummary:
    """Score ``paths`` with ``indicator`` and write results into ``out_dir`` (a run folder).

    ``prompts``: one prompt for every image, or a mapping read by ``read_prompts_csv``
    (matched with :class:`~grefine_kit.runner.inputs.PromptIndex`). ``fmt``: ``"csv"`` ->
    ``results.csv``, ``"json"`` -> ``results.jsonl``. ``save_maps``: write
    ``<stem>.heatmap.png`` (overlay, same size as the image) and ``<stem>.map.npy``
    (float32 (H, W), 1 = good) per scored image. ``max_pixels``: as in ``load_image``.
    ``resume``: skip items whose record in ``reports.jsonl`` is ``ok`` with a matching
    fingerprint (the indicator's name and options, plus ``config``: e.g. the recipe's hash).
    ``shard`` / ``engine`` / ``progress``: as in :func:`grefine_kit.runner.refine.refine_items`;
    ``indicator`` may be a picklable zero-argument builder instead (each worker builds its
    own: for engines that run workers in other processes). Raises UserError for bad arguments
    and setup problems; per-image problems become error rows.
    """
    if fmt not in RESULTS_NAMES:
        raise UserError(f"unknown format {fmt!r}; choose csv or json")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch size must be a positive integer; got {batch_size!r}")
    if not paths:
        raise UserError("no images to score")
    # a builder (portable work) does not say: its workers give prompt-less images error records
    if as_part(indicator).needs_prompt and prompts is None:
        # every image would fail the same way: one setup error instead of N error rows
        name = as_part(indicator).name
        raise SetupError(f"indicator {name!r} needs a prompt: give --prompt TEXT or --prompts CSV")
    return score_items(
        make_items(list(paths), prompts),
        indicator,
        out_dir,
        fmt=fmt,
        batch_size=batch_size,
        progress=progress,
        save_maps=save_maps,
        max_pixels=max_pixels,
        resume=resume,
        config=config,
        prompts_given=prompts is not None and not isinstance(prompts, str),
        shard=shard,
        engine=engine,
    )


def score_items(
    items: Sequence[Item],
    indicator: Any,
    out_dir: Path,
    *,
    fmt: Format = "csv",
    batch_size: int = 8,
    progress: bool | str = True,
    save_maps: bool = True,
    max_pixels: MaxPixels = FROM_ENV,
    resume: bool = True,
    config: Mapping[str, Any] | None = None,
    prompts_given: bool = False,
    shard: Shard | None = None,
    engine: Engine | None = None,
) -> ScoreSummary:
    """:func:`score_files` on ready-made items (ids, prompts); ``indicator`` as there."""
    from grefine_kit.engines.local import LocalEngine

    if len({it.id for it in items}) != len(items):
        raise UserError("item ids must be unique within a run")
    # a bad GREFINE_MAX_PIXELS fails once, here, not once per image
    limit = resolve_max_pixels(max_pixels)
    work = ScoreWork(indicator, Path(out_dir), save_maps, limit, prompts_given)
    described = indicator_config(indicator) if not work.portable else _builder_config(indicator)
    cfg = config_hash({**described, **(dict(config) if config is not None else {})})
    stems = output_stems([it.image for it in items], [it.id for it in items])
    pairs = list(zip(items, stems, strict=True))
    mine = shard.select(pairs, [it.id for it in items]) if shard is not None else pairs
    engine = engine if engine is not None else LocalEngine()
    n_ok = n_failed = n_skipped = 0
    redone: Counter[str] = Counter()
    failures = FailureSummary()
    report = RunProgress("score", len(mine), mode=progress)
    with RunFolder.open(out_dir, inputs=[it.image for it in items]) as folder, report.active():
        work.out_dir = folder.path
        results_path = folder.path / RESULTS_NAMES[fmt]
        try:
            todo: list[Task] = []
            for item, stem in mine:
                fp, why, done = _resume_check(folder, item, cfg, save_maps, resume)
                if done:
                    n_skipped += 1
                    continue
                todo.append(
                    Task(item, stem, fp, why if fp is not None else None, why if fp is None else None)
                )
            report.planned(n_skipped)
            for record in engine.run(work, todo, batch_size=batch_size, on_start=report.started):
                fault_point("between-record-and-log")
                folder.append(record)
                ok = record["status"] == "ok"
                n_ok, n_failed = n_ok + ok, n_failed + (not ok)
                if not ok:
                    failures.add(record)
                if record.get("redone"):
                    redone[str(record["redone"])] += 1
                report.item(record)
        finally:
            report.close()
            # the results file is a view of the log, rebuilt whole (never truncated up front);
            # it lists every item with a record, whichever shard wrote it
            ordered = [folder.records[it.id] for it in items if it.id in folder.records]
            write_results(results_path, fmt, ordered)
            fault_point("after-results")
    return ScoreSummary(
        n_ok=n_ok,
        n_failed=n_failed,
        results_path=results_path,
        out_dir=folder.path,
        n_skipped=n_skipped,
        n_redone=sum(redone.values()),
        redo_reasons=dict(redone),
        failures=failures,
        n_other_shards=len(items) - len(mine),
    )


def _builder_config(builder: Any) -> dict[str, Any]:
    """What identifies a portable builder (a ``functools.partial``): its target and arguments."""
    func = getattr(builder, "func", builder)
    return {
        "builder": f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}",
        "args": [repr(a) for a in getattr(builder, "args", ())],
        "keywords": {k: repr(v) for k, v in sorted(getattr(builder, "keywords", {}).items())},
    }


def _resume_check(
    folder: RunFolder, item: Item, cfg: str, save_maps: bool, resume: bool
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """``(fingerprint or None when the file cannot be read, why redone, done)``."""
    old = folder.records.get(item.id)
    try:
        fp = item_fingerprint(
            item.image,
            prompt=item.prompt,
            seed=item.seed,
            config=cfg,
            options={"maps": bool(save_maps)},
            known=old.get("fingerprint") if isinstance(old, dict) else None,
        )
    except OSError as exc:  # unreadable or not a regular file: an error row, never opened again
        return None, f"cannot read: {exc.strerror or exc}", False
    done, why = folder.resume_state(item.id, fp, [])
    if resume and done:
        return fp, None, True
    if why is None and not resume and old is not None:
        why = "resume off (--no-resume)"
    return fp, why, False
