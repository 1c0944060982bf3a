"""``grefine calibrate``: fit the mask threshold, ``a_bound`` and ``beta`` to images with MOS."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from grefine_kit.cli.app import EXIT_FAILURES, EXIT_OK, cli, device_option, dtype_option, user_errors
from grefine_kit.cli.progress_options import echo_beside, log_format_option


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
    from grefine_kit.evaluation.calibration_data import collect_items
    from grefine_kit.evaluation.mos import read_mos_table
    from grefine_kit.parts.roles import PERCEPTUAL
    from grefine_kit.recipes.overrides import apply_overrides, parse_assignment
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runs.atomic import write_json, write_text
    from grefine_kit.runs.inputs import make_output_dir

    rows, column = read_mos_table(mos_csv, root, mos_column=mos_column, kind=PERCEPTUAL)
    recipe = apply_overrides(Recipe.load(recipe_name), [parse_assignment(s) for s in set_items])
    out = make_output_dir(out_dir)
    say = echo_beside(log_format)
    say(f"MOS column: {column}; {len(rows)} rated images; recipe {recipe.name}")
    items, failed = collect_items(rows, recipe, device=device, dtype=dtype, progress=log_format)
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
