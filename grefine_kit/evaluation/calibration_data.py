"""Calibration data: a rated database scored with a recipe's indicators (``grefine calibrate``).

:func:`collect_items` scores every image of ``rows`` (``read_mos_table``) with the recipe's
PQ-Map and AQ-Map and returns the per-image numbers :func:`~.calibration.fit_calibration` fits
(the perceptual deficiency map and AQ-Map's phrase and noun numbers, maps at a shorter side of
``WORKING_SIDE`` px), reporting progress per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.evaluation.calibration import CalibrationItem
from grefine_kit.evaluation.mos import MosRow
from grefine_kit.progress import RunProgress

if TYPE_CHECKING:
    from grefine_kit.indicators.aq_map import AQMap
    from grefine_kit.indicators.base import Indicator
    from grefine_kit.recipes.recipe import Recipe

__all__ = ["WORKING_SIDE", "collect_items"]

WORKING_SIDE = 64  # maps are compared at this shorter side: the areas are fractions, 16-px patches


def collect_items(
    rows: Sequence[MosRow],
    recipe: Recipe,
    *,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool | str = True,
) -> tuple[list[CalibrationItem], int]:
    """Score every rated image with ``recipe``'s indicators: ``(items, images that failed to
    load)``. Each indicator is built once; AQ-Map's numbers are refitted only where they are
    its own (not in ``reference_compat`` mode). ``progress``: a
    :class:`~grefine_kit.progress.RunProgress` mode, one ``calibrate`` item per image (an
    unreadable one an error item, counted and left out). ``UserError`` when the recipe has
    neither a perceptual nor an alignment indicator."""
    from grefine_kit.api import build_indicator
    from grefine_kit.images.loading import load_image
    from grefine_kit.indicators.aq_map import AQMap
    from grefine_kit.parts.roles import ALIGNMENT, PERCEPTUAL

    perceptual, alignment = recipe.part(PERCEPTUAL), recipe.part(ALIGNMENT)
    if perceptual is None and alignment is None:
        raise UserError(f"recipe {recipe.name!r} has no perceptual or alignment indicator to calibrate")
    pq = build_indicator(perceptual.part, recipe=recipe, device=device, dtype=dtype) if perceptual else None
    aq: AQMap | None = None
    if alignment is not None:
        built = build_indicator(alignment.part, recipe=recipe, device=device, dtype=dtype)
        # only AQ-Map's own phrase numbers can be refitted; its noun maps are kept for the fit
        if isinstance(built, AQMap) and not built.reference_compat:
            built.keep_maps = True
            aq = built
    items: list[CalibrationItem] = []
    failed = 0
    report = RunProgress("calibrate", len(rows), mode=progress)
    report.planned(0)
    try:
        for row in rows:
            record = {"id": Path(row.image).stem, "file": str(row.image), "status": "ok"}
            try:
                image = load_image(row.image)
            except Exception as exc:  # an unreadable image is counted, as evaluate counts it
                failed += 1
                report.item(record | {"status": "error", "error": str(exc)})
                continue
            items.append(_item(row, image, pq, aq))
            report.item(record)
    finally:
        report.close()
    return items, failed


def _item(row: MosRow, image: Image.Image, pq: Indicator | None, aq: AQMap | None) -> CalibrationItem:
    """One rated image's numbers: PQ-Map's deficiency ``1 - P`` and AQ-Map's phrase numbers."""
    deficiency = None if pq is None else _small(1.0 - pq.score([image])[0].map)
    if aq is None or not row.prompt:
        return CalibrationItem(mos=row.mos, perceptual_deficiency=deficiency)
    (qmap,) = aq.score([image], [row.prompt])
    phrases = aq.analyse(row.prompt)[1]
    if not phrases or qmap.report is None:
        return CalibrationItem(mos=row.mos, perceptual_deficiency=deficiency)
    return CalibrationItem(
        mos=row.mos,
        perceptual_deficiency=deficiency,
        phrase_scores=[p.phrase_score for p in qmap.report.phrases],
        noun_scores=[p.noun_score for p in qmap.report.phrases],
        noun_maps=np.stack([_small(m) for m in qmap.details["noun_maps"]]),
        ancestors=[p.ancestor for p in phrases],
    )


def _small(array: np.ndarray, side: int = WORKING_SIDE) -> np.ndarray:
    """A ``(H, W)`` float map at a shorter side of ``side`` px (bilinear)."""
    h, w = array.shape
    f = min(1.0, side / min(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if size == (w, h):
        return np.asarray(array, np.float32)
    picture = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), "F")
    resized = picture.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized, np.float32)
