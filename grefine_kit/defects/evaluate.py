"""Measuring recipes on a planted-defect set: the figures of docs/benchmark.md's offline evidence.

For every item (a defective image with its clean reference and its region) and every *arm* (a
recipe, with the region given to it or not), :func:`measure` refines the image through the
ordinary :class:`~grefine_kit.refiner.refiner.Refiner` and measures, with
:mod:`grefine_kit.metrics.fidelity`:

- ``psnr_region_in`` / ``psnr_region``: PSNR inside the region, of the input and the output;
- ``psnr_rest`` and ``ssim_rest``: PSNR / SSIM (canonical) outside the region (the input's
  rest *is* the reference's, so 1.0 / inf mean "left alone");
- ``psnr_in`` / ``psnr``: whole-image PSNR of input and output (``psnr < psnr_in`` is a
  negative optimisation: the refiner made the image worse against its reference);
- ``mask_iou`` and ``mask_rest``: the refiner's binary mask against the region (IoU) and the
  fraction of the rest it covers (0 for an arm without a mask).

:func:`summarise` turns the rows into one line per (kind, arm): medians, and the count of
negative optimisations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

if TYPE_CHECKING:
    from grefine_kit.recipes.recipe import Recipe

__all__ = ["Arm", "Case", "Row", "load_cases", "measure", "oracle_baseline", "oracle_recipe", "summarise"]


@attrs.frozen
class Case:
    """One planted item: its id, kind, the defective image, the clean reference, the region."""

    id: str
    kind: str
    image: Any = attrs.field(eq=False, repr=False)
    reference: Any = attrs.field(eq=False, repr=False)
    region: np.ndarray = attrs.field(eq=False, repr=False)


@attrs.frozen
class Arm:
    """A recipe to measure, labelled; ``oracle``: the item's region is handed to the refiner.
    ``run`` (instead of a recipe): a function of the case giving the output image, for an arm
    that is not a recipe (:func:`oracle_baseline`); such an arm has no mask."""

    label: str
    recipe: Any
    oracle: bool = False
    run: Callable[[Case], Any] | None = None


@attrs.frozen
class Row:
    id: str
    kind: str
    arm: str
    psnr_region_in: float
    psnr_region: float
    psnr_rest: float
    ssim_rest: float
    psnr_in: float
    psnr: float
    mask_iou: float
    mask_rest: float
    seconds: float


def oracle_recipe(base: Recipe) -> Recipe:
    """``base`` with its perceptual indicator replaced by ``region-map`` and an exact mask
    (combiner ``perceptual`` with no growth or feather): the oracle arm."""
    from grefine_kit.parts.roles import COMBINER, PERCEPTUAL
    from grefine_kit.recipes.recipe import PartSpec

    parts = dict(base.parts)
    parts[PERCEPTUAL] = PartSpec("indicator", "region-map")
    # the combiner registered under the role's name: the perceptual map alone
    parts[COMBINER] = PartSpec("combiner", PERCEPTUAL, {"grow": 0.0, "feather": 0.0})
    return attrs.evolve(base, name=f"{base.name}-oracle", parts=parts)


def oracle_baseline(recipe: Recipe) -> Arm:
    """The whole-image baseline told the item's region: ``recipe`` (``restore-global``: one
    ``restore`` stage in the global slot at strength ``delta``) applied as
    :func:`~grefine_kit.stages.restore.whole_image_restoration` with the region as the defect,
    so the method, its noise level and JPEG quality are the ones the oracle's stage 1 uses on
    that region, applied to every pixel. The recipe itself finds the defect with the detector;
    this arm separates the baseline's harm from the detector's misses."""
    from PIL import Image

    from grefine_kit.stages.restore import whole_image_restoration

    strength = float(recipe.refiner.get("delta", 0.9))

    def run(case: Case) -> Image.Image:
        rgb = np.asarray(case.image.convert("RGB"), np.float64) / 255.0
        out, _method = whole_image_restoration(rgb, strength, case.region)
        return Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), "RGB")

    return Arm(f"{recipe.name} oracle", None, oracle=True, run=run)


def load_cases(manifest: str | Path, kinds: Mapping[str, str] | None = None) -> list[Case]:
    """The items of a ``grefine make-defects`` folder (its ``manifest.csv`` and ``defects.csv``)."""
    import csv

    from grefine_kit.images.loading import load_image
    from grefine_kit.indicators.region_map import read_region

    path = Path(manifest)
    with (path.parent / "defects.csv").open(encoding="utf-8") as f:
        kind_of = {r["id"]: r["kind"] for r in csv.DictReader(f)} if kinds is None else dict(kinds)
    cases = []
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            image = load_image(path.parent / row["image"])
            cases.append(
                Case(
                    id=row["id"],
                    kind=kind_of[row["id"]],
                    image=image,
                    reference=load_image(path.parent / row["reference"]),
                    region=read_region(path.parent / row["region"], image.size),
                )
            )
    return cases


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 99.0  # identical pixels: PSNR "inf", capped for medians


def measure(cases: Sequence[Case], arms: Sequence[Arm]) -> list[Row]:
    """Refine every case with every arm and measure it (see the module docstring)."""
    import time

    from grefine_kit.metrics.fidelity import mask_iou, psnr, ssim

    rows: list[Row] = []
    for arm in arms:
        refiner = arm.recipe.build() if arm.run is None else None
        for case in cases:
            started = time.perf_counter()
            if arm.run is not None:
                image, mask = arm.run(case), np.zeros(case.region.shape, bool)
            else:
                assert refiner is not None
                result = refiner.refine(
                    case.image, "", image_id=case.id, region=case.region if arm.oracle else None
                )
                image, mask = result.image, np.asarray(result.mask.binary) > 0.5
            seconds = time.perf_counter() - started
            rest = ~case.region
            rows.append(
                Row(
                    id=case.id,
                    kind=case.kind,
                    arm=arm.label,
                    psnr_region_in=_finite(psnr(case.image, case.reference, case.region)),
                    psnr_region=_finite(psnr(image, case.reference, case.region)),
                    psnr_rest=_finite(psnr(image, case.reference, rest)),
                    ssim_rest=ssim(image, case.reference, rest),
                    psnr_in=_finite(psnr(case.image, case.reference)),
                    psnr=_finite(psnr(image, case.reference)),
                    mask_iou=mask_iou(mask, case.region),
                    mask_rest=float(mask[rest].mean()),
                    seconds=seconds,
                )
            )
    return rows


def summarise(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """One dict per (kind, arm), in first-seen order: ``n``, medians of the figures, the median
    PSNR gain inside the region, its minimum, and ``negative``: how many outputs have a lower
    whole-image PSNR than their input."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.kind, row.arm), []).append(row)
    out = []
    for (kind, arm), rs in groups.items():
        gains = [r.psnr_region - r.psnr_region_in for r in rs]
        out.append(
            {
                "kind": kind,
                "arm": arm,
                "n": len(rs),
                "psnr_region_in": float(np.median([r.psnr_region_in for r in rs])),
                "psnr_region": float(np.median([r.psnr_region for r in rs])),
                "gain": float(np.median(gains)),
                "gain_min": float(np.min(gains)),
                "ssim_rest": float(np.median([r.ssim_rest for r in rs])),
                "ssim_rest_min": float(np.min([r.ssim_rest for r in rs])),
                "mask_iou": float(np.median([r.mask_iou for r in rs])),
                "mask_rest": float(np.median([r.mask_rest for r in rs])),
                "negative": sum(r.psnr < r.psnr_in for r in rs),
                "seconds": float(np.median([r.seconds for r in rs])),
            }
        )
    return out
