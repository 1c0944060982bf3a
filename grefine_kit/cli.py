"""The ``grefine`` command.

Exit codes: 0 success; 1 some images failed (the others were processed and saved);
2 a user error (bad file, recipe, option, unknown part), printed as one line.
Heavy libraries are imported inside the commands that need them, so ``grefine --help``
and ``grefine list`` stay instant.
"""

from __future__ import annotations

import fnmatch
import functools
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from grefine_kit import __version__
from grefine_kit.errors import GrefineError, UserError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILURES, EXIT_USER_ERROR = 0, 1, 2


def _fail(message: str) -> None:
    click.echo(f"grefine: error: {message}", err=True)
    sys.exit(EXIT_USER_ERROR)


def user_errors(func: F) -> F:
    """Turn ``UserError`` (and friends) into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            _fail(str(exc))
        except GrefineError as exc:  # plugin bugs: still one line, but say whose
            _fail(f"{type(exc).__name__}: {exc}")
        except KeyboardInterrupt:
            click.echo("grefine: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grefine")
def cli() -> None:
    """grefine: find the bad regions of AI-generated images and refine only there.

    Start with `grefine demo` (offline, tiny random models), then
    `grefine refine IMAGE --prompt TEXT --out DIR`.
    """


def _warn_plugin_failures() -> None:
    from grefine_kit.registry import get_registry

    for failure in get_registry().failures:
        click.echo(
            f"grefine: warning: plugin {failure.plugin} ({failure.distribution}): {failure.message}", err=True
        )


# -- registry ---------------------------------------------------------------------------


@cli.command("plugins")
@user_errors
def plugins_command() -> None:
    """List installed plugins, the parts each registers, and broken plugins."""
    from grefine_kit.registry import get_registry

    registry = get_registry()
    by_plugin: dict[tuple[str, str], list[str]] = {}
    for kind, entries in registry.entries.items():
        for entry in entries.values():
            by_plugin.setdefault((entry.distribution, entry.plugin), []).append(f"{kind}:{entry.name}")
    for (distribution, plugin), parts in sorted(by_plugin.items()):
        click.echo(f"{distribution} ({plugin})")
        for part in sorted(parts):
            click.echo(f"  {part}")
    for failure in registry.failures:
        click.echo(f"BROKEN {failure.distribution} ({failure.plugin}): {failure.message}")


@cli.command("list")
@click.argument("kind", required=False)
@click.option(
    "-f", "--filter", "pattern", default="*", show_default=True, help="glob on part names, e.g. 'g-refine*'"
)
@user_errors
def list_command(kind: str | None, pattern: str) -> None:
    """List registered parts, optionally of one KIND (indicator, parser, combiner, stage, metric, recipe)."""
    from grefine_kit.registry import KINDS, get_registry

    registry = get_registry()
    kinds = [kind] if kind else list(KINDS)
    for k in kinds:
        names = [n for n in registry.names(k) if fnmatch.fnmatchcase(n, pattern)]
        for name in names:
            entry = registry.get(k, name)
            summary = f"  {entry.summary}" if entry.summary else ""
            click.echo(f"{k:<10} {name:<22} {entry.distribution}{summary}")
    _warn_plugin_failures()


# -- recipes ----------------------------------------------------------------------------


@cli.group("recipe")
def recipe_group() -> None:
    """Show and validate recipes."""


@recipe_group.command("show")
@click.argument("name_or_path")
@user_errors
def recipe_show(name_or_path: str) -> None:
    """Print a recipe (built-in name or .toml path) as normalised TOML."""
    from grefine_kit.recipe import Recipe

    recipe = Recipe.load(name_or_path)
    click.echo(f"# source: {recipe.source}  hash: {recipe.hash}")
    click.echo(recipe.dump(), nl=False)


@recipe_group.command("validate")
@click.argument("name_or_path")
@user_errors
def recipe_validate(name_or_path: str) -> None:
    """Check a recipe: keys, part names, option names and values (no weights are loaded)."""
    from grefine_kit.recipe import Recipe

    recipe = Recipe.load(name_or_path)
    recipe.validate()
    click.echo(f"ok: {recipe.name} ({recipe.source})")


# -- scoring ----------------------------------------------------------------------------

_prompts_csv_option = click.option(
    "--prompts",
    "prompts_csv",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV with columns image,prompt (one prompt per image file)",
)
_device_option = click.option(
    "--device", default=None, help="torch device for every part (default: each part's own, 'auto')"
)
_dtype_option = click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default=None,
    help="model dtype for every part",
)


@cli.command("score")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--indicator", "indicator_name", default="pq-map", show_default=True, help="indicator registry name"
)
@click.option("--prompt", default=None, help="prompt for every image (needed by aq-map and clip-surgery)")
@_prompts_csv_option
@click.option(
    "--recipe",
    "recipe_name",
    default=None,
    help="take the indicator's options from this recipe (e.g. 'tiny' for offline random models)",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 1024))
@click.option("--no-maps", is_flag=True, help="do not write heatmap overlays and .npy maps")
@_device_option
@_dtype_option
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
    no_maps: bool,
    device: str | None,
    dtype: str | None,
) -> None:
    """Score images with an indicator: per-image scores, heatmap overlays and raw maps.

    PATHS are files, folders or globs.
    """
    from grefine_kit.api import build_indicator
    from grefine_kit.inputs import expand_inputs, read_prompts_csv
    from grefine_kit.scoring import score_files

    if prompt is not None and prompts_csv is not None:
        raise UserError("give --prompt or --prompts, not both")
    files = expand_inputs(paths)
    prompts: dict[str, str] | str | None = read_prompts_csv(Path(prompts_csv)) if prompts_csv else prompt
    indicator = build_indicator(indicator_name, recipe=recipe_name, device=device, dtype=dtype)
    _warn_plugin_failures()
    summary = score_files(
        files,
        indicator,
        Path(out_dir),
        prompts=prompts,
        fmt=fmt,  # type: ignore[arg-type]
        batch_size=batch_size,
        save_maps=not no_maps,
    )
    click.echo(
        f"scored {summary.n_ok} image(s), {summary.n_failed} failed -> {summary.results_path}", err=True
    )
    sys.exit(EXIT_FAILURES if summary.n_failed else EXIT_OK)


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
@click.option("--save-maps", is_flag=True, help="also write heatmap overlays and .npy maps")
@_device_option
@_dtype_option
@user_errors
def evaluate_command(
    mos_csv: str,
    indicator_name: str,
    root: str | None,
    recipe_name: str | None,
    out_dir: str,
    batch_size: int,
    save_maps: bool,
    device: str | None,
    dtype: str | None,
) -> None:
    """Use an indicator as an IQA model: SRCC / PLCC / KRCC of its scores against MOS.

    MOS_CSV has an image column (image/name/file/filename/path), a MOS column
    (mos/mos_quality/score/quality) and, for aq-map, a prompt column.
    """
    from grefine_kit.api import build_indicator
    from grefine_kit.evaluation import evaluate, read_mos_csv

    rows = read_mos_csv(mos_csv, root)
    indicator = build_indicator(indicator_name, recipe=recipe_name, device=device, dtype=dtype)
    _warn_plugin_failures()
    result = evaluate(rows, indicator, Path(out_dir), batch_size=batch_size, save_maps=save_maps)
    logistic = f" (logistic {result.plcc_logistic:.4f})" if result.plcc_logistic is not None else ""
    click.echo(
        f"{indicator_name}: SRCC {result.srcc:.4f}  PLCC {result.plcc:.4f}{logistic}  KRCC {result.krcc:.4f}"
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
@_device_option
@_dtype_option
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
    device: str | None,
    dtype: str | None,
) -> None:
    """Learn PQ-Map's quality prompts from MOS (frozen image encoder, Adam), as the paper does.

    Writes four CLIP-IQA+ prompt checkpoints and training.json; use them with
    prompt_checkpoints in a recipe's [indicators.perceptual] table.
    """
    from grefine_kit.api import build_indicator
    from grefine_kit.evaluation import read_mos_csv
    from grefine_kit.training import train_pq_prompts

    rows = read_mos_csv(mos_csv, root)
    pq = build_indicator("pq-map", recipe=recipe_name, device=device, dtype=dtype)
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
    )
    val = f", held-out SRCC {report.val_srcc:.4f}" if report.val_srcc is not None else ""
    click.echo(
        f"trained on {report.n_train} images: loss {report.losses[0]:.4f} -> {report.losses[-1]:.4f}, "
        f"train SRCC {report.train_srcc:.4f}{val}"
    )
    paths = ", ".join(f'"{p}"' for p in report.checkpoints)
    click.echo(f"use in a recipe's [indicators.perceptual] table:\nprompt_checkpoints = [{paths}]")
    sys.exit(EXIT_FAILURES if report.n_failed else EXIT_OK)


# -- refining ---------------------------------------------------------------------------


@cli.command("refine")
@click.argument("paths", nargs=-1, required=True)
@click.option("--prompt", default=None, help="prompt for every image")
@_prompts_csv_option
@click.option(
    "--recipe", "recipe_name", default="g-refine", show_default=True, help="recipe name or .toml path"
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help="override the recipe's seed")
@click.option("--save-maps", is_flag=True, help="also write the mask, heatmap overlays and raw maps")
@click.option("--no-resume", is_flag=True, help="redo images whose outputs already exist")
@_device_option
@_dtype_option
@user_errors
def refine_command(
    paths: tuple[str, ...],
    prompt: str | None,
    prompts_csv: str | None,
    recipe_name: str,
    out_dir: str,
    seed: int | None,
    save_maps: bool,
    no_resume: bool,
    device: str | None,
    dtype: str | None,
) -> None:
    """Refine images: find the bad regions (PQ-Map, AQ-Map) and repaint only there.

    PATHS are files, folders or globs. Each image gets <stem>.png and <stem>.report.json
    in --out; reports.jsonl collects every report. Interrupted runs resume.
    """
    from grefine_kit.batch import refine_files
    from grefine_kit.inputs import expand_inputs, read_prompts_csv

    if (prompt is None) == (prompts_csv is None):
        raise UserError("give exactly one of --prompt TEXT or --prompts CSV")
    files = expand_inputs(paths)
    prompts: Mapping[str, str] | str = read_prompts_csv(Path(prompts_csv)) if prompts_csv else str(prompt)
    refiner = _build_refiner(recipe_name, seed=seed, device=device, dtype=dtype)
    summary = refine_files(
        files, refiner, Path(out_dir), prompts=prompts, save_maps=save_maps, resume=not no_resume
    )
    click.echo(
        f"refined {summary.n_ok} image(s), {summary.n_failed} failed, {summary.n_skipped} already done "
        f"-> {summary.out_dir} (reports: {summary.reports_path.name})",
        err=True,
    )
    sys.exit(summary.exit_code)


def _build_refiner(recipe_name: str, *, seed: int | None, device: str | None, dtype: str | None) -> Any:
    import attrs

    from grefine_kit.recipe import Recipe

    recipe = Recipe.load(recipe_name).with_runtime(device=device, dtype=dtype)
    if seed is not None:
        recipe = attrs.evolve(recipe, seed=seed)
    _warn_plugin_failures()
    return recipe.build()


DEMO_PROMPT = "a red house with a blue door under a yellow sun"


@cli.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="grefine-demo", show_default=True)
@user_errors
def demo_command(out_dir: str) -> None:
    """Run the offline `tiny` recipe on a bundled image (random tiny models: shows the flow, not quality)."""
    from importlib import resources

    from grefine_kit.batch import refine_files

    started = time.perf_counter()
    example = Path(str(resources.files("grefine_kit") / "data" / "example.png"))
    refiner = _build_refiner("tiny", seed=None, device="cpu", dtype=None)
    summary = refine_files(
        [example], refiner, Path(out_dir), prompts=DEMO_PROMPT, save_maps=True, resume=False
    )
    seconds = time.perf_counter() - started
    out = Path(out_dir).resolve()
    click.echo(f"grefine demo: refined {example.name} with the 'tiny' recipe in {seconds:.1f} s")
    click.echo(f"  prompt:  {DEMO_PROMPT!r}")
    click.echo(f"  outputs: {out}/")
    for name in sorted(p.name for p in out.iterdir()):
        click.echo(f"    {name}")
    click.echo(
        "The tiny recipe uses random-weight models: it shows the flow offline (maps, mask, stages, report),"
        " not real quality; its refined image is noise by design."
    )
    click.echo(
        "Next: grefine fetch-weights --recipe g-refine, then grefine refine IMAGE --prompt TEXT --out DIR"
    )
    sys.exit(summary.exit_code)


@cli.command("fetch-weights")
@click.option(
    "--recipe", "recipe_name", default="g-refine", show_default=True, help="recipe name or .toml path"
)
@user_errors
def fetch_weights_command(recipe_name: str) -> None:
    """Download everything a recipe needs, so that later runs work offline (HF_HUB_OFFLINE=1)."""
    from grefine_kit.fetch import fetch_recipe_weights
    from grefine_kit.recipe import Recipe

    recipe = Recipe.load(recipe_name)
    for line in fetch_recipe_weights(recipe):
        click.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="grefine")


if __name__ == "__main__":  # pragma: no cover
    main()
