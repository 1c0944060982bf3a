"""Commands that treat indicators as IQA models: ``evaluate`` and ``train-pq``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grefine_kit.cli.app import (
    EXIT_FAILURES,
    EXIT_OK,
    cli,
    device_option,
    dtype_option,
    maps_option,
    user_errors,
    warn_plugin_failures,
)
from grefine_kit.cli.progress_options import echo_beside, log_format_option


def _ready(indicator: object, name: str, recipe: str | None) -> None:
    """``indicator`` can run here (weights, parser model, device): else one UserError, exit 2."""
    from grefine_kit.readiness.preflight import ensure_ready, fetch_command

    ensure_ready({name: indicator}, fetch_command=fetch_command(recipe=recipe, indicator=name))


@cli.command("evaluate")
@click.argument("mos_csv", type=click.Path(dir_okay=False))
@click.option(
    "--indicator", "indicator_name", default="pq-map", show_default=True, help="indicator registry name"
)
@click.option(
    "--root", type=click.Path(file_okay=False), default=None, help="image folder (default: the CSV's)"
)
@click.option("--recipe", "recipe_name", default=None, help="take the indicator's options from this recipe")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 1024))
@maps_option(default=False)
@click.option(
    "--mos-column",
    default=None,
    help="the CSV column holding the MOS (default: chosen by the indicator's kind, e.g. "
    "mos_quality for pq-map, mos_align for aq-map)",
)
@log_format_option
@device_option
@dtype_option
@user_errors
def evaluate_command(
    mos_csv: str,
    indicator_name: str,
    root: str | None,
    recipe_name: str | None,
    out_dir: str,
    batch_size: int,
    maps: bool,
    mos_column: str | None,
    log_format: str,
    device: str | None,
    dtype: str | None,
) -> None:
    """Use an indicator as an IQA model: SRCC / PLCC / KRCC of its scores against MOS.

    MOS_CSV has an image column (image/name/file/filename/path), a MOS column and, for aq-map, a
    prompt column. The MOS column is --mos-column, else the one matching the indicator's kind
    (perceptual: mos_quality/mos/..., alignment: mos_align/mos/...); an ambiguous file is refused.
    Progress per image as for `grefine score` (--log-format; with jsonl the other lines go to
    stderr).
    """
    from grefine_kit.api import build_indicator
    from grefine_kit.cli.image_commands import _score_config
    from grefine_kit.evaluation import evaluate, indicator_kind, read_mos_table

    indicator = build_indicator(indicator_name, recipe=recipe_name, device=device, dtype=dtype)
    _ready(indicator, indicator_name, recipe_name)
    kind = indicator_kind(indicator)
    rows, column = read_mos_table(mos_csv, root, mos_column=mos_column, kind=kind)
    how = "as given" if mos_column else f"for {'an' if kind[0] in 'aeiou' else 'a'} {kind} indicator"
    say = echo_beside(log_format)
    say(f"MOS column: {column} ({how})")
    warn_plugin_failures()
    result = evaluate(
        rows,
        indicator,
        Path(out_dir),
        batch_size=batch_size,
        save_maps=maps,
        mos_column=column,
        config=_score_config(indicator_name, recipe_name, dtype),
        progress=log_format,
    )
    if result.plcc_logistic is not None:
        plcc_text = f"PLCC {result.plcc_logistic:.4f} (fitted; raw {result.plcc:.4f})"
    else:
        plcc_text = f"PLCC {result.plcc:.4f} (raw: no logistic fit, see the note)"
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    say(
        f"{indicator_name}: SRCC {result.srcc:.4f}  {plcc_text}  KRCC {result.krcc:.4f}"
        f"  on {result.n_scored}/{result.n_rated} images -> {Path(out_dir) / 'evaluation.json'}"
    )
    sys.exit(EXIT_FAILURES if result.n_failed else EXIT_OK)


@cli.command("train-pq")
@click.argument("mos_csv", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="checkpoint folder")
@click.option(
    "--root", type=click.Path(file_okay=False), default=None, help="image folder (default: the CSV's)"
)
@click.option(
    "--recipe", "recipe_name", default=None, help="take PQ-Map's backbone and class words from a recipe"
)
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--lr", default=2e-3, show_default=True, type=click.FloatRange(0, 10, min_open=True))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 65_536))
@click.option(
    "--n-ctx", default=16, show_default=True, type=click.IntRange(2, 64), help="context tokens per text"
)
@click.option("--val-fraction", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option(
    "--factors",
    type=click.Choice(["joint", "separate"]),
    default="joint",
    show_default=True,
    help="joint: the four prompts fitted together through the cask effect; separate: one "
    "independent checkpoint per factor, as the reference trains them",
)
@log_format_option
@device_option
@dtype_option
@user_errors
def train_pq_command(
    mos_csv: str,
    out_dir: str,
    root: str | None,
    recipe_name: str | None,
    epochs: int,
    lr: float,
    batch_size: int,
    n_ctx: int,
    val_fraction: float,
    seed: int,
    factors: str,
    log_format: str,
    device: str | None,
    dtype: str | None,
) -> None:
    """Learn PQ-Map's quality prompts from MOS (frozen image encoder, Adam), as the paper does.

    Writes four CLIP-IQA+ prompt checkpoints and training.json; use them with
    prompt_checkpoints in a recipe's [indicators.perceptual] table. Progress per image encoded
    and per epoch (--log-format; with jsonl the other lines go to stderr).
    """
    from grefine_kit.api import build_indicator
    from grefine_kit.evaluation import read_mos_csv
    from grefine_kit.training import train_pq_prompts

    rows = read_mos_csv(mos_csv, root)
    from grefine_kit.errors import UserError
    from grefine_kit.indicators.pq_map import PQMap

    pq = build_indicator("pq-map", recipe=recipe_name, device=device, dtype=dtype)
    if not isinstance(pq, PQMap):  # train-pq learns PQ-Map's own prompt context
        raise UserError(f"train-pq needs the built-in pq-map indicator; 'pq-map' built a {type(pq).__name__}")
    _ready(pq, "pq-map", recipe_name)
    report = train_pq_prompts(
        rows,
        pq,
        Path(out_dir),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        n_ctx=n_ctx,
        val_fraction=val_fraction,
        seed=seed,
        factors=factors,
        progress=log_format,
    )
    say = echo_beside(log_format)
    val = f", held-out SRCC {report.val_srcc:.4f}" if report.val_srcc is not None else ""
    say(
        f"trained on {report.n_train} images: loss {report.losses[0]:.4f} -> {report.losses[-1]:.4f}, "
        f"train SRCC {report.train_srcc:.4f}{val}"
    )
    paths = ", ".join(f'"{p}"' for p in report.checkpoints)
    say(f"use in a recipe's [indicators.perceptual] table:\nprompt_checkpoints = [{paths}]")
    sys.exit(EXIT_FAILURES if report.n_failed else EXIT_OK)
