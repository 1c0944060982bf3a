"""Commands on images: ``score``, ``refine``, ``demo``, ``fetch-weights``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grefine_kit.cli.app import (
    EXIT_FAILURES,
    EXIT_OK,
    cli,
    echo_run_summary,
    prompts_csv_option,
    user_errors,
    warn_plugin_failures,
)
from grefine_kit.cli.override_options import (
    Overrides,
    build_indicator_spec,
    indicator_spec,
    override_options,
)
from grefine_kit.cli.run_options import RunChoices, run_command_options, run_items, run_options
from grefine_kit.cli.score_table import print_score_table
from grefine_kit.errors import UserError

if TYPE_CHECKING:
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.refiner.refiner import Refiner


@cli.command("score")
@click.argument("paths", nargs=-1)
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
@run_command_options(maps=True)
@override_options()
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
    device: str | None,
    dtype: str | None,
    run: RunChoices,
    overrides: Overrides,
) -> None:
    """Score images with an indicator: per-image scores, heatmap overlays and raw maps.

    PATHS are files, folders or globs (or give --manifest). Reruns into the same --out redo
    only what is missing, failed or stale (docs/cli.md); docs/scale.md covers manifests,
    shards and engines.
    """
    from grefine_kit.parts.base import as_part
    from grefine_kit.readiness.preflight import ensure_ready, fetch_command
    from grefine_kit.runner.results import RESULTS_NAMES
    from grefine_kit.runner.score import score_items

    items, per_item = run_items(paths, run, prompt=prompt, prompts_csv=prompts_csv, need_prompt=False)
    options = run_options(run, batch_size=batch_size)
    spec = indicator_spec(indicator_name, recipe=recipe_name, device=device, dtype=dtype, overrides=overrides)
    indicator = build_indicator_spec(spec)  # built once: checked here, used by the local engine
    has_prompts = prompt is not None or prompts_csv is not None or any(it.prompt for it in items)
    if as_part(indicator).needs_prompt and not has_prompts:
        raise UserError(f"{indicator_name} needs a prompt per image: give --prompt TEXT or --prompts CSV")
    ensure_ready(
        {indicator_name: indicator}, fetch_command=fetch_command(recipe=recipe_name, indicator=indicator_name)
    )
    warn_plugin_failures()
    set_pairs = dict(overrides.set_pairs())
    summary = score_items(
        items,
        spec,
        Path(out_dir),
        options,
        indicator=indicator,
        fmt=fmt,  # type: ignore[arg-type]
        # --set values change the results: part of the fingerprint, so a rerun with others redoes
        config=_score_config(indicator_name, recipe_name, dtype) | ({"set": set_pairs} if set_pairs else {}),
        prompts_given=per_item,
    )
    echo_run_summary(summary)
    done = f", {summary.n_skipped} already done" if summary.n_skipped else ""
    results_path = Path(summary.out_dir) / RESULTS_NAMES[fmt]
    counts = f"scored {summary.n_ok} image(s), {summary.n_failed} failed{done}{summary.shard_note}"
    click.echo(f"{counts} -> {results_path}", err=True)
    if run.log_format != "jsonl":  # with jsonl, stdout carries only the JSON lines
        print_score_table(results_path, indicator_name)
    sys.exit(EXIT_FAILURES if summary.n_failed else EXIT_OK)


def _score_config(indicator_name: str, recipe_name: str | None, dtype: str | None) -> dict[str, Any]:
    """What identifies a scoring setup in the fingerprints (the device does not change results)."""
    recipe_hash = None
    if recipe_name is not None:
        from grefine_kit.recipes.recipe import Recipe

        recipe_hash = Recipe.load(recipe_name).hash
    return {"indicator": indicator_name, "recipe": recipe_hash, "dtype": dtype}


@cli.command("refine")
@click.argument("paths", nargs=-1)
@click.option(
    "--prompt",
    default=None,
    help="prompt for every image (needed when the recipe reads prompts: AQ-Map, diffusion stages)",
)
@prompts_csv_option
@click.option(
    "--recipe", "recipe_name", default="g-refine", show_default=True, help="recipe name or .toml path"
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help="override the recipe's seed")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1024),
    default=None,
    help="images per indicator batch [default: the recipe's refiner.batch_size]; outputs do not depend on it",
)
@run_command_options(maps=False)
@override_options(shortcuts=True)
@user_errors
def refine_command(
    paths: tuple[str, ...],
    prompt: str | None,
    prompts_csv: str | None,
    recipe_name: str,
    out_dir: str,
    seed: int | None,
    batch_size: int | None,
    device: str | None,
    dtype: str | None,
    run: RunChoices,
    overrides: Overrides,
) -> None:
    """Refine images: find the bad regions (PQ-Map, AQ-Map) and repaint only there.

    PATHS are files, folders or globs (or give --manifest). Each image gets <stem>.png and
    <stem>.report.json in --out; reports.jsonl collects every report. Interrupted runs
    resume; stale results (another input, prompt, seed, recipe or --maps) are redone.
    docs/scale.md covers manifests, shards and engines.
    """
    import attrs

    from grefine_kit.runner.refine import refine_items

    recipe, refiner = _built_recipe(recipe_name, seed=seed, device=device, dtype=dtype, overrides=overrides)
    reads_prompts = refiner.needs_prompt
    items, _ = run_items(paths, run, prompt=prompt, prompts_csv=prompts_csv, need_prompt=reads_prompts)
    if not reads_prompts:  # no part reads it: an image without one gets the empty prompt
        items = [it if it.prompt is not None else attrs.evolve(it, prompt="") for it in items]
    options = run_options(run, batch_size=batch_size)
    _ensure_ready(recipe_name, refiner)
    summary = refine_items(items, recipe, Path(out_dir), options, refiner=refiner)
    echo_run_summary(summary)
    click.echo(
        f"refined {summary.n_ok} image(s), {summary.n_failed} failed, {summary.n_skipped} already done"
        f"{summary.shard_note} -> {summary.out_dir} (reports: {summary.reports_path.name})",
        err=True,
    )
    sys.exit(summary.exit_code)


def _built_recipe(
    recipe_name: str, *, seed: int | None, device: str | None, dtype: str | None, overrides: Overrides
) -> tuple[Recipe, Refiner]:
    """The recipe with the command line's seed, device, dtype and overrides applied, and the
    Refiner built from it, once: building checks every part's options, and the local engine's
    worker refines with it (engines in other processes rebuild it from the recipe). Nothing is
    loaded yet: :func:`_ensure_ready` checks what the parts need before any work."""
    import attrs

    from grefine_kit.recipes.overrides import apply_overrides
    from grefine_kit.recipes.recipe import Recipe

    recipe = Recipe.load(recipe_name).with_runtime(device=device, dtype=dtype)
    if seed is not None:
        recipe = attrs.evolve(recipe, seed=seed)
    recipe = apply_overrides(recipe, overrides.pairs(recipe))
    return recipe, recipe.build()


def _ensure_ready(recipe_name: str, refiner: Refiner) -> None:
    """Preflight of the built parts (weights, models, devices: one error naming what is missing
    and the fetch command), then the warning for plugins that failed to load."""
    from grefine_kit.readiness.preflight import ensure_ready, fetch_command
    from grefine_kit.runner.refine_work import parts_by_table

    ensure_ready(parts_by_table(refiner), fetch_command=fetch_command(recipe=recipe_name))
    warn_plugin_failures()


@cli.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="grefine-demo",
    show_default=True,
    help="output folder (the default is in the repository's .gitignore)",
)
@click.option(
    "--recipe",
    "recipe_name",
    default="restore",
    show_default=True,
    help="recipe to run ('tiny': the G-Refine flow on tiny random-weight models)",
)
@user_errors
def demo_command(out_dir: str, recipe_name: str) -> None:
    """Repair a bundled AI-generated image with a planted noise patch, offline (no download).

    The `restore` recipe finds the patch with the weight-free defect-map, repairs only there
    (non-local means) and gives the whole image a mild pass; the demo then measures the repair
    against the bundled clean original and writes an HTML report page.
    """
    import numpy as np
    from PIL import Image

    from grefine_kit.demo import (
        DEMO_PROMPT,
        FIDELITY_SUFFIX,
        clean_path,
        example_path,
        mask_summary,
        repair_summary,
    )
    from grefine_kit.images.loading import load_image
    from grefine_kit.report import build_report
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runner.refine import refine_items
    from grefine_kit.runs import atomic
    from grefine_kit.runs.items import make_items

    started = time.perf_counter()
    example = example_path()
    recipe, refiner = _built_recipe(recipe_name, seed=None, device="cpu", dtype=None, overrides=Overrides())
    _ensure_ready(recipe_name, refiner)
    options = RunOptions(save_maps=True, resume=False)
    summary = refine_items(
        make_items([example], DEMO_PROMPT), recipe, Path(out_dir), options, refiner=refiner
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
    output_file = out / f"{example.stem}.png"
    if output_file.is_file():
        repair = repair_summary(load_image(output_file), load_image(example), load_image(clean_path()))
        for line in repair.lines():
            click.echo(line)
        figures = {"reference": clean_path().name, **repair.to_json()}
        atomic.write_json(out / f"{example.stem}{FIDELITY_SUFFIX}", figures)
    page = build_report(out, inputs=example.parent)
    click.echo(f"  outputs: {out}/")
    for name in sorted(p.name for p in out.iterdir() if not p.name.startswith(".")):
        click.echo(f"    {name}")
    click.echo(f"  report:  file://{page}")
    if recipe_name == "restore":
        click.echo(
            "The mask comes from defect-map and the repair from classical restoration: both weight-free."
            " G-Refine's own recipe puts diffusion models in the same slots (grefine fetch-weights)."
        )
    else:
        click.echo("This recipe uses random-weight models: it shows the flow offline, not real quality.")
    click.echo(
        f"Next: grefine report {out_dir} rebuilds that page (for any refine or score folder); "
        "grefine refine IMAGE --recipe restore --out DIR repairs your own images"
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
    from grefine_kit.readiness.fetch import check_can_fetch, fetch_parts_weights, fetch_recipe_weights
    from grefine_kit.readiness.preflight import recipe_parts
    from grefine_kit.recipes.recipe import Recipe

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
