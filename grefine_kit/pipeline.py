"""The Refiner: indicators -> combiner -> stage 1 (masked) -> stage 2 (global) (docs/design.md 2, 6.4-6.5).

Per image: the indicators run once; the combiner turns their maps into a repaint mask; stage 1
inpaints inside it with a strength that falls as quality rises and with the AQ report's
emphasised phrases; the original pixels are pasted back outside the mask exactly (feathered
inside it); stage 2 runs a mild global pass of strength ``delta``. The output has exactly the
input's size. Every number that decided something goes into a JSON-able report.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from typing import Any

import attrs
import numpy as np
from attrs import validators as v
from PIL import Image

from grefine_kit.combiners import Combiner, GRefineCombiner, empty_mask
from grefine_kit.stages.base import StageRequest, StageResult, derive_seed
from grefine_kit.strength import STRENGTH_RULES, split_iterations, stage1_strength
from grefine_kit.types import Mask, QualityMap

__all__ = ["RefineResult", "Refiner", "crop_box", "paste_back"]

_VERSIONED = ("grefine-kit", "torch", "diffusers", "transformers", "open_clip_torch")


@attrs.frozen
class RefineResult:
    """One refined image.

    Attributes:
        image: the refined RGB image, same size as the input.
        mask: the combiner's mask at the input size (1 = repaint).
        perceptual / alignment: the indicators' QualityMaps (None when the recipe has none).
        report: JSON-able dict: scores, mask area, per-stage strength / steps / steps run /
            skip reason / seconds, seed, timings, recipe name and hash, package versions.
    """

    image: Image.Image = attrs.field(eq=False)
    mask: Mask = attrs.field(eq=False)
    perceptual: QualityMap | None = attrs.field(default=None, eq=False)
    alignment: QualityMap | None = attrs.field(default=None, eq=False)
    report: dict[str, Any] = attrs.field(factory=dict)


def _unit(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    # bool is an int subclass: ``delta = true`` in a recipe must not read as 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value <= 1.0):
        raise ValueError(f"{attribute.name} must be a number in [0, 1]; got {value!r}")


def _not_bool(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be an integer, not a boolean ({value!r})")


@attrs.define(kw_only=True)
class Refiner:
    """Assembled from already-built parts; construction loads nothing.

    Parts: ``perceptual`` / ``alignment`` indicators (either may be None), ``combiner``,
    ``stage1`` (role ``masked``) and ``stage2`` (role ``global``), either may be None.

    Options (recipe ``[refiner]`` keys):
        iterations: total diffusion schedule steps, split between the stages (paper: 20).
        split: fraction of ``iterations`` for stage 1 (paper: half each); a stage runs
            ``int(its steps × its strength)`` of them.
        strength_rule: ``falling`` (default: ``strength_min + (strength_max − strength_min) ·
            (1 − (p+a)/2)``, HQ images are barely touched), ``paper`` (the literal ``(p+a)/2``),
            ``fixed`` (``strength_max``).
        strength_min / strength_max: the stage-1 strength range.
        delta: stage-2 strength (the paper's "extremely small" δ).
        mask_min_area: skip stage 1 when the mask covers this fraction of the image or less
            (the combiner already empties masks below its own ``min_area``).
        only_masked: inpaint a padded crop around the mask's bounding box (run at the model's
            resolution, so small defects get more pixels) instead of the whole image.
        padding: the crop's margin, as a fraction of the image's shorter side.
        batch_size: images per indicator batch in ``refine_many`` (1..1024).
        seed / recipe_name / recipe_hash / recipe_overrides: provenance (seeds derive from ``seed``).
    """

    perceptual: Any = None
    alignment: Any = None
    combiner: Combiner | None = attrs.field(factory=GRefineCombiner)
    stage1: Any = None
    stage2: Any = None
    iterations: int = attrs.field(default=20, validator=[v.instance_of(int), _not_bool, v.ge(0), v.le(1000)])
    split: float = attrs.field(default=0.5, validator=_unit)
    strength_rule: str = attrs.field(default="falling", validator=v.in_(STRENGTH_RULES))
    strength_min: float = attrs.field(default=0.3, validator=_unit)
    strength_max: float = attrs.field(default=0.95, validator=_unit)
    delta: float = attrs.field(default=0.2, validator=_unit)
    mask_min_area: float = attrs.field(default=0.0, validator=_unit)
    only_masked: bool = attrs.field(default=False, validator=v.instance_of(bool))
    padding: float = attrs.field(default=0.0625, validator=_unit)
    batch_size: int = attrs.field(default=4, validator=[v.instance_of(int), _not_bool, v.ge(1), v.le(1024)])
    seed: int = attrs.field(default=0, validator=[v.instance_of(int), _not_bool])
    recipe_name: str = attrs.field(default="", validator=v.instance_of(str))
    recipe_hash: str = attrs.field(default="", validator=v.instance_of(str))
    recipe_overrides: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.strength_min > self.strength_max:
            raise ValueError(f"strength_min ({self.strength_min}) > strength_max ({self.strength_max})")
        for name, stage, role in (("stage1", self.stage1, "masked"), ("stage2", self.stage2, "global")):
            if stage is not None and getattr(stage, "role", None) != role:
                raise ValueError(
                    f"{name} must be a {role!r} stage; got role {getattr(stage, 'role', None)!r}"
                )
        n1, n2 = split_iterations(self.iterations, self.split)
        if self.stage1 is not None and n1 == 0:
            raise ValueError(f"split={self.split} of iterations={self.iterations} leaves stage 1 no steps")
        if self.stage2 is not None and n2 == 0:
            raise ValueError(f"split={self.split} of iterations={self.iterations} leaves stage 2 no steps")
        if self.stage1 is not None and self.combiner is None:
            raise ValueError("stage1 needs a combiner to make its mask")
        given = {"perceptual": self.perceptual, "alignment": self.alignment}
        for need in getattr(self.combiner, "requires", ()):
            if given.get(need) is None:
                raise ValueError(f"combiner {type(self.combiner).__name__} needs a {need} indicator")

    # -- public API ------------------------------------------------------------------------

    def refine(self, image: Image.Image, prompt: str, image_id: str = "image") -> RefineResult:
        """Refine one RGB image; ``image_id`` (with the recipe seed) fixes the random seed."""
        return next(self.refine_many([(image, prompt, image_id)]))

    def refine_many(self, items: Iterable[tuple[Image.Image, str, str]]) -> Iterator[RefineResult]:
        """Refine ``(image, prompt, image_id)`` items lazily, scoring ``batch_size`` at a time.
        Results do not depend on the batching (seeds come from the ids)."""
        batch: list[tuple[Image.Image, str, str]] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from self._refine_batch(batch)
                batch = []
        if batch:
            yield from self._refine_batch(batch)

    # -- internals -------------------------------------------------------------------------

    def _score(
        self, indicator: Any, images: Sequence[Image.Image], prompts: Sequence[str]
    ) -> tuple[list[QualityMap | None], float]:
        if indicator is None:
            return [None] * len(images), 0.0
        started = time.perf_counter()
        maps = indicator.score(list(images), list(prompts) if indicator.needs_prompt else None)
        if len(maps) != len(images):
            raise RuntimeError(
                f"{type(indicator).__name__} returned {len(maps)} maps for {len(images)} images"
            )
        return list(maps), (time.perf_counter() - started) / len(images)

    def _refine_batch(self, batch: Sequence[tuple[Image.Image, str, str]]) -> Iterator[RefineResult]:
        images = [im if im.mode == "RGB" else im.convert("RGB") for im, _, _ in batch]
        prompts = [p for _, p, _ in batch]
        p_maps, p_sec = self._score(self.perceptual, images, prompts)
        a_maps, a_sec = self._score(self.alignment, images, prompts)
        for i, (_, prompt, image_id) in enumerate(batch):
            timings = {"perceptual": p_sec, "alignment": a_sec}
            yield self._refine_one(images[i], prompt, image_id, p_maps[i], a_maps[i], timings)

    def _refine_one(
        self,
        image: Image.Image,
        prompt: str,
        image_id: str,
        perceptual: QualityMap | None,
        alignment: QualityMap | None,
        timings: dict[str, float],
    ) -> RefineResult:
        started = time.perf_counter()
        seed = derive_seed(self.seed, image_id)
        t = time.perf_counter()
        mask = (
            self.combiner.combine(perceptual, alignment, image.size)
            if self.combiner
            else empty_mask(image.size)
        )
        timings["combine"] = time.perf_counter() - t
        emphasis = _emphasis(alignment)
        p = perceptual.score if perceptual is not None else None
        a = alignment.score if alignment is not None else None
        n1, n2 = split_iterations(self.iterations, self.split)
        report: dict[str, Any] = {
            "image_id": image_id,
            "prompt": prompt,
            "size": list(image.size),
            "seed": seed,
            "scores": {"perceptual": p, "alignment": a},
            "mask_area": mask.area,
            "emphasis": [list(e) for e in emphasis],
            "recipe": {"name": self.recipe_name, "hash": self.recipe_hash, "seed": self.seed},
        }
        if self.recipe_overrides:  # --set values from the command line (grefine_kit.overrides)
            report["recipe"]["overrides"] = dict(self.recipe_overrides)
        current = image
        if self.stage1 is not None:
            strength = stage1_strength(p, a, self.strength_rule, self.strength_min, self.strength_max)
            current, report["stage1"] = self._stage1(image, mask, prompt, emphasis, strength, n1, seed)
            timings["stage1"] = report["stage1"]["seconds"]
        if self.stage2 is not None:
            request = StageRequest(
                image=current,
                mask=None,
                prompt=prompt,
                emphasis=emphasis,
                strength=self.delta,
                steps=n2,
                seed=seed,
            )
            result = self.stage2.run(request)
            current = _checked(result, current.size, "stage2").image
            report["stage2"] = _stage_report(result, self.delta, n2)
            timings["stage2"] = result.seconds
        timings["refine"] = time.perf_counter() - started
        report["timings"] = timings
        report["maps"] = {
            k: m.to_json() for k, m in (("perceptual", perceptual), ("alignment", alignment)) if m
        }
        report["versions"] = package_versions()
        return RefineResult(
            image=current, mask=mask, perceptual=perceptual, alignment=alignment, report=report
        )

    def _stage1(
        self,
        image: Image.Image,
        mask: Mask,
        prompt: str,
        emphasis: tuple[tuple[str, float], ...],
        strength: float,
        steps: int,
        seed: int,
    ) -> tuple[Image.Image, dict[str, Any]]:
        if not mask.binary.any() or mask.area <= self.mask_min_area:
            reason = f"mask nearly empty (area {mask.area:.4g} <= mask_min_area {self.mask_min_area:.4g})"
            return image, {**_stage_report(StageResult(image=image), strength, steps), "skipped": reason}
        box = crop_box(mask.binary, self.padding) if self.only_masked else (0, 0, *image.size)
        region = image.crop(box) if self.only_masked else image
        left, top, right, bottom = box
        sub_mask = (
            Mask(binary=mask.binary[top:bottom, left:right], soft=mask.soft[top:bottom, left:right])
            if self.only_masked
            else mask
        )
        request = StageRequest(
            image=region,
            mask=sub_mask,
            prompt=prompt,
            emphasis=emphasis,
            strength=strength,
            steps=steps,
            seed=seed,
        )
        result = _checked(self.stage1.run(request), region.size, "stage1")
        out = image.copy()
        out.paste(paste_back(region, result.image, sub_mask.soft), (left, top))
        return out, {
            **_stage_report(result, strength, steps),
            "crop": list(box) if self.only_masked else None,
        }


def _checked(result: StageResult, size: tuple[int, int], name: str) -> StageResult:
    if result.image.size != size:
        raise RuntimeError(f"{name} returned a {result.image.size} image for a {size} input")
    return result


def _stage_report(result: StageResult, strength: float, steps: int) -> dict[str, Any]:
    return {
        "strength": float(strength),
        "steps": int(steps),
        "steps_run": int(result.steps_run),
        "skipped": result.skipped,
        "seconds": float(result.seconds),
    }


def _emphasis(alignment: QualityMap | None) -> tuple[tuple[str, float], ...]:
    report = alignment.details.get("report") if alignment is not None else None
    pairs = getattr(report, "emphasis", ()) or ()
    return tuple((str(phrase), float(weight)) for phrase, weight in pairs)


def crop_box(binary: np.ndarray, padding: float) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the mask's bounding box grown by ``padding`` × the
    shorter image side, clipped to the image. The mask must not be empty."""
    ys, xs = np.nonzero(binary)
    if ys.size == 0:
        raise ValueError("crop_box needs a non-empty mask")
    h, w = binary.shape
    pad = round(padding * min(w, h))
    return (
        max(0, int(xs.min()) - pad),
        max(0, int(ys.min()) - pad),
        min(w, int(xs.max()) + 1 + pad),
        min(h, int(ys.max()) + 1 + pad),
    )


def paste_back(original: Image.Image, refined: Image.Image, soft: np.ndarray) -> Image.Image:
    """``soft · refined + (1 − soft) · original`` per pixel; where ``soft == 0`` the original
    pixel is copied exactly, where ``soft == 1`` the refined one."""
    o = np.asarray(original.convert("RGB"), dtype=np.float32)
    r = np.asarray(refined.convert("RGB"), dtype=np.float32)
    weight = soft.astype(np.float32)[..., None]
    mixed = np.clip(np.rint(weight * r + (1.0 - weight) * o), 0, 255)
    out = np.where(weight > 0, mixed, o).astype(np.uint8)
    return Image.fromarray(out, "RGB")


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str | None], ...]:
    found: list[tuple[str, str | None]] = []
    for dist in _VERSIONED:
        try:
            found.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            found.append((dist, None))
    return tuple(found)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the output (None when missing)."""
    return dict(_versions())
