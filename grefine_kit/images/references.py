"""Files that go with an image: its clean reference and its region mask.

- :func:`load_reference`: an image file of the image's size (RGB);
- :func:`load_region`: a mask file of that size whose pixels take two levels only: black (0) =
  outside, white (255) = inside; 0/1 grey values (1 = inside) are read too, and a 1-bit PNG is
  fine. Colour files count only when R = G = B everywhere; an all-black file is an empty
  region. The refiner's saved mask (``<stem>.mask.png``, white = repainted) is read the same way.

Every problem is one ``UserError`` line naming the file: not found, unreadable, another size
("reference ref.png is 640×480, the image is 512×512"), not a mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.images.loading import load_image
from grefine_kit.runs.items import display_path

__all__ = ["load_reference", "load_region"]


def _size_check(what: str, path: Path, got: tuple[int, int], size: tuple[int, int] | None) -> None:
    if size is not None and tuple(got) != tuple(size):
        raise UserError(f"{what} {display_path(path)} is {got[0]}×{got[1]}, the image is {size[0]}×{size[1]}")


def load_reference(path: str | Path, size: tuple[int, int] | None = None) -> Image.Image:
    """The reference image at ``path`` as RGB; ``size`` (width, height): the size it must have."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"reference {display_path(p)}: not found")
    image = load_image(p)
    _size_check("reference", p, image.size, size)
    return image


def load_region(path: str | Path, size: tuple[int, int] | None = None, what: str = "region") -> np.ndarray:
    """The mask at ``path`` as bool ``(H, W)``, True = inside (see the module docstring for the
    accepted levels); ``size`` (width, height): the size it must have."""
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
