"""Convenience functions: score an image or refine it in one call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grefine_kit.indicators.base import Indicator
from grefine_kit.parts.registry import get_registry
from grefine_kit.parts.roles import INDICATOR_KIND

if TYPE_CHECKING:
    from grefine_kit.images.loading import ImageSource
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.refiner.refiner import RefineResult
    from grefine_kit.types import QualityMap

#: options an indicator may borrow from another indicator of the same recipe (the backbone)
BACKBONE_OPTIONS = ("model", "weights", "device", "dtype")


def build_indicator(
    name: str,
    *,
    recipe: str | Recipe | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **options: Any,
) -> Indicator:
    """Build indicator ``name``.

    With ``recipe``, the options come from the recipe's indicator of that name; if the recipe
    has none, the backbone options (model, weights, device, dtype) of its other indicators are
    borrowed, so ``--recipe tiny`` works for every CLIP indicator. ``device``/``dtype`` and
    ``options`` override.
    """
    from grefine_kit.recipes.recipe import Recipe

    registry = get_registry()
    accepted = registry.option_names("indicator", name)
    merged: dict[str, Any] = {}
    if recipe is not None:
        recipe_obj = recipe if isinstance(recipe, Recipe) else Recipe.load(recipe)
        specs = [s for s in recipe_obj.parts.values() if s.kind == INDICATOR_KIND]
        own = [s for s in specs if s.part == name]
        if own:
            merged.update(own[0].options)
        else:
            for spec in specs:
                for key in BACKBONE_OPTIONS:
                    if key in spec.options and (accepted is None or key in accepted):
                        merged.setdefault(key, spec.options[key])
    for key, value in (("device", device), ("dtype", dtype)):
        if value is not None and (accepted is None or key in accepted):
            merged[key] = value
    merged.update(options)
    return registry.create_as("indicator", name, merged, Indicator)


def score(
    image: ImageSource,
    prompt: str | None = None,
    *,
    indicator: str = "pq-map",
    recipe: str | Recipe | None = None,
    **options: Any,
) -> QualityMap:
    """Score one image (path, PIL image, array or tensor) with an indicator.

    Raises ``MissingDependencyError`` (a ``UserError``) before any model import when weights,
    a parser model or the device are missing here.

    >>> qmap = score("photo.png", recipe="tiny")   # doctest: +SKIP
    >>> qmap.score, qmap.map.shape                  # doctest: +SKIP
    """
    from grefine_kit.images.loading import load_image
    from grefine_kit.readiness.preflight import ensure_ready, fetch_command, recipe_argument

    part = build_indicator(indicator, recipe=recipe, **options)
    command = fetch_command(recipe=recipe_argument(recipe), indicator=indicator)
    ensure_ready({indicator: part}, fetch_command=command)
    result: QualityMap = part.score([load_image(image)], [prompt] if prompt is not None else None)[0]
    return result


def refine(
    image: ImageSource,
    prompt: str,
    *,
    recipe: str | Recipe = "g-refine",
    image_id: str = "image",
    device: str | None = None,
    dtype: str | None = None,
    region_prompts: str | list[str] | None = None,
) -> RefineResult:
    """Refine one image with a recipe (``"g-refine"`` by default; ``"tiny"`` runs offline).

    ``region_prompts``: a prompt per region (``"a [SEP] b"``, a list, or ``"[label] ..."``
    parts; the recipe needs a ``[regions]`` table), see docs/refiner.md.
    Raises ``MissingDependencyError`` before any model import when something is missing here.
    """
    from grefine_kit.images.loading import load_image
    from grefine_kit.readiness.preflight import ensure_ready, fetch_command, recipe_argument
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runner.refine_work import parts_by_table

    recipe_obj = recipe if isinstance(recipe, Recipe) else Recipe.load(recipe)
    refiner = recipe_obj.with_runtime(device=device, dtype=dtype).build()  # the parts, built once
    ensure_ready(parts_by_table(refiner), fetch_command=fetch_command(recipe=recipe_argument(recipe)))
    return refiner.refine(load_image(image), prompt, image_id=image_id, region_prompts=region_prompts)
