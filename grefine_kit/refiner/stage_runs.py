"""Running a stage over a RefineState: masked (whole-image or per region) or global.

A masked stage (stage 1, or an extra masked stage) runs once on the whole image with the
combiner's mask when the recipe has no regions block, else once per region on the region's crop
with the region's own mask, conditioning and seed. Either way the result is pasted back through
the soft mask, so every pixel outside the mask (or outside every region) is the input's
exactly. A global stage (stage 2, or an extra global stage) is a pass over the whole image.
The stage block's :class:`~grefine_kit.refiner.strength.StagePolicy` gives the strength, the
steps and the skip threshold; ``name`` (the stage's role) keys its previews and messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from grefine_kit.images.ops import match_colour
from grefine_kit.refiner.region_rules import RegionPrompts, plan_regions
from grefine_kit.stages.base import Stage, StageRequest, StageResult, derive_seed

if TYPE_CHECKING:
    from grefine_kit.refiner.options import RefinerOptions
    from grefine_kit.refiner.state import RefineState
    from grefine_kit.refiner.strength import StagePolicy
    from grefine_kit.types import Mask

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


def run_masked(
    stage: Stage, state: RefineState, policy: StagePolicy, options: RefinerOptions, name: str
) -> dict[str, Any]:
    """A masked stage over ``state`` (writes ``state.image``); returns the stage's report entry.
    ``options`` gives the region prompt rules and the colour matching of the paste-back."""
    steps = policy.steps
    strength = policy.strength(state.score)
    mask = state.mask
    assert mask is not None  # check_blocks: a masked stage reads "mask"
    if not mask.binary.any() or mask.area <= policy.mask_min_area:
        reason = f"mask nearly empty (area {mask.area:.4g} <= mask_min_area {policy.mask_min_area:.4g})"
        skipped = StageResult(image=state.image)
        return {**stage_report(skipped, strength, steps), "skipped": reason, "regions": None}
    if state.regions is None:
        result = _checked(stage.run(_whole(state, mask, strength, steps)), state.image.size, name)
        if result.previews:
            match = _matching(options)
            shown = [(k, paste_back(state.image, im, mask.soft, *match)) for k, im in result.previews]
            state.previews[name] = shown
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
        result = _checked(stage.run(request), crop.size, f"{name} on region {index}")
        for k, im in result.previews:
            whole = current.copy()
            whole.paste(paste_back(crop, im, region.mask.soft, *_matching(options)), region.crop[:2])
            state.previews.setdefault(f"{name}-region{index}", []).append((k, whole))
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


def _whole(state: RefineState, mask: Mask | None, strength: float, steps: int) -> StageRequest:
    """The request for a stage over the whole current image (``mask`` None: a global pass)."""
    return StageRequest(
        image=state.image,
        mask=mask,
        prompt=state.prompt,
        emphasis=state.emphasis,
        strength=strength,
        steps=steps,
        seed=state.seed,
    )


def run_global(stage: Stage, state: RefineState, policy: StagePolicy, name: str) -> dict[str, Any]:
    """A global stage over ``state`` (writes ``state.image``); returns the stage's report entry."""
    steps = policy.steps
    strength = policy.strength(state.score)
    result = _checked(stage.run(_whole(state, None, strength, steps)), state.image.size, name)
    if result.previews:
        state.previews[name] = list(result.previews)
    state.image = result.image
    return stage_report(result, strength, steps)


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
