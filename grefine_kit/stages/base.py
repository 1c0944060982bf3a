"""The stage protocol: one refinement pass over one image (docs/design.md 6.5).

A stage gets a :class:`StageRequest` and returns a :class:`StageResult` whose image has exactly
the request image's size. ``role`` tells the refiner how to use it:

- ``"masked"``: stage 1; it gets the mask and repaints inside it. The refiner pastes the
  original pixels back outside the mask, so the stage may touch the whole image (a VAE round
  trip does).
- ``"global"``: stage 2; a mild pass over the whole image, ``mask`` is None.
- ``"any"``: either slot; the stage tells them apart by ``request.mask`` (None in the global
  slot).

A recipe's extra ``[stages.<name>]`` runs after stage 2 as its part's ``role`` says: ``masked``
with the mask, ``global`` (or ``any``) over the whole image. The weight-free ``restore`` stage is one.

A stage that has nothing to do (0 steps would run, empty mask) returns the input image with
``skipped`` set to a human-readable reason; it never raises for that.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol, runtime_checkable

import attrs
from attrs import validators as v
from PIL import Image

from grefine_kit.parts.roles import ANY_STAGE, GLOBAL, MASKED
from grefine_kit.types import Mask

__all__ = ["ROLES", "Stage", "StageRequest", "StageResult", "derive_seed", "skipped_result"]

#: what ``Stage.role`` may be (grefine_kit.parts.roles spells them)
ROLES = (MASKED, GLOBAL, ANY_STAGE)


def _check_strength(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{attribute.name} must lie in [0, 1]; got {value!r}")


def _check_image(_inst: object, _attribute: attrs.Attribute[Image.Image], value: Image.Image) -> None:
    if not isinstance(value, Image.Image) or value.mode != "RGB":
        raise ValueError("a stage needs an RGB PIL image (grefine_kit.images.loading.load_image gives one)")


def _tuple_pairs(value: object) -> tuple[tuple[str, float], ...]:
    return tuple((str(p), float(w)) for p, w in value)  # type: ignore[attr-defined]


@attrs.frozen
class StageRequest:
    """What a stage is asked to do.

    Attributes:
        image: RGB PIL image (any size; the stage handles its model's size constraints).
        mask: the repaint mask at the image's size (``role == "masked"``), else None.
        prompt: the user's prompt.
        emphasis: ``(phrase, weight)`` pairs added to the conditioning (paper eq. 7, weight 0.1).
        strength: diffusers strength in [0, 1] (fraction of the schedule that runs).
        steps: schedule length (diffusers ``num_inference_steps``); ``int(steps * strength)`` run.
        seed: the generator seed for this image (see :func:`derive_seed`).
        max_upscale: a hint: enlarge the image at most this much to reach the model's working
            area (0 = no cap). The refiner sets it for region crops; a stage may ignore it.
    """

    image: Image.Image = attrs.field(validator=_check_image, eq=False)
    mask: Mask | None = attrs.field(default=None, validator=v.optional(v.instance_of(Mask)), eq=False)
    prompt: str = attrs.field(default="", validator=v.instance_of(str))
    emphasis: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_tuple_pairs)
    strength: float = attrs.field(default=0.5, converter=float, validator=_check_strength)
    steps: int = attrs.field(default=10, validator=[v.instance_of(int), v.ge(0)])
    seed: int = attrs.field(default=0, validator=v.instance_of(int))
    max_upscale: float = attrs.field(default=0.0, converter=float, validator=v.ge(0.0))

    def __attrs_post_init__(self) -> None:
        if self.mask is not None and self.mask.binary.shape != (self.image.height, self.image.width):
            raise ValueError(
                f"mask shape {self.mask.binary.shape} != image (H, W) {(self.image.height, self.image.width)}"
            )


@attrs.frozen
class StageResult:
    """What a stage did: the output image (same size as the request's), the denoising steps it
    actually ran, why it skipped (None if it ran), its wall time in seconds, intermediate
    ``previews`` as ``(step, image)`` pairs at the output's size (stage option ``previews``), and
    optional JSON-able ``details`` the refiner copies into its report (e.g. the methods
    ``restore`` chose)."""

    image: Image.Image = attrs.field(eq=False)
    steps_run: int = 0
    skipped: str | None = None
    seconds: float = 0.0
    previews: tuple[tuple[int, Image.Image], ...] = attrs.field(default=(), eq=False)
    details: dict[str, Any] = attrs.field(factory=dict, eq=False)


@runtime_checkable
class Stage(Protocol):
    """A refinement stage. Construction is cheap; weights load on first ``run`` (or ``load()``)."""

    role: str

    def run(self, request: StageRequest) -> StageResult: ...


def skipped_result(request: StageRequest, reason: str, started: float | None = None) -> StageResult:
    """The input image unchanged, with ``reason``."""
    seconds = time.perf_counter() - started if started is not None else 0.0
    return StageResult(image=request.image.copy(), steps_run=0, skipped=reason, seconds=seconds)


def derive_seed(recipe_seed: int, image_id: str) -> int:
    """A per-image seed in ``[0, 2**63)`` from the recipe seed and the image id.

    A stable hash (SHA-256, not Python's salted ``hash()``), so results do not depend on the
    process, the batching or the sharding.
    """
    digest = hashlib.sha256(f"{int(recipe_seed)}\x00{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)
