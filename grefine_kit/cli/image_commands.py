"""Commands on images: ``score``, ``refine``, ``demo``, ``fetch-weights``."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from grefine_kit.cli.app import (
    EXIT_FAILURES,
    EXIT_OK,
    cli,
    device_option,
    dtype_option,
    echo_run_summary,
    maps_option,
    prompts_csv_option,
    user_errors,
    warn_plugin_failures,
)
from grefine_kit.cli.override_options import (
    build_indicator_with_overrides,
    cli_overrides,
    refine_shortcuts,
    set_options,
)
from grefine_kit.cli.readiness import check_indicator_ready, check_recipe_ready
from grefine_kit.cli.score_table import print_score_table
from grefine_kit.errors import UserError


@cli.command("score")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--indicator", "indicator_name", default="pq-map", show_default=True, help="indicator registry name"
)
@click.option("--prompt", default=None, help="prompt for every image (needed by aq-map and clip-surgery)")
@prompts_csv_option
@click.option(
    "--recipe",
    "recipe_name",
    default=None,
    help="take the indicator's options from this recipe (e.g. 'tiny' for offline random models)",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 1024))
@maps_option(default=True)
@click.option("--no-resume", is_flag=True, help="redo images whose records already say ok")
@device_option
@dtype_option
@set_options
@user_errors
def score_command(
    paths: tuple[str, ...],
    indicator_name: str,
    prompt: str | None,
    prompts_csv: str | None,
    recipe_name: str | None,
    out_dir: str,
    fmt: str,
    batch_size: int,
    maps: bool,
    no_resume: bool,
    device: str | None,
    dtype: str | None,
) -> None:
    """Score images with an indicator: per-image scores, heatmap overlays and raw maps.

    PATHS are files, folders or globs. Reruns into the same --out redo only what is missing,
    failed or stale (docs/cli.md).
    """
    from grefine_kit.inputs import expand_inputs, read_prompts_csv
    from grefine_kit.scoring import score_files

    if prompt is not None and prompts_csv is not None:
        raise UserError("give --prompt or --prompts, not both")
    files = expand_inputs(paths)
    prompts: dict[str, str] | str | None = read_prompts_csv(Path(prompts_csv)) if prompts_csv else prompt
    indicator = build_indicator_with_overrides(indicator_name, recipe=recipe_name, device=device, dtype=dtype)
    check_indicator_ready(indicator, indicator_name, recipe=recipe_name, prompts=prompts)
    warn_plugin_failures()
    summary = score_files(
        files,
        indicator,
        Path(out_dir),
        prompts=prompts,
        fmt=fmt,  # type: ignore[arg-type]
        batch_size=batch_size,
        save_maps=maps,
        resume=not no_resume,
        # --set values change the results: part of the fingerprint, so a rerun with others redoes
        config=_score_config(indicator_name, recipe_name, dtype) | _set_config(),
    )
    echo_run_summary(summary)
    done = f", {summary.n_skipped} already done" if summary.n_skipped else ""
    click.echo(
        f"scored {summary.n_ok} image(s), {summary.n_failed} failed{done} -> {summary.results_path}", err=True
    )
    print_score_table(summary.results_path, indicator_name)
    sys.exit(EXIT_FAILURES if summary.n_failed else EXIT_OK)


def _set_config() -> dict[str, Any]:
    pairs = dict(cli_overrides())
    return {"set": pairs} if pairs else {}


def _score_config(indicator_name: str, recipe_name: str | None, dtype: str | None) -> dict[str, Any]:
    """What identifies a scoring setup in the fingerprints (the device does not change results)."""
    recipe_hash = None
    if recipe_name is not None:
        from grefine_kit.recipe import Recipe

        recipe_hash = Recipe.load(recipe_name).hash
    return {"indicator": indicator_name, "recipe": recipe_hash, "dtype": dtype}


@cli.command("refine")
@click.argument("paths", nargs=-1, required=True)
@click.option("--prompt", default=None, help="prompt for every image")
@prompts_csv_option
@click.option(
    "--recipe", "recipe_name", default="g-refine", show_default=True, help="recipe name or .toml path"
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help="override the recipe's seed")
@maps_option(default=False)
@click.option("--no-resume", is_flag=True, help="redo images whose records already say ok")
@device_option
@dtype_option
@set_options
@refine_shortcuts
@user_errors
def refine_command(
    paths: tuple[str, ...],
    prompt: str | None,
    prompts_csv: str | None,
    recipe_name: str,
    out_dir: str,
    seed: int | None,
    maps: bool,
    no_resume: bool,
    device: str | None,
    dtype: str | None,
) -> None:
    """Refine images: find the bad regions (PQ-Map, AQ-Map) and repaint only there.

    PATHS are files, folders or globs. Each image gets <stem>.png and <stem>.report.json
    in --out; reports.jsonl collects every report. Interrupted runs resume; stale results
    (another input, prompt, seed, recipe or --maps) are redone.
    """
    from grefine_kit.batch import refine_files
    from grefine_kit.inputs import expand_inputs, read_prompts_csv

    if (prompt is None) == (prompts_csv is None):
        raise UserError("give exactly one of --prompt TEXT or --prompts CSV")
    files = expand_inputs(paths)
    prompts: Mapping[str, str] | str = read_prompts_csv(Path(prompts_csv)) if prompts_csv else str(prompt)
    refiner = _build_refiner(recipe_name, seed=seed, device=device, dtype=dtype)
    summary = refine_files(
        files, refiner, Path(out_dir), prompts=prompts, save_maps=maps, resume=not no_resume
    )
    echo_run_summary(summary)
    click.echo(
        f"refined {summary.n_ok} image(s), {summary.n_failed} failed, {summary.n_skipped} already done "
        f"-> {summary.out_dir} (reports: {summary.reports_path.name})",
        err=True,
    )
    sys.exit(summary.exit_code)


def _build_refiner(recipe_name: str, *, seed: int | None, device: str | None, dtype: str | None) -> Any:
    import attrs

    from grefine_kit.overrides import apply_overrides
    from grefine_kit.recipe import Recipe

    recipe = Recipe.load(recipe_name).with_runtime(device=device, dtype=dtype)
    if seed is not None:
        recipe = attrs.evolve(recipe, seed=seed)
    recipe = apply_overrides(recipe, cli_overrides(recipe))
    check_recipe_ready(recipe, recipe_name)
    warn_plugin_failures()
    return recipe.build()


@cli.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="grefine-demo", show_default=True)
@click.option(
    "--recipe", "recipe_name", default="demo", show_default=True, help="recipe to run ('tiny': all CLIP maps)"
)
@user_errors
def demo_command(out_dir: str, recipe_name: str) -> None:
    """Refine a bundled AI-generated image with a planted defect, offline (no download).

    The `demo` recipe finds the defect with the weight-free piqe-map and repaints it with tiny
    random pipelines (the repainted pixels are noise by design: the point is where they go).
    """
    import numpy as np
    from PIL import Image

    from grefine_kit.batch import refine_files
    from grefine_kit.demo import DEMO_PROMPT, example_path, mask_summary

    started = time.perf_counter()
    example = example_path()
    refiner = _build_refiner(recipe_name, seed=None, device="cpu", dtype=None)
    summary = refine_files(
        [example], refiner, Path(out_dir), prompts=DEMO_PROMPT, save_maps=True, resume=False
    )
    seconds = time.perf_counter() - started
    out = Path(out_dir).resolve()
    click.echo(f"grefine demo: refined {example.name} with the {recipe_name!r} recipe in {seconds:.1f} s")
    click.echo(f"  prompt:  {DEMO_PROMPT!r}")
    mask_file = out / f"{example.stem}.mask.png"
    if mask_file.is_file():
        with Image.open(mask_file) as im:
            for line in mask_summary(np.asarray(im.convert("L")) > 127).lines():
                click.echo(line)
    click.echo(f"  outputs: {out}/")
    for name in sorted(p.name for p in out.iterdir() if not p.name.startswith(".")):
        click.echo(f"    {name}")
    click.echo(
        "The mask comes from piqe-map, a real (weight-free) quality map; the stages are tiny random-weight"
        " pipelines, so the repainted pixels are noise by design: the demo shows where G-Refine repaints."
        if recipe_name == "demo"
        else "This recipe uses random-weight models: it shows the flow offline, not real quality."
    )
    click.echo(
        "Next: grefine fetch-weights --recipe g-refine, then grefine refine IMAGE --prompt TEXT --out DIR"
    )
    sys.exit(summary.exit_code)


@cli.command("fetch-weights")
@click.option(
    "--recipe",
    "recipe_name",
    default=None,
    help="recipe name or .toml path [default: g-refine; with --indicator: the indicator's defaults]",
)
@click.option(
    "--indicator",
    "indicator_name",
    default=None,
    help="fetch only this indicator's weights (what `grefine score --indicator NAME` needs)",
)
@user_errors
def fetch_weights_command(recipe_name: str | None, indicator_name: str | None) -> None:
    """Download everything a recipe needs, so that later runs work offline (HF_HUB_OFFLINE=1)."""
    from grefine_kit.fetch import check_can_fetch, fetch_parts_weights, fetch_recipe_weights
    from grefine_kit.preflight import recipe_parts
    from grefine_kit.recipe import Recipe

    if indicator_name is not None:
        from grefine_kit.api import build_indicator

        indicator = build_indicator(indicator_name, recipe=recipe_name)
        check_can_fetch({indicator_name: indicator})
        for line in fetch_parts_weights([(indicator_name, indicator)]):
            click.echo(line)
        click.echo(
            f"done: `grefine score --indicator {indicator_name}` can now run offline (HF_HUB_OFFLINE=1)"
        )
        return
    recipe = Recipe.load(recipe_name or "g-refine")
    check_can_fetch(recipe_parts(recipe))
    for line in fetch_recipe_weights(recipe):
        click.echo(line)
