"""Click options for recipe overrides, as decorators that keep command signatures unchanged.

``set_options`` adds ``--set KEY=VALUE`` (repeatable); ``refine_shortcuts`` adds ``--steps``,
``--strength``, ``--negative-prompt``, ``--guidance-scale``, ``--region-prompts`` and
``--skip-regions``. Both take their values out of the
command's keyword arguments and keep them in ``click``'s context (``ctx.meta``), so a command
reads them with :func:`cli_overrides` where it builds its recipe or indicator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
_META = "grefine.overrides"


def stash_options(func: F, names: tuple[str, ...], key: str = _META) -> F:
    """Wrap ``func`` so that its keyword arguments ``names`` go to ``ctx.meta[key]`` instead
    (the command's signature stays as it was)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        meta = click.get_current_context().meta.setdefault(key, {})
        for name in names:
            meta[name] = kwargs.pop(name, None)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def set_options(func: F) -> F:
    """``--set KEY=VALUE`` (repeatable): override a recipe or indicator value (TOML-typed)."""
    wrapped = stash_options(func, ("set_items",))
    return click.option(
        "--set",
        "set_items",
        multiple=True,
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set stage1.guidance_scale=5 (VALUE is read as TOML, "
        "else as text; repeatable; recorded in the report)",
    )(wrapped)


def refine_shortcuts(func: F) -> F:
    """``--steps``, ``--strength``, ``--negative-prompt``, ``--guidance-scale``,
    ``--region-prompts``, ``--skip-regions`` (short ``--set``s)."""
    wrapped = stash_options(
        func, ("steps", "strength", "negative_prompt", "guidance_scale", "region_prompts", "skip_regions")
    )
    options = [
        click.option(
            "--steps", type=click.IntRange(1, 1000), default=None, help="= --set refiner.iterations=N"
        ),
        click.option(
            "--strength",
            type=click.FloatRange(0, 1),
            default=None,
            help="fixed stage-1 strength (strength_rule=fixed, strength_min=strength_max=S)",
        ),
        click.option("--negative-prompt", default=None, help="negative prompt of every stage"),
        click.option(
            "--guidance-scale", type=click.FloatRange(0), default=None, help="guidance scale of every stage"
        ),
        click.option(
            "--region-prompts",
            default=None,
            metavar="TEXT",
            help="a prompt per region, '[SEP]'-separated, by order or '[label] ...' "
            "(= --set refiner.region_prompts=TEXT; a manifest's region_prompts column wins)",
        ),
        click.option(
            "--skip-regions",
            default=None,
            metavar="LIST",
            help="region indices (0 = first) and labels to leave untouched, e.g. '0,2,perceptual' "
            "(= --set refiner.region_skip=LIST)",
        ),
    ]
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def cli_overrides(recipe: Any = None) -> list[tuple[str, Any]]:
    """The (key, value) pairs given on this command line (``--set`` first, then shortcuts)."""
    from grefine_kit.recipes.overrides import parse_assignment, shortcut_overrides

    ctx = click.get_current_context(silent=True)
    meta = ctx.meta.get(_META, {}) if ctx is not None else {}
    pairs = [parse_assignment(item) for item in meta.get("set_items") or ()]
    stages = [s for s in ("stage1", "stage2") if recipe is not None and recipe.part(s) is not None]
    pairs += shortcut_overrides(
        steps=meta.get("steps"),
        strength=meta.get("strength"),
        negative_prompt=meta.get("negative_prompt"),
        guidance_scale=meta.get("guidance_scale"),
        stages=stages,
    )
    if meta.get("region_prompts") is not None:
        pairs.append(("refiner.region_prompts", meta["region_prompts"]))
    if meta.get("skip_regions") is not None:
        pairs.append(("refiner.region_skip", meta["skip_regions"]))
    return pairs


def build_indicator_with_overrides(
    name: str, *, recipe: str | None, device: str | None, dtype: str | None
) -> Any:
    """``api.build_indicator`` with this command line's ``--set`` values as indicator options.

    Keys are the indicator's option names (``--set model=ViT-B-32``); a recipe-style prefix
    ``indicators.perceptual.`` / ``indicators.alignment.`` is accepted and dropped. ``--set
    device=...`` / ``dtype=...`` are the same as ``--device`` / ``--dtype`` (see
    :func:`indicator_runtime`).
    """
    from grefine_kit.api import build_indicator
    from grefine_kit.errors import UserError

    device, dtype, options = indicator_runtime(device, dtype)
    try:
        return build_indicator(name, recipe=recipe, device=device, dtype=dtype, **options)
    except UserError as exc:
        if not options:
            raise
        named = next((k for k in options if f"'{k}'" in str(exc) or k in str(exc)), ", ".join(options))
        raise UserError(f"--set {named}: {exc}") from None


def indicator_overrides() -> dict[str, Any]:
    """This command line's ``--set`` values as indicator options (prefixes dropped)."""
    from grefine_kit.errors import UserError

    options: dict[str, Any] = {}
    for key, value in cli_overrides():
        short = key.removeprefix("indicators.perceptual.").removeprefix("indicators.alignment.")
        if "." in short:
            raise UserError(f"--set {key}: an indicator option has no dots (e.g. --set model=ViT-B-32)")
        options[short] = value
    return options


def indicator_runtime(device: str | None, dtype: str | None) -> tuple[Any, Any, dict[str, Any]]:
    """``(device, dtype, other options)`` of this command line: ``--set device=X`` (or
    ``dtype``) counts as ``--device X``; both given with different values is a UserError."""
    from grefine_kit.errors import UserError

    options = indicator_overrides()
    runtime: dict[str, Any] = {"device": device, "dtype": dtype}
    for key in ("device", "dtype"):
        if key not in options:
            continue
        value = options.pop(key)
        if runtime[key] is not None and runtime[key] != value:
            raise UserError(f"--set {key}={value} and --{key} {runtime[key]} disagree; give one of them")
        runtime[key] = value
    return runtime["device"], runtime["dtype"], options
