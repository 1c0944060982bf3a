"""The ``grefine`` command.

Exit codes: 0 success; 1 some images failed (the others were processed and saved);
2 a user error (bad file, recipe, option, unknown part), printed as one line.
Heavy libraries are imported inside the commands that need them, so ``grefine --help``
and ``grefine list`` stay instant.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
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


def warn_plugin_failures() -> None:
    from grefine_kit.registry import get_registry

    for failure in get_registry().failures:
        click.echo(
            f"grefine: warning: plugin {failure.plugin} ({failure.distribution}): {failure.message}", err=True
        )


prompts_csv_option = click.option(
    "--prompts",
    "prompts_csv",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV with columns image,prompt (one prompt per image file)",
)
device_option = click.option(
    "--device", default=None, help="torch device for every part (default: each part's own, 'auto')"
)
dtype_option = click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default=None,
    help="model dtype for every part",
)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="grefine")
