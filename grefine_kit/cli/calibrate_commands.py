"""``grefine calibrate``: fit the mask threshold, ``a_bound`` and ``beta`` to images with MOS."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grefine_kit.cli.app import EXIT_FAILURES, EXIT_OK, cli, device_option, dtype_option, user_errors
from grefine_kit.cli.progress_options import log_format_option

if TYPE_CHECKING:
    import numpy as np

    from grefine_kit.indicators.aq_map import AQMap

WORKING_SIDE = 64  # maps are compared at this shorter side: the areas are fractions, 16-px patches


def _small(array: np.ndarray, side: int = WORKING_SIDE) -> np.ndarray:
    """A ``(H, W)`` float map at a shorter side of ``side`` px (bilinear)."""
    import numpy as np
    from PIL import Image

    h, w = array.shape
    f = min(1.0, side / min(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if size == (w, h):
        return np.asarray(array, np.float32)
    picture = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), "F")
    resized = picture.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized, np.float32)


def collect_items(
    rows: Any, recipe: Any, device: str | None, dtype: str | None, progress: bool | str = True
) -> tuple[list[Any], int]:
    """Score every rated image with the recipe's indicators; ``(items, images that failed)``.
    ``progress``: a :class:`~grefine_kit.progress.RunProgress` mode, one item per image."""
    from grefine_kit.api import build_indicator
    from grefine_kit.images.loading import load_image
    from grefine_kit.indicators.aq_map import AQMap
    from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL
    from grefine_kit.progress import RunProgress

    perceptual, alignment = recipe.part(PERCEPTUAL), recipe.part(ALIGNMENT)
    if perceptual is None and alignment is None:
        from grefine_kit.errors import UserError

        raise UserError(f"recipe {recipe.name!r} has no perceptual or alignment indicator to calibrate")
    pq = build_indicator(perceptual.part, recipe=recipe, device=device, dtype=dtype) if perceptual else None
    aq: AQMap | None = None
    if alignment is not None:
        built = build_indicator(alignment.part, recipe=recipe, device=device, dtype=dtype)
        # only AQ-Map's own phrase numbers can be refitted; its noun maps are kept for the fit
        if isinstance(built, AQMap) and not built.reference_compat:
            built.keep_maps = True
            aq = built
    items, failed = [], 0
    report = RunProgress("calibrate", len(rows), mode=progress)
    report.planned(0)
    try:
        for row in rows:
            record = {"id": Path(row.image).stem, "file": str(row.image), "status": "ok"}
            try:
                image = load_image(row.image)
            except Exception as exc:  # an unreadable image is counted, as evaluate counts it
                failed += 1
                report.item(record | {"status": "error", "error": str(exc)})
                continue
            items.append(_item(row, image, pq, aq))
            report.item(record)
    finally:
        report.close()
    return items, failed


def _item(row: Any, image: Any, pq: Any, aq: AQMap | None) -> Any:
    """One rated image's calibration item: PQ-Map's deficiency map and AQ-Map's phrase numbers."""
    import numpy as np

    from grefine_kit.evaluation.calibration import CalibrationItem

    deficiency = None if pq is None else _small(1.0 - pq.score([image])[0].map)
    kwargs: dict[str, Any] = {}
    if aq is not None and row.prompt:
        (qmap,) = aq.score([image], [row.prompt])
        phrases = aq.analyse(row.prompt)[1]
        if phrases and qmap.report is not None:
            kwargs = {
                "phrase_scores": [p.phrase_score for p in qmap.report.phrases],
                "noun_scores": [p.noun_score for p in qmap.report.phrases],
                "noun_maps": np.stack([_small(m) for m in qmap.details["noun_maps"]]),
                "ancestors": [p.ancestor for p in phrases],
            }
    return CalibrationItem(mos=row.mos, perceptual_deficiency=deficiency, **kwargs)


