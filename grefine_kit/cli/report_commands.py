"""``grefine report``: an HTML page for a refine or score output folder."""

from __future__ import annotations

import click

from grefine_kit.cli.app import cli, user_errors


@cli.command("report")
# plain strings: build_report checks them (one line for a missing folder or a NUL byte)
@click.argument("folder", type=str)
@click.option(
    "--out",
    "out_file",
    type=str,
    default=None,
    help="HTML file to write [default: FOLDER/report.html]; a link there is replaced, not followed",
)
@click.option(
    "--max-size",
    default=320,
    show_default=True,
    type=click.IntRange(32, 4096),
    help="longest side, in pixels, of the embedded images",
)
@click.option(
    "--inputs",
    "inputs_dir",
    type=str,
    default=None,
    help="folder the run's input images are under [default: look in ., FOLDER and its parent]",
)
@user_errors
def report_command(folder: str, out_file: str | None, max_size: int, inputs_dir: str | None) -> None:
    """Turn a `grefine refine` or `grefine score` output FOLDER into one self-contained HTML page."""
    from grefine_kit.report import build_report

    path = build_report(folder, out_file, inputs=inputs_dir, max_size=max_size)
    click.echo(f"report: {path}")
    click.echo(f"open: file://{path}")
