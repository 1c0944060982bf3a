"""The ``grefine`` command.

Exit codes: 0 success; 1 some images failed (the others were processed and saved);
2 a user or setup error (bad file, recipe, option, unknown part, unwritable output folder,
full disk, a folder locked by another run), printed as one line; 130 interrupted (Ctrl-C);
143 terminated (SIGTERM, handled like Ctrl-C: finished items and the results file are kept).
Heavy libraries are imported inside the commands that need them, so ``grefine --help``
and ``grefine list`` stay instant.
"""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from grefine_kit import __version__
from grefine_kit.errors import GrefineError, UserError

if TYPE_CHECKING:
    from grefine_kit.runner.run import RunSummary

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILURES, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

# errors of the machine, not of one item: the run cannot go on, and says so in one line
_SETUP_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EMFILE, errno.ENFILE}
    # a path given on the command line that the file system refuses (issue 20: long names)
    | {errno.ENAMETOOLONG, errno.ELOOP}
)


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
        except OSError as exc:
            if exc.errno not in _SETUP_ERRNOS:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except KeyboardInterrupt as exc:
            _interrupted(exc)

    return wrapper  # type: ignore[return-value]


def _interrupted(exc: BaseException) -> None:
    """Ctrl-C (exit 130) or SIGTERM (exit 143, :mod:`grefine_kit.cli.signals`): one line."""
    from grefine_kit.cli.signals import exit_code, interruption_line

    click.echo(interruption_line(exc), err=True)
    sys.exit(exit_code(exc))


def maps_option(default: bool) -> Callable[[F], F]:
    """``--maps/--no-maps``: the one maps flag of score, refine and evaluate (``--save-maps``
    is kept as an alias of ``--maps``)."""
    return click.option(
        "--maps/--no-maps",
        "--save-maps",
        "maps",
        default=default,
        show_default=True,
        help="write heatmap overlays and raw .npy maps (refine: and the mask); --save-maps = --maps",
    )


def echo_run_summary(summary: RunSummary) -> None:
    """The closing lines of a run on stderr: why items were redone, failures by reason (file
    names and messages escaped: one line each, whatever a name holds)."""
    from grefine_kit.cli.score_table import printable

    reasons = summary.redo_reasons
    if reasons:
        text = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        click.echo(f"redone: {text}", err=True)
    failures = summary.failures
    if failures.n_failed:
        click.echo(f"failed: {failures.n_failed} item(s), by reason:", err=True)
        for line in failures.lines():
            click.echo(printable(line), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grefine")
def cli() -> None:
    """grefine: find the bad regions of AI-generated images and refine only there.

    Start with `grefine demo` (offline, no weights: it finds a planted defect in a bundled
    image and repairs only there), then `grefine refine IMAGE --recipe restore --out DIR` on
    your own images, or `grefine refine IMAGE --prompt TEXT --out DIR` for G-Refine itself
    (weights: `grefine fetch-weights`).
    """


def warn_plugin_failures() -> None:
    from grefine_kit.parts.registry import get_registry

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
    """Console-script entry point (Ctrl-C anywhere, imports included: exit 130, no traceback)."""
    try:
        cli.main(args=argv, prog_name="grefine")
    except KeyboardInterrupt as exc:
        _interrupted(exc)