@cli.command("calibrate")
@click.argument("mos_csv", type=click.Path(dir_okay=False))
@click.option("--recipe", "recipe_name", default="g-refine", show_default=True, help="recipe to calibrate")
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE", help="override a recipe value first")
@click.option(
    "--root", type=click.Path(file_okay=False), default=None, help="image folder (default: the CSV's)"
)
@click.option("--mos-column", default=None, help="the CSV column holding the MOS (default: the quality MOS)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--best-area", default=0.01, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="median mask area allowed in the best-rated quarter")  # fmt: skip
@click.option("--worst-area", default=0.05, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="median mask area the worst-rated quarter should reach (else a note)")  # fmt: skip
@click.option("--beta-quantile", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="beta = this quantile of the best quarter's phrase scores")  # fmt: skip
@log_format_option
@device_option
@dtype_option
@user_errors
def calibrate_command(
    mos_csv: str,
    recipe_name: str,
    set_items: tuple[str, ...],
    root: str | None,
    mos_column: str | None,
    out_dir: str,
    best_area: float,
    worst_area: float,
    beta_quantile: float,
    log_format: str,
    device: str | None,
    dtype: str | None,
) -> None:
    """Fit the thresholds that decide how much gets refined (mask threshold, a_bound, beta) so
    that the best-rated quarter of MOS_CSV's images gets little or no mask and the worst-rated
    quarter a real one. MOS_CSV is read as `grefine evaluate` reads it. Writes calibration.toml
    (a recipe overlay) and calibration.json into --out and prints the --set lines. Progress:
    one line (--log-format text, or auto off a terminal) or JSON event (jsonl, on stdout; the
    other lines then go to stderr) per image."""
    from grefine_kit.evaluation.calibration import fit_calibration
    from grefine_kit.evaluation.mos import read_mos_table
    from grefine_kit.parts.roles import PERCEPTUAL
    from grefine_kit.recipes.overrides import apply_overrides, parse_assignment
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runs.atomic import write_json, write_text
    from grefine_kit.runs.inputs import make_output_dir

    rows, column = read_mos_table(mos_csv, root, mos_column=mos_column, kind=PERCEPTUAL)
    recipe = apply_overrides(Recipe.load(recipe_name), [parse_assignment(s) for s in set_items])
    out = make_output_dir(out_dir)
    say = functools.partial(click.echo, err=log_format == "jsonl")  # jsonl: stdout is for JSON
    say(f"MOS column: {column}; {len(rows)} rated images; recipe {recipe.name}")
    items, failed = collect_items(rows, recipe, device, dtype, progress=log_format)
    fit = fit_calibration(items, best_area=best_area, worst_area=worst_area, beta_quantile=beta_quantile)
    header = f"# grefine calibrate {Path(mos_csv).name} --recipe {recipe.name}: merge into a recipe\n"
    write_text(out / "calibration.toml", header + fit.toml())
    data: dict[str, Any] = {
        "threshold": fit.threshold,
        "a_bound": fit.a_bound,
        "beta": fit.beta,
        "n_images": fit.n_images,
        "n_quarter": fit.n_quarter,
        "median_mask_area_best_quarter": fit.best_area,
        "median_mask_area_worst_quarter": fit.worst_area,
        "n_failed": failed,
        "mos_column": column,
        "recipe": recipe.name,
        "set": fit.set_lines(),
        "notes": list(fit.notes),
    }
    write_json(out / "calibration.json", data)
    for note in fit.notes:
        click.echo(f"note: {note}", err=True)
    say(
        f"threshold = {fit.threshold:g}: a pixel is repainted where (1 - P) + A_def exceeds it; median mask "
        f"area {fit.best_area:.3f} in the best-rated quarter, {fit.worst_area:.3f} in the worst"
    )
    if fit.a_bound is not None:
        say(f"a_bound = {fit.a_bound:g}: a noun scoring below it counts as missing from the image")
    if fit.beta is not None:
        say(f"beta = {fit.beta:g}: phrases scoring at least this cost nothing in the alignment score")
    say("apply with: " + " ".join(f"--set {line}" for line in fit.set_lines()))
    click.echo(json.dumps({"overlay": str(out / "calibration.toml")}))
    sys.exit(EXIT_FAILURES if failed else EXIT_OK)
