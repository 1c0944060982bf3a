"""Running the two stage roles over a RefineState: whole-image, per region, global.

Stage 1 (``masked``) runs once on the whole image with the combiner's mask when the recipe has
no regions block, else once per region on the region's crop with the region's own mask,
conditioning and seed. Either way the result is pasted back through the soft mask, so every
pixel outside the mask (or outside every region) is the input's exactly. Stage 2 (``global``)
is a mild pass over the whole image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from grefine_kit.images.ops import match_colour
from grefine_kit.refiner.region_rules import RegionPrompts, plan_regions
from grefine_kit.refiner.roles import INDICATOR_ROLES
from grefine_kit.refiner.strength import stage1_strength
from grefine_kit.stages.base import StageRequest, StageResult, derive_seed

if TYPE_CHECKING:
    from grefine_kit.refiner.options import RefinerOptions
    from grefine_kit.refiner.state import RefineState

__all__ = ["paste_back", "region_seed", "run_global", "run_masked", "stage_report"]


def region_seed(image_seed: int, index: int) -> int:
    """The seed of region ``index`` of an image: a stable hash of (image seed, index)."""
    return derive_seed(image_seed, f"region:{index}")


def stage_report(result: StageResult, strength: float, steps: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "strength": float(strength),
        "steps": int(steps),
        "steps_run": int(result.steps_run),
        "skipped": result.skipped,
        "seconds": float(result.seconds),
        **({"previews": [int(k) for k, _ in result.previews]} if result.previews else {}),
    }
    if result.details:  # a stage's own findings (restore: the methods it chose)
        report["details"] = dict(result.details)
    return report


def _checked(result: StageResult, size: tuple[int, int], name: str) -> StageResult:
    if result.image.size != size:
        raise RuntimeError(f"{name} returned a {result.image.size} image for a {size} input")
    return result


def run_masked(stage: Any, state: RefineState, options: RefinerOptions) -> dict[str, Any]:
    """Stage 1 over ``state`` (writes ``state.image``); returns the stage's report entry."""
    steps = options.steps[0]
    p, a = (state.score(r) for r in INDICATOR_ROLES)
    strength = stage1_strength(p, a, options.strength_rule, options.strength_min, options.strength_max)
    mask = state.mask
    assert mask is not None  # check_blocks: a masked stage reads "mask"
    if not mask.binary.any() or mask.area <= options.mask_min_area:
        reason = f"mask nearly empty (area {mask.area:.4g} <= mask_min_area {options.mask_min_area:.4g})"
        skipped = StageResult(image=state.image)
        return {**stage_report(skipped, strength, steps), "skipped": reason, "regions": None}
    if state.regions is None:
        request = StageRequest(
            image=state.image,
            mask=mask,
            prompt=state.prompt,
            emphasis=state.emphasis,
            strength=strength,
            steps=steps,
            seed=state.seed,
        )
        result = _checked(stage.run(request), state.image.size, "stage1")
        if result.previews:
            match = _matching(options)
            shown = [(k, paste_back(state.image, im, mask.soft, *match)) for k, im in result.previews]
            state.previews["stage1"] = shown
        state.image = paste_back(state.image, result.image, mask.soft, *_matching(options))
        return {**stage_report(result, strength, steps), "regions": None}
    current = state.image.copy()
    per_region: list[dict[str, Any]] = []
    own = state.region_prompts
    plans = plan_regions(
        state.regions,
        prompt=state.prompt,
        prompts=own if own is not None else RegionPrompts.parse(options.region_prompts),
        fallback=options.region_prompt_fallback,
        rules=options.region_rules,
    )
    for region, plan in zip(state.regions, plans, strict=True):
        index = plan.index
        crop = current.crop(region.crop)
        seed = region_seed(state.seed, index)
        entry = {"index": index, **region.to_json(), "prompt": plan.prompt}
        entry["prompt_source"] = plan.prompt_source
        if plan.skip is not None:  # nothing runs: its pixels stay exactly as they are
            skipped = StageResult(image=crop, skipped=plan.skip)
            per_region.append({**entry, **stage_report(skipped, strength, steps), "seed": seed})
            continue
        request = StageRequest(
            image=crop,
            mask=region.mask,
            prompt=plan.prompt,
            emphasis=plan.emphasis,
            strength=strength,
            steps=steps,
            seed=seed,
            max_upscale=region.max_upscale,
        )
        result = _checked(stage.run(request), crop.size, f"stage1 on region {index}")
        for k, im in result.previews:
            whole = current.copy()
            whole.paste(paste_back(crop, im, region.mask.soft, *_matching(options)), region.crop[:2])
            state.previews.setdefault(f"stage1-region{index}", []).append((k, whole))
        current.paste(paste_back(crop, result.image, region.mask.soft, *_matching(options)), region.crop[:2])
        per_region.append({**entry, **stage_report(result, strength, steps), "seed": seed})
    state.image = current
    ran = [r for r in per_region if r["skipped"] is None]
    return {
        "strength": float(strength),
        "steps": int(steps),
        "steps_run": sum(int(r["steps_run"]) for r in per_region),
        "skipped": None if ran else _why_none(per_region),
        "seconds": sum(float(r["seconds"]) for r in per_region),
        "regions": per_region,
    }


def _matching(options: RefinerOptions) -> tuple[str, int]:
    return options.colour_match, options.colour_match_width


def _why_none(per_region: list[dict[str, Any]]) -> str:
    if not per_region:
        return "no region passed the regions filters"
    return "every region skipped: " + "; ".join(sorted({str(r["skipped"]) for r in per_region}))


def run_global(stage: Any, state: RefineState, options: RefinerOptions) -> dict[str, Any]:
    """Stage 2 over ``state`` (writes ``state.image``); returns the stage's report entry."""
    steps = options.steps[1]
    request = StageRequest(
        image=state.image,
        mask=None,
        prompt=state.prompt,
        emphasis=state.emphasis,
        strength=options.delta,
        steps=steps,
        seed=state.seed,
    )
    result = _checked(stage.run(request), state.image.size, "stage2")
    if result.previews:
        state.previews["stage2"] = list(result.previews)
    state.image = result.image
    return stage_report(result, options.delta, steps)


def paste_back(
    original: Image.Image,
    refined: Image.Image,
    soft: np.ndarray,
    colour_match: str = "none",
    match_width: int = 8,
) -> Image.Image:
    """``soft · refined + (1 − soft) · original`` per pixel; where ``soft == 0`` the original
    pixel is copied exactly, where ``soft == 1`` the refined one. ``colour_match`` (``none``,
    ``mean``, ``local``) first shifts ``refined``'s colour to agree with the original around
    the mask (:func:`grefine_kit.images.ops.match_colour`, ring ``match_width`` px)."""
    o = np.asarray(original.convert("RGB"), dtype=np.float32)
    r = np.asarray(refined.convert("RGB"), dtype=np.float32)
    r = match_colour(o, r, soft > 0, colour_match, match_width)
    weight = soft.astype(np.float32)[..., None]
    mixed = np.clip(np.rint(weight * r + (1.0 - weight) * o), 0, 255)
    out = np.where(weight > 0, mixed, o).astype(np.uint8)
    return Image.fromarray(out, "RGB")
