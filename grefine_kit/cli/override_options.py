"""Click options for recipe overrides, gathered into one typed :class:`Overrides` value.

``override_options()`` adds ``--set KEY=VALUE`` (repeatable); ``override_options(shortcuts=True)``
also adds ``--steps``, ``--strength``, ``--negative-prompt``, ``--guidance-scale``,
``--region-prompts`` and ``--skip-regions``. The command receives them as one keyword
argument, ``overrides`` (an :class:`Overrides`), and applies them where it builds its recipe
(:meth:`Overrides.pairs`) or indicator (:func:`indicator_spec`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import click

from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL, STAGE_ROLES

if TYPE_CHECKING:
    from grefine_kit.indicators.base import Indicator
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runner.score_work import IndicatorSpec

F = TypeVar("F", bound=Callable[..., Any])

_SHORTCUTS = ("steps", "strength", "negative_prompt", "guidance_scale", "region_prompts", "skip_regions")


@attrs.frozen
class Overrides:
    """The overrides given on one command line: ``--set`` items (as typed) and the refine
    shortcuts (None: not given)."""

    set_items: tuple[str, ...] = ()
    steps: int | None = None
    strength: float | None = None
    negative_prompt: str | None = None
    guidance_scale: float | None = None
    region_prompts: str | None = None
    skip_regions: str | None = None

    def set_pairs(self) -> list[tuple[str, Any]]:
        """The ``--set`` items as ``(key, value)`` pairs (values read as TOML)."""
        from grefine_kit.recipes.overrides import parse_assignment

        return [parse_assignment(item) for item in self.set_items]

    def pairs(self, recipe: Recipe | None = None) -> list[tuple[str, Any]]:
        """Every ``(key, value)`` pair (``--set`` first, then the shortcuts; ``recipe``: whose
        stages the stage shortcuts reach)."""
        from grefine_kit.recipes.overrides import shortcut_overrides

        pairs = self.set_pairs()
        stages = [s for s in STAGE_ROLES if recipe is not None and recipe.part(s) is not None]
        pairs += shortcut_overrides(
            steps=self.steps,
            strength=self.strength,
            negative_prompt=self.negative_prompt,
            guidance_scale=self.guidance_scale,
            stages=stages,
        )
        if self.region_prompts is not None:
            pairs.append(("refiner.region_prompts", self.region_prompts))
        if self.skip_regions is not None:
            pairs.append(("refiner.region_skip", self.skip_regions))
        return pairs


def gather(func: F, names: tuple[str, ...], into: str, factory: Callable[..., Any]) -> F:
    """Wrap ``func`` so that its keyword arguments ``names`` reach it as one keyword
    argument ``into`` = ``factory(**those)`` (None values left out)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: value for name in names if (value := kwargs.pop(name, None)) is not None}
        return func(*args, **kwargs, **{into: factory(**given)})

    return wrapper  # type: ignore[return-value]


def override_options(shortcuts: bool = False) -> Callable[[F], F]:
    """``--set KEY=VALUE`` (repeatable), and with ``shortcuts`` the refine shortcuts, as the
    command's ``overrides`` argument (:class:`Overrides`)."""

    def decorate(func: F) -> F:
        names = ("set_items", *(_SHORTCUTS if shortcuts else ()))
        wrapped: Any = gather(func, names, "overrides", _overrides)
        options = [
            click.option(
                "--set",
                "set_items",
                multiple=True,
                metavar="KEY=VALUE",
                help="override a recipe value, e.g. --set stage1.guidance_scale=5 (VALUE is read as "
                "TOML, else as text; repeatable; recorded in the report)",
            ),
            *(_shortcut_options() if shortcuts else []),
        ]
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped

    return decorate


def _overrides(set_items: tuple[str, ...] = (), **shortcuts: Any) -> Overrides:
    return Overrides(tuple(set_items), **shortcuts)


def _shortcut_options() -> list[Callable[[F], F]]:
    return [
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


def indicator_spec(
    name: str, *, recipe: str | None, device: str | None, dtype: str | None, overrides: Overrides
) -> IndicatorSpec:
    """The :class:`~grefine_kit.runner.score_work.IndicatorSpec` of this command line, with
    its ``--set`` values as indicator options.

    Keys are the indicator's option names (``--set model=ViT-B-32``); a recipe-style prefix
    ``indicators.perceptual.`` / ``indicators.alignment.`` is accepted and dropped. ``--set
    device=...`` / ``dtype=...`` are the same as ``--device`` / ``--dtype`` (both given with
    different values is a UserError)."""
    from grefine_kit.errors import UserError
    from grefine_kit.runner.score_work import IndicatorSpec

    options: dict[str, Any] = {}
    for key, value in overrides.set_pairs():
        short = key.removeprefix(f"indicators.{PERCEPTUAL}.").removeprefix(f"indicators.{ALIGNMENT}.")
        if "." in short:
            raise UserError(f"--set {key}: an indicator option has no dots (e.g. --set model=ViT-B-32)")
        options[short] = value
    runtime: dict[str, Any] = {"device": device, "dtype": dtype}
    for key in ("device", "dtype"):
        if key not in options:
            continue
        value = options.pop(key)
        if runtime[key] is not None and runtime[key] != value:
            raise UserError(f"--set {key}={value} and --{key} {runtime[key]} disagree; give one of them")
        runtime[key] = value
    return IndicatorSpec(name, recipe, runtime["device"], runtime["dtype"], options)


def build_indicator_spec(spec: IndicatorSpec) -> Indicator:
    """``spec.build()``, an error naming the ``--set`` option it comes from when one does."""
    from grefine_kit.errors import UserError

    try:
        return spec.build()
    except UserError as exc:
        if not spec.options:
            raise
        named = next(
            (k for k in spec.options if f"'{k}'" in str(exc) or k in str(exc)), ", ".join(spec.options)
        )
        raise UserError(f"--set {named}: {exc}") from None
