"""The batch runner behind ``grefine refine``: many images, resumable, never losing done work.

Per input image ``<stem>`` (see ``grefine_kit.scoring.output_stems``) the output folder gets:

- ``<stem>.png``: the refined image, at exactly the input's size;
- ``<stem>.report.json``: the per-image report (scores, mask area, strength, steps run per
  stage, seed, timings, recipe name and hash, package versions);
- with ``save_maps``: ``<stem>.mask.png`` (white = repainted), ``<stem>.pq.png`` /
  ``<stem>.aq.png`` heatmap overlays and ``<stem>.pq.npy`` / ``<stem>.aq.npy`` raw maps;

and ``reports.jsonl`` gets one line per image, errors included, appended as each image
finishes. With ``resume`` (the default), images whose report already says ``"ok"`` are skipped,
so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from tqdm.auto import tqdm

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.images import load_image, overlay_heatmap, save_map_npy
from grefine_kit.inputs import PromptIndex, make_output_dir
from grefine_kit.roles import ROLES
from grefine_kit.scoring import output_stems

__all__ = ["BatchSummary", "refine_files"]


@attrs.frozen
class BatchSummary:
    """What a refine run did. ``exit_code``: 0 when no image failed, else 1."""

    n_ok: int
    n_failed: int
    n_skipped: int
    out_dir: Path
    reports_path: Path

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


def _already_done(report_path: Path) -> bool:
    try:
        return json.loads(report_path.read_text("utf-8")).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


def _error_message(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", "utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a report that resume would trust


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
    image (unreadable, no prompt, a model error) becomes an error line in ``reports.jsonl``
    and the run goes on.
    """
    if not paths:
        raise UserError("no images to refine")
    out_dir = make_output_dir(out_dir)
    index = PromptIndex(prompts) if isinstance(prompts, Mapping) else None
    reports_path = out_dir / "reports.jsonl"
    n_ok = n_failed = n_skipped = 0
    stems = output_stems(list(paths))
    bar = tqdm(total=len(paths), unit="img", desc="refining", disable=not progress or not sys.stderr.isatty())
    with reports_path.open("a", encoding="utf-8") as log:
        try:
            for path, stem in zip(paths, stems, strict=True):
                report_path = out_dir / f"{stem}.report.json"
                if resume and _already_done(report_path) and (out_dir / f"{stem}.png").exists():
                    n_skipped += 1
                    bar.update(1)
                    continue
                prompt = index.get(path) if index is not None else prompts
                record: dict[str, Any] = {"file": str(path), "output": f"{stem}.png", "prompt": prompt}
                started = time.perf_counter()
                try:
                    if not isinstance(prompt, str):
                        raise UserError(f"{path}: no prompt for this image in the prompts CSV")
                    image = load_image(path)
                    result = refiner.refine(image, prompt, image_id=path.name)
                    result.image.save(out_dir / f"{stem}.png")
                    if save_maps:
                        _save_maps(result, image, out_dir, stem)
                    record.update(status="ok", **dict(result.report))
                    n_ok += 1
                except (KeyboardInterrupt, SystemExit, MissingDependencyError):
                    # missing weights or libraries would fail every image the same way: stop now
                    # (the images already done keep their outputs and report lines)
                    raise
                except Exception as exc:  # one bad image must not sink the batch
                    record.update(status="error", error=_error_message(exc))
                    n_failed += 1
                record["seconds_total"] = round(time.perf_counter() - started, 3)
                _write_json(report_path, record)
                log.write(json.dumps(record, default=str) + "\n")
                log.flush()
                bar.update(1)
                bar.set_postfix(failed=n_failed, refresh=False)
        finally:
            bar.close()
    return BatchSummary(n_ok, n_failed, n_skipped, out_dir, reports_path)


def _save_maps(result: Any, image: Any, out_dir: Path, stem: str) -> None:
    from PIL import Image

    if result.mask is not None:
        Image.fromarray((result.mask.binary * 255).astype("uint8"), "L").save(out_dir / f"{stem}.mask.png")
    for slot in ROLES:
        qmap = result.maps.get(slot.name)
        if qmap is not None and slot.tag:
            overlay_heatmap(image, qmap.map).save(out_dir / f"{stem}.{slot.tag}.png")
            save_map_npy(out_dir / f"{stem}.{slot.tag}.npy", qmap.map)
