"""Convenience functions: score an image or refine it in one call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grefine_kit.recipes.indicators import build_indicator

__all__ = ["build_indicator", "refine", "score"]

if TYPE_CHECKING:
    from grefine_kit.images.loading import ImageSource
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.refiner.refiner import RefineResult
    from grefine_kit.types import QualityMap


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
    prompt: str | None = None,
    *,
    recipe: str | Recipe = "g-refine",
    image_id: str = "image",
    device: str | None = None,
    dtype: str | None = None,
    region_prompts: str | list[str] | None = None,
) -> RefineResult:
    """Refine one image with a recipe (``"g-refine"`` by default; ``"tiny"`` runs offline).

    ``prompt``: the image's prompt, needed when a part of the recipe reads one (AQ-Map, the
    diffusion stages: ``g-refine``, ``tiny``); the weight-free ``restore`` recipes read none
    and take the image alone. Raises ``UserError`` when the recipe reads prompts and none is
    given. ``region_prompts``: a prompt per region (``"a [SEP] b"``, a list, or ``"[label] ..."``
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
