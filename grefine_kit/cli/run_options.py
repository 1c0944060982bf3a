"""The options ``score`` and ``refine`` share, gathered into one typed :class:`RunChoices`
value that the command receives as its ``run`` argument: ``--maps/--no-maps``,
``--no-resume``, the options for runs at scale (``--manifest``, ``--shard``, ``--engine``,
``--workers``, ``--address``: docs/scale.md) and ``--log-format``. :func:`run_options` turns
it into the :class:`~grefine_kit.runner.options.RunOptions` handed to the runner, and
:func:`run_items` into the run's items. ``benchmark`` takes the engine options alone
(:func:`engine_options`, :func:`build_engine`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import click

from grefine_kit.cli.app import device_option, dtype_option, maps_option
from grefine_kit.cli.override_options import gather
from grefine_kit.cli.progress_options import log_format_option
from grefine_kit.errors import UserError
from grefine_kit.parts.hints import install_hint

if TYPE_CHECKING:
    from grefine_kit.engines.base import Engine
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runs.items import Item

F = TypeVar("F", bound=Callable[..., Any])
_NAMES = ("maps", "no_resume", "manifest", "shard", "engine", "workers", "address", "log_format")


@attrs.frozen
class RunChoices:
    """The run options of one command line (None: not given)."""

    maps: bool = False
    no_resume: bool = False
    manifest: str | None = None
    shard: str | None = None
    engine: str = "local"
    workers: int | None = None
    address: str | None = None
    log_format: str = "auto"

    def build_engine(self) -> Engine:
        """The engine of ``--engine`` with ``--workers`` / ``--address`` when given."""
        return build_engine(self.engine, self.workers, self.address)


def build_engine(name: str, workers: int | None, address: str | None) -> Engine:
    """The engine ``--engine NAME`` names, with ``--workers`` / ``--address`` when given (an
    unknown name or a bad option is a ``UserError`` before any work)."""
    from grefine_kit.engines import get_engine

    if name == "local" and address is not None:
        raise UserError("--address needs a cluster engine (e.g. --engine ray); the local engine has none")
    return get_engine(name, workers=workers, address=address)


def run_command_options(maps: bool) -> Callable[[F], F]:
    """Add the shared run options (:class:`RunChoices`, the ``run`` argument; ``maps``: the
    default of ``--maps``), ``--device`` and ``--dtype`` to a command."""

    def decorate(func: F) -> F:
        wrapped: Any = gather(func, _NAMES, "run", RunChoices)
        for option in reversed(
            [
                maps_option(default=maps),
                click.option("--no-resume", is_flag=True, help="redo images whose records already say ok"),
                *_scale_options(),
                log_format_option,
                device_option,
                dtype_option,
            ]
        ):
            wrapped = option(wrapped)
        return wrapped

    return decorate


def _scale_options() -> list[Callable[[F], F]]:
    return [
        click.option(
            "--manifest",
            type=click.Path(dir_okay=False),
            default=None,
            help="items from a CSV/JSONL/Parquet file: columns id, image, prompt, seed (instead of PATHS)",
        ),
        click.option(
            "--shard", default=None, metavar="I/N", help="do only shard I of N (by a hash of the item id)"
        ),
        *_engine_option_list(),
    ]


def engine_options(func: F) -> F:
    """Adds ``--engine``, ``--workers``, ``--address`` (parameters ``engine``, ``workers``,
    ``address``; :func:`build_engine` turns them into the engine)."""
    for option in reversed(_engine_option_list()):
        func = option(func)
    return func


def _engine_option_list() -> list[Callable[[F], F]]:
    return [
        click.option(
            "--engine",
            default="local",
            show_default=True,
            help=f"who runs the items: local, or an engine plugin (ray: {install_hint('grefine-ray')})",
        ),
        click.option(
            "--workers", type=click.IntRange(1, 100_000), default=None, help="engine workers (ray: actors)"
        ),
        click.option(
            "--address", default=None, help="engine cluster address (ray: 'auto' or ray://host:10001)"
        ),
    ]


def run_items(
    paths: Sequence[str],
    run: RunChoices,
    *,
    prompt: str | None,
    prompts_csv: str | None,
    need_prompt: bool,
) -> tuple[list[Item], bool]:
    """``(items, prompts came per item)`` from PATHS or ``--manifest``.

    With a manifest, ``--prompt`` fills in the items that have no prompt of their own;
    ``--prompts`` does not apply. ``need_prompt``: PATHS need ``--prompt`` or ``--prompts``.
    """
    from grefine_kit.runs.inputs import expand_inputs, read_prompts_csv
    from grefine_kit.runs.items import make_items
    from grefine_kit.runs.manifest import read_manifest

    if prompt is not None and prompts_csv is not None:
        raise UserError("give --prompt or --prompts, not both")
    manifest = run.manifest
    if manifest is not None:
        if paths:
            raise UserError("give PATHS or --manifest, not both")
        if prompts_csv is not None:
            raise UserError(
                "--prompts does not apply with --manifest: put the prompts in its 'prompt' column"
            )
        items = read_manifest(Path(manifest))
        if prompt is not None:
            items = [it if it.prompt is not None else attrs.evolve(it, prompt=prompt) for it in items]
        return items, True
    if not paths:
        raise UserError("give image PATHS (files, folders or globs) or --manifest FILE")
    if need_prompt and prompt is None and prompts_csv is None:
        raise UserError(
            "this recipe reads prompts: give exactly one of --prompt TEXT or --prompts CSV"
            " (or use --manifest)"
        )
    files = expand_inputs(paths)
    prompts: Mapping[str, str] | str | None = read_prompts_csv(Path(prompts_csv)) if prompts_csv else prompt
    return make_items(files, prompts), prompts_csv is not None


def run_options(run: RunChoices, *, batch_size: int | None) -> RunOptions:
    """The runner's options from this command line (the engine is built here: an unknown
    name or a bad ``--workers`` fails before any work)."""
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runs.shards import parse_shard

    return RunOptions(
        save_maps=run.maps,
        resume=not run.no_resume,
        progress=run.log_format,
        shard=parse_shard(run.shard),
        engine=run.build_engine(),
        batch_size=batch_size,
    )
