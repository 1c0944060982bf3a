"""Gathering what full-reference metrics need per image.

The files are read by :mod:`grefine_kit.images.references` (``load_reference``,
``load_region``: what they accept and refuse is said there).

- :func:`build_context`: a :class:`~grefine_kit.metrics.base.MetricContext` holding what a set
  of metric needs asks for; a field that cannot be had is None with its reason in
  ``problems`` (so the metrics that need it fail on that image alone, with that line).

Every problem is one line naming the file: not found, unreadable, another size ("reference
ref.png is 640×480, the image is 512×512"), not a mask ("values other than 0 and 255").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.images.references import load_reference, load_region
from grefine_kit.metrics.base import MetricContext

_T = TypeVar("_T")

__all__ = ["build_context"]


def _attempt(problems: dict[str, str], field: str, load: Callable[[], _T]) -> _T | None:
    """``load()``, or None with its ``UserError`` line in ``problems[field]``."""
    try:
        return load()
    except UserError as exc:
        problems[field] = str(exc)
        return None


def build_context(
    needs: Iterable[str],
    size: tuple[int, int],
    *,
    input_image: Image.Image | Path | None = None,
    reference: Path | None = None,
    region: Path | None = None,
    refiner_mask: Path | np.ndarray | None = None,
) -> MetricContext:
    """A context with the fields in ``needs`` for a scored image of ``size`` (width, height).

    ``input_image``: the refiner's input (an image, or a file to load); ``reference`` /
    ``region`` / ``refiner_mask``: files (an array is taken as the refiner's mask as it is).
    A field not needed is not loaded; one that is needed but not given stays None (``require``
    then names the missing input); one that fails to load is None with its one-line reason in
    ``problems``."""
    wanted = set(needs)
    problems: dict[str, str] = {}
    fields: dict[str, Any] = {}
    if "input" in wanted and input_image is not None:

        def load_input() -> Image.Image:
            from grefine_kit.images.loading import load_image

            image = input_image if isinstance(input_image, Image.Image) else load_image(input_image)
            if image.size != size:
                raise UserError(
                    f"input is {image.size[0]}×{image.size[1]}, the refined image is {size[0]}×{size[1]}"
                )
            return image.convert("RGB")

        fields["input"] = _attempt(problems, "input", load_input)
    if "reference" in wanted and reference is not None:
        fields["reference"] = _attempt(problems, "reference", lambda: load_reference(reference, size))
    if "region" in wanted and region is not None:
        fields["region"] = _attempt(problems, "region", lambda: load_region(region, size))
    if "refiner_mask" in wanted and refiner_mask is not None:
        if isinstance(refiner_mask, np.ndarray):
            fields["refiner_mask"] = refiner_mask.astype(bool)
        else:
            fields["refiner_mask"] = _attempt(
                problems, "refiner_mask", lambda: load_region(refiner_mask, size, what="refiner mask")
            )
    return MetricContext(**fields, problems=problems)
