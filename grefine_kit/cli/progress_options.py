"""``--log-format``: how ``score``, ``refine`` and ``benchmark`` show progress (``grefine_kit.progress``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from grefine_kit.progress import LOG_FORMATS

__all__ = ["log_format_option"]

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
