"""Click options for runs at scale: ``--manifest``, ``--shard``, ``--engine``, ``--workers``,
``--address`` (docs/scale.md), as one decorator that keeps command signatures unchanged.

The values are kept in click's context (``ctx.meta``); a command reads them through
:func:`run_items`, :func:`run_shard` and :func:`run_engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import click

from grefine_kit.cli.override_options import stash_options
from grefine_kit.errors import UserError
from grefine_kit.parts.hints import install_hint

F = TypeVar("F", bound=Callable[..., Any])
_META = "grefine.scale"
_NAMES = ("manifest", "shard", "engine", "workers", "address")


def scale_options(func: F) -> F:
    """Add the scale options to a command (their values go to ``ctx.meta``)."""
    wrapper = stash_options(func, _NAMES, _META)
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


def _meta() -> Mapping[str, Any]:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_META, {}) if ctx is not None else {}


def run_items(
    paths: Sequence[str], *, prompt: str | None, prompts_csv: str | None, need_prompt: bool
) -> tuple[list[Any], bool]:
    """``(items, prompts came per item)`` from PATHS or ``--manifest``.

    With a manifest, ``--prompt`` fills in the items that have no prompt of their own;
    ``--prompts`` does not apply. ``need_prompt``: PATHS need ``--prompt`` or ``--prompts``.
    """
    from grefine_kit.runner.inputs import expand_inputs, read_prompts_csv
    from grefine_kit.runs.items import make_items
    from grefine_kit.runs.manifest import read_manifest

    if prompt is not None and prompts_csv is not None:
        raise UserError("give --prompt or --prompts, not both")
    manifest = _meta().get("manifest")
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


def run_shard() -> Any:
    """The ``--shard`` as a :class:`~grefine_kit.runs.shards.Shard` (None: the whole run)."""
    from grefine_kit.runs.shards import parse_shard

    return parse_shard(_meta().get("shard"))


def engine_name() -> str:
    return str(_meta().get("engine") or "local")


def run_engine() -> Any:
    """The engine of ``--engine`` with ``--workers`` / ``--address`` when given."""
    from grefine_kit.engines import get_engine

    meta = _meta()
    name = engine_name()
    options = {k: meta.get(k) for k in ("workers", "address") if meta.get(k) is not None}
    if name == "local" and "address" in options:
        raise UserError("--address needs a cluster engine (e.g. --engine ray); the local engine has none")
    return get_engine(name, **options)


def shard_note(summary: Any) -> str:
    """`` (shard I/N; K items in other shards)`` or ``""``."""
    shard = _meta().get("shard")
    n_other = int(getattr(summary, "n_other_shards", 0) or 0)
    return f" (shard {shard}; {n_other} item(s) in other shards)" if shard else ""
