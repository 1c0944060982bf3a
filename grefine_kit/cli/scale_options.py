"""Click options for runs at scale: ``--manifest``, ``--shard``, ``--engine``, ``--workers``,
``--address`` (docs/scale.md), gathered into one typed :class:`ScaleChoices` value that the
command receives as its ``scale`` argument; :func:`run_options` turns it (and the command's
own choices) into the :class:`~grefine_kit.runner.options.RunOptions` handed to the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import click

from grefine_kit.cli.override_options import gather
from grefine_kit.errors import UserError
from grefine_kit.parts.hints import install_hint

if TYPE_CHECKING:
    from grefine_kit.engines.base import Engine
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runs.items import Item

F = TypeVar("F", bound=Callable[..., Any])
_NAMES = ("manifest", "shard", "engine", "workers", "address")


@attrs.frozen
class ScaleChoices:
    """The scale options of one command line (None: not given)."""

    manifest: str | None = None
    shard: str | None = None
    engine: str = "local"
    workers: int | None = None
    address: str | None = None

    def build_engine(self) -> Engine:
        """The engine of ``--engine`` with ``--workers`` / ``--address`` when given."""
        from grefine_kit.engines import get_engine

        if self.engine == "local" and self.address is not None:
            raise UserError("--address needs a cluster engine (e.g. --engine ray); the local engine has none")
        return get_engine(self.engine, workers=self.workers, address=self.address)


def scale_options(func: F) -> F:
    """Add the scale options to a command (it receives them as ``scale``: :class:`ScaleChoices`)."""
    wrapper = gather(func, _NAMES, "scale", ScaleChoices)
    options = [
        click.option(
            "--manifest",
            type=click.Path(dir_okay=False),
            default=None,
            help="items from a CSV/JSONL/Parquet file: columns id, image, prompt, seed (instead of PATHS)",
        ),
        click.option(
            "--shard", default=None, metavar="I/N", help="do only shard I of N (by a hash of the item id)"
        ),
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
    wrapped: Any = wrapper
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def run_items(
    paths: Sequence[str],
    scale: ScaleChoices,
    *,
    prompt: str | None,
    prompts_csv: str | None,
    need_prompt: bool,
) -> tuple[list[Item], bool]:
    """``(items, prompts came per item)`` from PATHS or ``--manifest``.

    With a manifest, ``--prompt`` fills in the items that have no prompt of their own;
    ``--prompts`` does not apply. ``need_prompt``: PATHS need ``--prompt`` or ``--prompts``.
    """
    from grefine_kit.runner.inputs import expand_inputs, read_prompts_csv
    from grefine_kit.runs.items import make_items
    from grefine_kit.runs.manifest import read_manifest

    if prompt is not None and prompts_csv is not None:
        raise UserError("give --prompt or --prompts, not both")
    manifest = scale.manifest
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
        raise UserError("give exactly one of --prompt TEXT or --prompts CSV (or use --manifest)")
    files = expand_inputs(paths)
    prompts: Mapping[str, str] | str | None = read_prompts_csv(Path(prompts_csv)) if prompts_csv else prompt
    return make_items(files, prompts), prompts_csv is not None


def run_options(
    scale: ScaleChoices, *, save_maps: bool, no_resume: bool, log_format: str, batch_size: int | None
) -> RunOptions:
    """The runner's options from this command line (the engine is built here: an unknown
    name or a bad ``--workers`` fails before any work)."""
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runs.shards import parse_shard

    return RunOptions(
        save_maps=save_maps,
        resume=not no_resume,
        progress=log_format,
        shard=parse_shard(scale.shard),
        engine=scale.build_engine(),
        batch_size=batch_size,
    )
