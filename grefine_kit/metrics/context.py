"""Reading what full-reference metrics need per image: reference images and region masks.

- :func:`load_reference`: an image file of the scored image's size (RGB);
- :func:`load_region`: a mask file of that size whose pixels take two levels only: black (0) =
  outside, white (255) = inside; 0/1 grey values (1 = inside) are read too, and a 1-bit PNG is
  fine. Colour files count only when R = G = B everywhere; an all-black file is an empty
  region. The refiner's saved mask (``<stem>.mask.png``, white = repainted) is read the same way.
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
from grefine_kit.metrics.base import MetricContext
from grefine_kit.runs.items import display_path

_T = TypeVar("_T")

__all__ = ["build_context", "load_reference", "load_region"]


def _size_check(what: str, path: Path, got: tuple[int, int], size: tuple[int, int] | None) -> None:
    if size is not None and tuple(got) != tuple(size):
        raise UserError(f"{what} {display_path(path)} is {got[0]}×{got[1]}, the image is {size[0]}×{size[1]}")


def load_reference(path: str | Path, size: tuple[int, int] | None = None) -> Image.Image:
    """The reference image at ``path`` as RGB; ``size`` (width, height): the size it must have."""
    from grefine_kit.images.loading import load_image

    p = Path(path)
    if not p.is_file():
        raise UserError(f"reference {display_path(p)}: not found")
    image = load_image(p)
    _size_check("reference", p, image.size, size)
    return image


def load_region(path: str | Path, size: tuple[int, int] | None = None, what: str = "region") -> np.ndarray:
    """The mask at ``path`` as bool ``(H, W)``, True = inside (see the module docstring for the
    accepted levels); ``size`` (width, height): the size it must have."""
    from grefine_kit.images.loading import load_image

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {display_path(p)}: not found")
    image = load_image(p)
    _size_check(what, p, image.size, size)
    rgb = np.asarray(image)
    grey = rgb[..., 0]
    if not (np.array_equal(grey, rgb[..., 1]) and np.array_equal(grey, rgb[..., 2])):
        raise UserError(f"{what} {display_path(p)}: not a mask (a colour image; expected black and white)")
    levels = np.unique(grey)
    if set(levels.tolist()) <= {0, 255}:
        return grey == 255
    if set(levels.tolist()) <= {0, 1}:
        return grey == 1
    shown = ", ".join(str(v) for v in levels[:4]) + (", ..." if len(levels) > 4 else "")
    raise UserError(
        f"{what} {display_path(p)}: not a mask ({len(levels)} grey levels: {shown}; expected only 0 and 255)"
    )


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
