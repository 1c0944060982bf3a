"""``grefine benchmark``: recipes x dataset x metrics, summarised in the paper's table layout."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from grefine_kit.cli.app import EXIT_FAILURES, EXIT_OK, cli, device_option, dtype_option, user_errors
from grefine_kit.cli.app import warn_plugin_failures as _warn
from grefine_kit.cli.progress_options import log_format_option
from grefine_kit.cli.run_options import build_engine, engine_options
from grefine_kit.errors import UserError

#: the paper's comparison: G-Refine, its ablations (Table 8) and a plain img2img refiner
DEFAULT_RECIPES = (
    "g-refine",
    "g-refine-perceptual",
    "g-refine-alignment",
    "g-refine-stage1",
    "img2img-baseline",
)
#: independent judges first (they are not what the refiner optimises), then the refiner's own maps
DEFAULT_METRICS = ("piqe", "clipscore", "pickscore", "hpsv2", "pq-map", "aq-map")


def read_metric_options(path: str | None) -> dict[str, dict[str, Any]]:
    """``{column label: {"metric": registry name, **options}}`` from a TOML file of tables."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{path}: metric options file not found") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: cannot read metric options ({exc})") from exc
    out: dict[str, dict[str, Any]] = {}
    for label, table in data.items():
        if not isinstance(table, dict):
            raise UserError(f"{path}: {label!r} must be a table ([{label}] with the metric's options)")
        out[label] = dict(table)
    return out


def metric_specs(names: tuple[str, ...], options_file: str | None) -> list[Any]:
    """The metric columns: ``--metric`` labels (else the file's tables, else the defaults)."""
    from grefine_kit.benchmark import MetricSpec

    tables = read_metric_options(options_file)
    labels = list(names) or list(tables) or list(DEFAULT_METRICS)
    specs = []
    for label in labels:
        table = dict(tables.get(label, {}))
        name = table.pop("metric", label)
        if not isinstance(name, str):
            raise UserError(f"{options_file}: [{label}] metric must be a registry name (a string)")
        specs.append(MetricSpec(label=label, name=name, options=table))
    return specs


@cli.command("benchmark")
@click.argument("images", nargs=-1)
@click.option("--prompt", default=None, help="one prompt for every image")
@click.option(
    "--prompts", "prompts_csv", type=click.Path(dir_okay=False), default=None, help="CSV image,prompt"
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV id,image,prompt (instead of IMAGES)",
)
@click.option(
    "--recipe",
    "recipes",
    multiple=True,
    help="recipe name or .toml path (repeat; default: g-refine, its ablations, img2img-baseline)",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="metric column (repeat; default: piqe clipscore pickscore hpsv2 pq-map aq-map)",
)
@click.option(
    "--metric-options",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML: [label] tables of metric options (metric = NAME to rename a column)",
)
@click.option(
    "--ablation",
    is_flag=True,
    help="Table 8 layout: run the one --recipe (default g-refine) and its PQ / AQ / stage-1 variants",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option(
    "--tolerance",
    type=click.FloatRange(0.0, 1.0),
    default=1e-6,
    show_default=True,
    help="ties: |a-b| <= tol*max(1,|a|,|b|)",
)
@click.option(
    "--no-resume", is_flag=True, help="refine and score again even where outputs and cached scores exist"
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1024),
    default=None,
    help="images per refiner batch [default: each recipe's refiner.batch_size]; outputs do not depend on it",
)
@engine_options
@log_format_option
@device_option
@dtype_option
@user_errors
def benchmark_command(
    images: tuple[str, ...],
    prompt: str | None,
    prompts_csv: str | None,
    manifest: str | None,
    recipes: tuple[str, ...],
    metrics: tuple[str, ...],
    metric_options: str | None,
    ablation: bool,
    out_dir: str,
    tolerance: float,
    no_resume: bool,
    batch_size: int | None,
    engine: str,
    workers: int | None,
    address: str | None,
    log_format: str,
    device: str | None,
    dtype: str | None,
) -> None:
    """Does a recipe help? Refine IMAGES with each recipe, score originals and outputs with each
    metric, and write scores.csv, summary.md/.html/.json and chart.png to --out.

    Best and second best are marked per metric, every value worse than the original images is
    marked as a negative optimisation and counted per recipe. Reruns reuse refined images and
    cached scores (--no-resume redoes both). --engine runs the refining (scoring stays in this
    process). Progress shows per step and image (--log-format); with jsonl, stdout carries only
    the JSON lines (the table is in summary.md).
    Exit code 1 when some image could not be refined or scored (shown as n/a).
    """
    from grefine_kit.benchmark import load_dataset, run_benchmark, summarise
    from grefine_kit.benchmark.render import write_all
    from grefine_kit.benchmark.run import reads_prompts

    chosen = list(recipes) or (["g-refine"] if ablation else list(DEFAULT_RECIPES))
    specs = metric_specs(metrics, metric_options)
    engine_part = build_engine(engine, workers, address)  # a bad name or option fails before any work
    optional = manifest is None and prompt is None and prompts_csv is None and bool(images)
    dataset = load_dataset(
        images,
        prompts_csv=prompts_csv,
        prompt=prompt,
        manifest=manifest,
        prompts_optional=optional and not reads_prompts(chosen, specs, ablation=ablation),
    )
    _warn()
    result = run_benchmark(
        chosen,
        dataset,
        specs,
        Path(out_dir),
        ablation=ablation,
        resume=not no_resume,
        device=device,
        dtype=dtype,
        tolerance=tolerance,
        progress=log_format,
        engine=engine_part,
        batch_size=batch_size,
    )
    summary = summarise(result, ablation=ablation)
    config = {
        "dataset": {"source": dataset.source, "n_images": len(dataset.items)},
        "recipes": [{"name": r.name, "hash": r.recipe.hash, "source": r.recipe.source} for r in result.rows],
        "metric_options": {s.label: {"metric": s.name, **dict(s.options)} for s in specs},
        "refined": result.refine_counts,
        "scores_reused": result.n_cached,
        "errors": {k: v for k, v in result.errors.items() if v},
    }
    paths = write_all(summary, result.out_dir, {"config": config})
    if log_format != "jsonl":  # with jsonl, stdout carries only the JSON lines
        click.echo(Path(paths["markdown"]).read_text("utf-8"))
    for row in summary.recipes:
        click.echo(
            f"{row.name}: {row.negatives} negative optimisation(s) of {len(summary.metrics)}", err=True
        )
    failed = sum(c["failed"] for c in result.refine_counts.values())
    click.echo(
        f"wrote {result.out_dir / 'scores.csv'}, summary.md/.html/.json, chart.png "
        f"({failed} image(s) failed to refine, {result.n_missing} score(s) n/a, "
        f"{result.n_cached} score(s) reused from {result.out_dir / 'score-cache.jsonl'})",
        err=True,
    )
    sys.exit(EXIT_FAILURES if failed or result.n_missing else EXIT_OK)
