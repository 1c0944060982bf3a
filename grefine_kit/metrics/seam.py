"""``seam``: how visible the border of the refiner's repaint is, against the same border in its input.

A repaint pasted into untouched pixels shows a seam when its colour or tone does not continue
the surroundings (ADetailer #73, Impact-Pack #621, diffusers #5808). For each pixel on the
border of the refiner's mask (a mask pixel with a 4-neighbour outside it) we take the *step*
across the border: the RGB vector from the mean colour of the other pixels to the mean colour
of the mask pixels within ``width`` px of it. The metric is the mean, over the border pixels,
of the length (0..255 units) of the step's change from the refiner's input to the scored image:

- 0: every border step is what it was in the input (no seam; also: nothing was repainted);
- larger: the paste changed the colour step across the border; a constant colour shift ``c``
  of the repaint against unchanged surroundings scores ``|c|`` (e.g. 40·√3 ≈ 69 for +40 on
  each channel). Lower is better.

An empty mask (no repaint, e.g. the ``original`` row of a benchmark) has no border: 0. The step
also changes when the repaint legitimately changed what touches the border (a new object), so
compare rows of the same masks (the same recipe with and without colour matching), not across
recipes whose masks differ.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np
from PIL import Image

from grefine_kit.metrics.base import MetricContext, PerImageMetric

__all__ = ["Seam", "border_pixels", "border_steps"]


def border_pixels(mask: np.ndarray) -> np.ndarray:
    """Bool ``(H, W)``: the mask pixels with at least one 4-neighbour outside the mask (pixels
    beyond the image count as inside: the image's edge is no seam)."""
    inside = np.asarray(mask, bool)
    padded = np.pad(inside, 1, mode="edge")
    outside_next = ~padded[:-2, 1:-1] | ~padded[2:, 1:-1] | ~padded[1:-1, :-2] | ~padded[1:-1, 2:]
    return inside & outside_next


def border_steps(image: np.ndarray, mask: np.ndarray, border: np.ndarray, width: int) -> np.ndarray:
    """The step at each ``border`` pixel, ``(n, 3)`` in the border's raster order: the mean of
    ``image`` over the mask pixels minus its mean over the other pixels, within ``width`` px (a
    square window)."""
    from grefine_kit.images.ops import box_sum

    inside = np.asarray(mask, bool).astype(np.float32)
    rgb = np.asarray(image, np.float64)
    n_in = box_sum(inside, width)[border]
    n_out = box_sum(1.0 - inside, width)[border]
    steps = []
    for c in range(3):
        s_in = box_sum(rgb[..., c] * inside, width)[border]
        s_all = box_sum(rgb[..., c], width)[border]
        steps.append(s_in / np.maximum(n_in, 1.0) - (s_all - s_in) / np.maximum(n_out, 1.0))
    return np.stack(steps, -1)


@attrs.define(kw_only=True)
class Seam(PerImageMetric):
    """``seam``: the mean change of the colour step across the refiner mask's border, from the
    input to the scored image (see the module docstring). ``width``: the window's half-width
    in pixels (8; wider sees a colour shift spread over a feathered edge, narrower only a hard
    one)."""

    width: int = attrs.field(default=8, validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)])

    name: ClassVar[str] = "seam"
    needs: ClassVar[frozenset[str]] = frozenset({"input", "refiner_mask"})
    needs_prompt: ClassVar[bool] = False
    lower_better: ClassVar[bool] = True
    score_range: ClassVar[tuple[float, float]] = (0.0, 442.0)  # 255·√3

    def score_one(self, image: Image.Image, context: MetricContext) -> float:
        from grefine_kit.errors import UserError

        assert context.input is not None and context.refiner_mask is not None  # contexts_for
        mask = np.asarray(context.refiner_mask, bool)
        if image.size != context.input.size or mask.shape != (image.height, image.width):
            raise UserError(
                f"metric 'seam': image {image.size}, input {context.input.size} and mask "
                f"{mask.shape[::-1]} differ in size"
            )
        border = border_pixels(mask)
        if not border.any() or mask.all():
            return 0.0
        after = border_steps(np.asarray(image.convert("RGB")), mask, border, self.width)
        before = border_steps(np.asarray(context.input.convert("RGB")), mask, border, self.width)
        return float(np.linalg.norm(after - before, axis=-1).mean())
