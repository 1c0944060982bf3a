"""Commands about metrics themselves: ``metrics check`` (calibration against official scores)."""

from __future__ import annotations

from collections.abc import Callable

import click

from grefine_kit.cli.app import cli, user_errors, warn_plugin_failures


def _progress(label: str) -> Callable[[str], None]:
    """Progress on stderr, one line per scored image (models can take seconds per image)."""

    def show(image: str) -> None:
        click.echo(f"  {label}: {image}", err=True)

    return show


@cli.group("metrics")
def metrics_group() -> None:
    """Check metrics against their published implementations."""


@metrics_group.command("check")
@click.argument("folder", type=click.Path(file_okay=True, dir_okay=True))
@click.option(
    "--metric",
    "only",
    multiple=True,
    help="check only this registry name (repeatable; default: every installed metric with a row)",
)
@user_errors
def metrics_check(folder: str, only: tuple[str, ...]) -> None:
    """Score a calibration FOLDER with every installed metric that has official values there,
    and print ours vs official per image with the difference.

    FOLDER is laid out like pyiqa's ResultsCalibra/: dist/ (the images), ref/ (their
    references, for full-reference metrics) and results_official.csv (Method,<image>,... then
    one row per metric). A metric that cannot run here (weights or a package missing) is
    marked as such; the exit code is 0 whenever the folder could be read (2 when it cannot).
    """
    from grefine_kit.errors import UserError
    from grefine_kit.evaluation.metric_check import (
        calibration_targets,
        format_result,
        load_calibration,
        run_target,
    )

    calibration = load_calibration(folder)
    targets = calibration_targets(calibration)
    if only:
        unknown = [name for name in only if name not in {t.name for t in targets}]
        if unknown:
            raise UserError(
                f"metric {unknown[0]!r} is not installed or has no row in {folder}/results_official.csv"
            )
        targets = [t for t in targets if t.name in only]
    click.echo(
        f"{calibration.root}: {len(calibration.images)} images, {len(calibration.official)} official rows, "
        f"{len(targets)} installed metric(s) with a row"
    )
    counts = {"reproduced": 0, "off": 0, "unjudged": 0, "unavailable": 0, "error": 0}
    for i, target in enumerate(targets, start=1):
        click.echo(f"[{i}/{len(targets)}] {target.label} ...", err=True)
        result = run_target(target, calibration, on_image=_progress(target.label))
        for line in format_result(result, calibration.images):
            click.echo(line)
        if result.unavailable:
            counts["unavailable"] += 1
        elif result.error:
            counts["error"] += 1
        else:
            counts[{True: "reproduced", False: "off", None: "unjudged"}[result.reproduced]] += 1
    shown = {
        "reproduced": "reproduced within tolerance",
        "off": "outside tolerance",
        "unjudged": "no tolerance set",
        "unavailable": "cannot run here",
        "error": "failed",
    }
    click.echo(
        "summary: " + ", ".join(f"{n} {shown[k]}" for k, n in counts.items() if n)
        if targets
        else "summary: no installed metric has a row in this folder"
    )
    warn_plugin_failures()
