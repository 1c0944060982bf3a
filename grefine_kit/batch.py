"""The batch runner behind ``grefine refine``: many images, resumable, never losing done work.

Per item with output stem ``<stem>`` (``grefine_kit.runs.layout``) the output folder gets:

- ``<stem>.png``: the refined image, at exactly the input's size;
- ``<stem>.report.json``: the per-image report (scores, mask area, strength, steps run per
  stage, seed, timings, recipe name and hash, package versions, the item's fingerprint);
- with ``maps``: ``<stem>.mask.png`` (white = repainted), ``<stem>.pq.heatmap.png`` /
  ``<stem>.aq.heatmap.png`` overlays and ``<stem>.pq.map.npy`` / ``<stem>.aq.map.npy`` raw maps;

and ``reports.jsonl`` gets one record per item, errors included, appended atomically as each
item finishes. The folder is a :class:`~grefine_kit.runs.folder.RunFolder`: locked, never an
input folder, every file written by temp + rename. With ``resume`` (the default) an item is
skipped only when its last record says ``ok``, its fingerprint (input file, prompt, seed,
recipe, output options) matches and its outputs exist; anything else is redone and the new
record's ``redone`` says why.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import ImageError, UserError, error_message
from grefine_kit.images import load_image, overlay_heatmap
from grefine_kit.roles import ROLES
from grefine_kit.runs import atomic
from grefine_kit.runs.failures import FailureSummary
from grefine_kit.runs.faults import fault_point
from grefine_kit.runs.fingerprint import config_hash, item_fingerprint
from grefine_kit.runs.folder import RunFolder
from grefine_kit.runs.items import Item, display_path, make_items
from grefine_kit.runs.layout import OutputNames, output_stems
from grefine_kit.runs.numeric import check_finite, check_quality_map

__all__ = ["BatchSummary", "make_items", "refine_files", "refine_items"]


@attrs.frozen
class BatchSummary:
    """What a refine run did. ``exit_code``: 0 when no image failed, else 1.

    ``n_redone``: items redone although a record existed (``redo_reasons``: why, counted);
    ``failures``: the failed records grouped by reason."""

    n_ok: int
    n_failed: int
    n_skipped: int
    out_dir: Path
    reports_path: Path
    n_redone: int = 0
    redo_reasons: Mapping[str, int] = attrs.field(factory=dict)
    failures: FailureSummary = attrs.field(factory=FailureSummary, eq=False)

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


def refine_files(
    paths: Sequence[Path],
    refiner: Any,
    out_dir: Path,
    *,
    prompts: Mapping[str, str] | str,
    save_maps: bool = False,
    resume: bool = True,
    progress: bool = True,
) -> BatchSummary:
    """Refine ``paths`` with ``refiner`` (a ``grefine_kit.pipeline.Refiner``) into ``out_dir``.

    ``prompts`` is one prompt for all images or a mapping from ``read_prompts_csv``. A failing
    image (unreadable, no prompt, a model error, NaN output) becomes an error record and the
    run goes on; a setup problem (``SetupError``/``UserError`` other than a bad image: missing
    weights, a broken checkpoint, an unwritable folder) stops it, keeping finished items.
    """
    if not paths:
        raise UserError("no images to refine")
    return refine_items(
        make_items(paths, prompts), refiner, out_dir, save_maps=save_maps, resume=resume, progress=progress
    )


def _config(refiner: Any) -> str:
    recipe_hash = getattr(refiner, "recipe_hash", "") or ""
    return recipe_hash or config_hash({"refiner": type(refiner).__qualname__})


def refine_items(
    items: Sequence[Item],
    refiner: Any,
    out_dir: Path,
    *,
    save_maps: bool = False,
    resume: bool = True,
    progress: bool = True,
) -> BatchSummary:
    """Refine ``items`` into the run folder ``out_dir`` (see the module docstring)."""
    from tqdm.auto import tqdm

    if not items:
        raise UserError("no images to refine")
    if len({it.id for it in items}) != len(items):
        raise UserError("item ids must be unique within a run")
    stems = output_stems([it.image for it in items])
    config = _config(refiner)
    n_ok = n_failed = n_skipped = 0
    redone: Counter[str] = Counter()
    failures = FailureSummary()
    bar = tqdm(total=len(items), unit="img", desc="refining", disable=not progress or not sys.stderr.isatty())
    with RunFolder.open(out_dir, inputs=[it.image for it in items]) as folder:
        try:
            for item, stem in zip(items, stems, strict=True):
                fault_point("before-item")
                names = OutputNames(stem)
                record = _refine_one(folder, item, names, refiner, config, save_maps, resume)
                if record is None:
                    n_skipped += 1
                else:
                    if record.get("redone"):
                        redone[str(record["redone"])] += 1
                    if record["status"] == "ok":
                        n_ok += 1
                    else:
                        n_failed += 1
                        failures.add(record)
                bar.update(1)
                bar.set_postfix(failed=n_failed, refresh=False)
        finally:
            bar.close()
    return BatchSummary(
        n_ok, n_failed, n_skipped, folder.path, folder.log_path, sum(redone.values()), dict(redone), failures
    )


def _refine_one(
    folder: RunFolder,
    item: Item,
    names: OutputNames,
    refiner: Any,
    config: str,
    save_maps: bool,
    resume: bool,
) -> dict[str, Any] | None:
    """Do one item; None when it was already done. Writes outputs, report and log line."""
    seed = item.seed if item.seed is not None else getattr(refiner, "seed", None)
    outputs = [names.image, names.report]
    record: dict[str, Any] = {
        "id": item.id,
        "file": display_path(item.image),
        "output": names.image,
        "prompt": item.prompt,
    }
    started = time.perf_counter()
    old = folder.records.get(item.id)
    try:
        fingerprint = item_fingerprint(
            item.image,
            prompt=item.prompt,
            seed=seed,
            config=config,
            options={"maps": bool(save_maps)},
            known=old.get("fingerprint") if isinstance(old, dict) else None,
        )
    except OSError as exc:
        fingerprint = None
        record.update(
            status="error", error=f"{display_path(item.image)}: cannot read ({exc.strerror or exc})"
        )
    if fingerprint is not None:
        done, why = folder.resume_state(item.id, fingerprint, outputs)
        if resume and done:
            return None
        if why is not None or (not resume and old is not None):
            record["redone"] = why or "--no-resume"
        record["fingerprint"] = fingerprint
        try:
            if not isinstance(item.prompt, str):
                raise ImageError(f"{display_path(item.image)}: no prompt for this image in the prompts CSV")
            image = load_image(item.image)
            # an item's own seed replaces the recipe seed: derive_seed(item seed, item id)
            extra = {"seed": item.seed} if item.seed is not None else {}
            result = refiner.refine(image, item.prompt, image_id=item.id, **extra)
            for role, qmap in result.maps.items():
                check_quality_map(qmap, role)
            written = _write_outputs(folder.path, names, result, image, save_maps)
            record.update(status="ok", **dict(result.report))
            record["outputs"] = [names.image, names.report, *written]
        except (KeyboardInterrupt, SystemExit):
            raise
        except UserError as exc:
            if not isinstance(exc, ImageError):
                # missing weights, a broken checkpoint, a full disk: every item would fail the
                # same way, so stop now (finished items keep their outputs and records)
                raise
            record.update(status="error", error=error_message(exc))
        except Exception as exc:  # one bad image must not sink the batch
            record.update(status="error", error=error_message(exc))
    record["seconds_total"] = round(time.perf_counter() - started, 3)
    atomic.write_json(folder.path / names.report, record)
    fault_point("between-record-and-log")
    folder.append(record)
    return record


def _write_outputs(out: Path, names: OutputNames, result: Any, image: Any, save_maps: bool) -> list[str]:
    """Write the refined image (and maps); returns the map files written."""
    import numpy as np

    check_finite(np.asarray(result.image), "refined image")
    atomic.write_png(out / names.image, result.image)
    written: list[str] = []
    if save_maps:
        from PIL import Image

        if result.mask is not None:
            mask = Image.fromarray((result.mask.binary * 255).astype("uint8"), "L")
            atomic.write_png(out / names.mask, mask)
            written.append(names.mask)
        for slot in ROLES:
            qmap = result.maps.get(slot.name)
            if qmap is not None and slot.tag:
                heatmap = overlay_heatmap(image, qmap.map, legend=True)
                atomic.write_png(out / names.heatmap(slot.tag), heatmap, compress_level=3)
                atomic.write_npy(out / names.raw_map(slot.tag), np.asarray(qmap.map, dtype=np.float32))
                written += [names.heatmap(slot.tag), names.raw_map(slot.tag)]
    fault_point("after-output-write")
    return written
