"""Building one indicator with the options a recipe gives it (``grefine score --recipe``)."""

from __future__ import annotations

from typing import Any

from grefine_kit.indicators.base import Indicator
from grefine_kit.parts.registry import get_registry
from grefine_kit.parts.roles import INDICATOR_KIND
from grefine_kit.recipes.recipe import Recipe

__all__ = ["BACKBONE_OPTIONS", "build_indicator"]

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
