"""``--log-format``: how the long commands show progress (``grefine_kit.progress``), and where
their other lines go (:func:`echo_beside`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from grefine_kit.progress import LOG_FORMATS

__all__ = ["echo_beside", "log_format_option"]

F = TypeVar("F", bound=Callable[..., Any])


def log_format_option(func: F) -> F:
    """Adds ``--log-format`` (parameter ``log_format``; default ``auto``)."""
    return click.option(
        "--log-format",
        "log_format",
        type=click.Choice(LOG_FORMATS),
        default="auto",
        show_default=True,
        help="progress: auto = a bar on a terminal, else one line per item on stderr; text = always "
        "lines; jsonl = one JSON object per item on stdout (no score table); off = none",
    )(func)


def echo_beside(log_format: str) -> Callable[[str], None]:
    """``click.echo`` for a command's own lines: on stdout, except under ``jsonl``, whose stdout
    carries only the JSON events (the lines then go to stderr)."""

    def echo(message: str) -> None:
        click.echo(message, err=log_format == "jsonl")

    return echo
