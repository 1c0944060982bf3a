"""``restore``: a weight-free restoration stage (classical methods, scikit-image) for either slot.

The stage's ``role`` is ``"any"``: in the ``[stage1]`` slot it gets the combiner's mask and
repairs each connected part of it on its own crop (the refiner then pastes the result back
through the feathered soft mask, so no pixel outside the mask changes); in the ``[stage2]``
slot it gets no mask and passes over the whole image.

Per part of the mask (``masked``) or for the whole image (``global``) it picks a method
(``method = "auto"``, see :func:`choose_method`; in the global slot auto applies to every pixel
the restoration stage 1 would apply to the defect the detectors find, :func:`detected_defect`
and :func:`whole_image_restoration`: Table 1's whole-image baseline) and blends the method's
full restoration with the input by the stage strength ``s``: ``out = in + s · (restored − in)``,
so the change of every pixel grows linearly, hence monotonically, with ``s`` (0 leaves the
image as it is). The strength is the refiner's (stage 1: the strength rule, stage 2:
``delta``) unless the ``strength`` option fixes it. No weights, no randomness: the same input
gives the same output.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np
from attrs import validators as v
from PIL import Image

from grefine_kit.checks import choice
from grefine_kit.parts.base import PartBase
from grefine_kit.stages.base import StageRequest, StageResult, skipped_result

if TYPE_CHECKING:
    from grefine_kit.indicators.defect_features import DefectEvidence

__all__ = [
    "AUTO_METHODS",
    "RestoreStage",
    "choose_method",
    "detected_defect",
    "edge_width",
    "part_evidence",
    "whole_image_restoration",
]

#: what ``method`` accepts: ``auto`` or one of the methods of ``restore_methods``
AUTO_METHODS = ("auto", "denoise", "deblock", "deblur", "wiener")
#: auto's thresholds (inside vs outside the part to repair, see ``choose_method``)
NOISE_RATIO = 1.8
NOISE_MARGIN = 3.0  # grey levels
JPEG_BLOCKINESS = 1.2
JPEG_MARGIN = 0.15
#: JPEG is judged on the part's interior blocks when at least this many (3 × 3) are left
JPEG_INTERIOR_MIN = 9
#: deblur when the part's edges are at least this much wider than the rest's (as blur σ); on
#: sharp photos this is where the former rule (re-blur ratio under 0.9 × the rest's) fell
#: (1.12-1.14 at the rest's ratios of 2.3-5.2)
BLUR_WIDTH_RATIO = 1.15
#: fit_area: the core's depth (share of the part's largest) and its smallest size (px: 8 blocks)
FIT_DEPTH = 0.4
FIT_MIN_PX = 8 * 64


def _strength_or_none(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a number in [0, 1] or left out; got {value!r}")


def choose_method(evidence: DefectEvidence, inside: np.ndarray, core: np.ndarray | None = None) -> str:
    """Auto's choice for the blocks ``inside`` (bool, the evidence's block grid) from the
    detectors' raw measures (``defect_features.DefectEvidence``), inside against outside:

    1. ``denoise`` when the median noise σ inside is at least ``NOISE_RATIO`` × and
       ``NOISE_MARGIN`` grey levels above the median outside;
    2. else ``deblock`` when the upper quartile of blockiness inside is at least
       ``JPEG_BLOCKINESS`` and ``JPEG_MARGIN`` above the outside's (the quartile, not the
       median: a flat sky compressed to flat 8×8 cells shows no steps, its textured part does).
       Inside means the part's interior blocks, one block in from its border, when at least
       ``JPEG_INTERIOR_MIN`` are left (a loose mask's clean rim would dilute the quartile; a
       quartile of fewer blocks is one or two blocks' word). The stage hands in the evidence
       of :func:`part_evidence`, whose blockiness inside the part counts only steps between two
       of its pixels: a blurred box whose sides lie on the 8-px grid has steps on grid lines
       along its border, and counted they sent it to ``deblock`` (at 48 px on 8 of 9 photos);
    3. else ``deblur`` when the edges inside are at least ``BLUR_WIDTH_RATIO`` × as wide as
       outside: the blur σ (:func:`edge_width`) of the median re-blur ratio of the blocks with
       an edge inside (those of ``core``, the part's core blocks, when given and any has an
       edge: the rim of a mask looser than its blurred patch holds sharp edges; the stage
       passes :func:`fit_area`'s blocks; judging noise and JPEG on the core too was tried and
       sent a small blurred patch to ``deblock``) against the outside's. Widths, not the
       ratios themselves: the ratio flattens towards 1 as edges soften, so on a soft picture
       (the demo image: rest σ 2.7 px) a patch blurred to σ 4 px differed by under 10% in it;
    4. else ``wiener``: no kind stands out, so only the mild adaptive filter runs.

    Without blocks outside (the part covers the image) the image-wide medians are the reference.
    """
    if not inside.any():
        return "wiener"
    outside = ~inside if (~inside).any() else np.ones_like(inside)
    s_in, s_out = float(np.median(evidence.sigma[inside])), float(np.median(evidence.sigma[outside]))
    if s_in >= NOISE_RATIO * s_out and s_in >= s_out + NOISE_MARGIN:
        return "denoise"
    b_in = float(np.percentile(evidence.blockiness[_interior(inside)], 75))
    b_out = float(np.percentile(evidence.blockiness[outside], 75))
    if b_in >= JPEG_BLOCKINESS and b_in >= b_out + JPEG_MARGIN:
        return "deblock"
    judged = inside if core is None or not (core & evidence.edges).any() else core
    edges_in, edges_out = judged & evidence.edges, outside & evidence.edges
    if (
        edges_in.any()
        and edges_out.any()
        and edge_width(float(np.median(evidence.sharpness[edges_in])))
        >= BLUR_WIDTH_RATIO * edge_width(float(np.median(evidence.sharpness[edges_out])))
    ):
        return "deblur"
    return "wiener"


def edge_width(ratio: float) -> float:
    """The Gaussian blur σ (px) of a step edge whose re-blur ratio (``DefectEvidence.sharpness``:
    its gradient's drop under a further σ = ``REBLUR`` px blur) is ``ratio``: an edge blurred by
    σ keeps ``σ / sqrt(σ² + REBLUR²)`` of its gradient, so ``σ = REBLUR / sqrt(ratio² − 1)``
    (infinite at a ratio of 1 or less: no gradient left to lose)."""
    from grefine_kit.indicators.defect_features import REBLUR

    excess = ratio * ratio - 1.0
    return float("inf") if excess <= 0.0 else REBLUR / float(np.sqrt(excess))


def _interior(inside: np.ndarray) -> np.ndarray:
    """The blocks of ``inside`` (bool block grid) not on its border, or all of them when fewer
    than ``JPEG_INTERIOR_MIN`` are left."""
    from scipy import ndimage

    interior = ndimage.binary_erosion(inside, np.ones((3, 3), bool))
    return interior if int(interior.sum()) >= JPEG_INTERIOR_MIN else inside


def part_evidence(evidence: DefectEvidence, rgb: np.ndarray, part: np.ndarray) -> DefectEvidence:
    """``evidence`` (``DefectEvidence`` of ``rgb``, float RGB ``(H, W, 3)`` in [0, 1]) with the
    blockiness of ``part``'s blocks (bool ``(H, W)``) read only from steps between two pixels
    of the part (``defect_features.blockiness``'s ``within``): a step across the part's own
    border is the border's, not blocking inside it (a blurred box whose sides lie on the 8-px
    grid read as JPEG on 8 of 9 photos at 48 px). The blocks outside keep their values."""
    import attrs
    from scipy import ndimage

    from grefine_kit.indicators.defect_features import BLOCK, blockiness, luma

    grid = evidence.blockiness.shape
    inside = _block_grid(part, grid, BLOCK)
    found = ndimage.find_objects(inside.astype(np.int32))
    if not found or found[0] is None:
        return evidence
    ys, xs = found[0]
    # whole blocks from a multiple of BLOCK (hence of the 8-px grid): the phase carries over
    crop = (slice(ys.start * BLOCK, ys.stop * BLOCK), slice(xs.start * BLOCK, xs.stop * BLOCK))
    within = blockiness(luma(rgb[crop] * 255.0), evidence.phase, part[crop])
    values = np.array(evidence.blockiness, copy=True)
    values[ys, xs] = np.where(inside[ys, xs], within, values[ys, xs])
    return attrs.evolve(evidence, blockiness=values.astype(np.float32))


def _choose_for_part(
    evidence: DefectEvidence, rgb: np.ndarray, part: np.ndarray, core_blocks: np.ndarray
) -> str:
    """:func:`choose_method` for the pixels ``part`` (bool ``(H, W)``) of ``rgb``: its blocks,
    its blockiness read within it (:func:`part_evidence`) and its core's blocks ``core_blocks``;
    one rule for stage 1's parts, the detected parts and the whole-image baseline."""
    from grefine_kit.indicators.defect_features import BLOCK

    inside = _block_grid(part, evidence.blockiness.shape, BLOCK)
    return choose_method(part_evidence(evidence, rgb, part), inside, core_blocks)


def fit_area(part: np.ndarray) -> np.ndarray:
    """The pixels of ``part`` (bool ``(H, W)``) a method fits its parameters on (deblocking's
    JPEG quality) and ``auto`` judges blur on: its core, the pixels at least ``FIT_DEPTH`` of
    the part's largest depth from its border. A map's mask is looser than its defect (grown,
    feathered, coarse patches), and clean pixels at the rim spoil the fit (a JPEG patch's mask
    grown by 32 px: +0.64 dB instead of +1.14, benchmarks/bench_loose_masks.py); the core is
    the defect's. A core under ``FIT_MIN_PX`` pixels (too few 8×8 blocks) gives the whole
    part."""
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(part)
    core = part & (depth >= FIT_DEPTH * float(depth.max()))
    return core if int(core.sum()) >= FIT_MIN_PX else part


def _core_blocks(inside: np.ndarray) -> np.ndarray:
    """The blocks of :func:`fit_area`'s core of the part ``inside`` (bool block grid), as
    stage 1 finds it on the part's pixels."""
    from scipy import ndimage

    from grefine_kit.indicators.defect_features import BLOCK

    core = np.zeros_like(inside)
    h, w = inside.shape
    for found in ndimage.find_objects(inside.astype(np.int32)):
        if found is None:
            continue
        # the part's bounding box and one block around it (not past the image, as on the whole
        # grid): its core needs no more of the image
        ys = slice(max(found[0].start - 1, 0), min(found[0].stop + 1, h))
        xs = slice(max(found[1].start - 1, 0), min(found[1].stop + 1, w))
        pixels = np.kron(inside[ys, xs], np.ones((BLOCK, BLOCK), bool))
        core[ys, xs] |= _block_grid(fit_area(pixels), inside[ys, xs].shape, BLOCK)
    return core


def _block_grid(mask: np.ndarray, shape: tuple[int, int], block: int) -> np.ndarray:
    """Blocks whose centre pixel lies in ``mask`` (``shape``: the evidence's block grid)."""
    ys = np.minimum(np.arange(shape[0]) * block + block // 2, mask.shape[0] - 1)
    xs = np.minimum(np.arange(shape[1]) * block + block // 2, mask.shape[1] - 1)
    return mask[np.ix_(ys, xs)]


@attrs.define(kw_only=True)
class RestoreStage(PartBase):
    """Classical restoration in either stage slot (see the module docstring).

    Options:
        method: ``auto`` (default: chosen per part of the mask from the defect detectors,
            :func:`choose_method`; for the whole image, the method stage 1 would choose for the
            detected defect, :func:`detected_defect`), or one of ``denoise`` (non-local
            means), ``deblock`` (JPEG-aware luma and chroma, :mod:`.restore_methods`),
            ``deblur`` (Richardson-Lucy), ``wiener`` (the mild adaptive filter).
        strength: a fixed strength in [0, 1] replacing the refiner's (default: none, use the
            refiner's: stage 1 from the strength rule, stage 2 ``delta``).
        margin: px of context around each part of the mask given to the method (16: the NLM
            search window and the deconvolution's reach); only pixels inside the mask change.
    """

    method: str = attrs.field(default="auto", validator=choice(AUTO_METHODS))
    strength: float | None = attrs.field(default=None, validator=_strength_or_none)
    margin: int = attrs.field(default=16, validator=[v.instance_of(int), v.ge(0), v.le(256)])

    role: ClassVar[str] = "any"

    def run(self, request: StageRequest) -> StageResult:
        started = time.perf_counter()
        s = request.strength if self.strength is None else float(self.strength)
        if s <= 0.0:
            return skipped_result(request, "strength 0", started)
        rgb = np.asarray(request.image, np.float64) / 255.0
        if request.mask is not None:
            binary = request.mask.binary > 0.5
            if not binary.any():
                return skipped_result(request, "empty mask", started)
            out, methods = self._masked(rgb, binary, s)
        else:
            out, methods = self._global(rgb, s)
        image = Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), "RGB")
        return StageResult(
            image=image,
            steps_run=len(methods),
            seconds=time.perf_counter() - started,
            details={"methods": methods, "strength": s},
        )

    # -- the two roles -------------------------------------------------------------------------

    def _masked(self, rgb: np.ndarray, binary: np.ndarray, s: float) -> tuple[np.ndarray, list[str]]:
        from scipy import ndimage

        from grefine_kit.indicators.defect_features import BLOCK
        from grefine_kit.stages.restore_methods import noise_sigma, restore

        labels, _count = ndimage.label(binary)
        evidence = image_evidence(rgb) if self.method == "auto" else None
        out = rgb.copy()
        methods: list[str] = []
        h, w = binary.shape
        for index, found in enumerate(ndimage.find_objects(labels), start=1):
            if found is None:
                continue
            part = labels == index
            ys, xs = found
            y0, y1 = max(0, ys.start - self.margin), min(h, ys.stop + self.margin)
            x0, x1 = max(0, xs.start - self.margin), min(w, xs.stop + self.margin)
            crop = rgb[y0:y1, x0:x1]
            inside = part[y0:y1, x0:x1]
            core = fit_area(inside)
            method = self.method
            if method == "auto":
                if evidence is not None:
                    core_full = np.zeros_like(part)
                    core_full[y0:y1, x0:x1] = core
                    core_blocks = _block_grid(core_full, evidence.blockiness.shape, BLOCK)
                    method = _choose_for_part(evidence, rgb, part, core_blocks)
                else:
                    method = "wiener"
            restored = restore(crop, method, noise_sigma(crop, inside), core)
            blended = crop + s * (restored - crop)
            out[y0:y1, x0:x1] = np.where(inside[..., None], blended, out[y0:y1, x0:x1])
            methods.append(method)
        return out, methods

    def _global(self, rgb: np.ndarray, s: float) -> tuple[np.ndarray, list[str]]:
        from grefine_kit.stages.restore_methods import noise_sigma, restore

        if self.method != "auto":
            restored = restore(rgb, self.method, noise_sigma(rgb), None)
            return rgb + s * (restored - rgb), [self.method]
        evidence = image_evidence(rgb)
        part = None if evidence is None else detected_defect(evidence, rgb.shape[:2], rgb)
        out, method = whole_image_restoration(rgb, s, part, evidence)
        return out, [method]


def image_evidence(rgb: np.ndarray) -> DefectEvidence | None:
    """The detectors' evidence of float RGB ``rgb`` in [0, 1] with defect-map's thresholds, as
    ``auto`` reads it; None for an image under one ``BLOCK`` a side (``auto`` then runs the
    Wiener filter)."""
    from grefine_kit.indicators.defect_features import BLOCK, defect_evidence

    if rgb.shape[0] < BLOCK or rgb.shape[1] < BLOCK:
        return None
    return defect_evidence(rgb * 255.0)


def detected_defect(evidence: DefectEvidence, shape: tuple[int, int], rgb: np.ndarray) -> np.ndarray | None:
    """The pixels (bool ``shape``) of the defect stage 1 would repair on this image, as the
    ``restore`` recipe's detector sees it: the blocks whose combined evidence exceeds 0.5
    (defect-map's mask before growth), split into 8-connected parts; each part gets the method
    :func:`choose_method` picks for it in stage 1 (blur judged on the part's core, blockiness
    read within the part from ``rgb``, the image as float RGB in [0, 1]: as stage 1 judges
    it, :func:`_choose_for_part`), and the defect is the union of the parts of
    the method covering the most blocks (``wiener`` parts count only when no part has a
    defect-specific method). None when no block is flagged."""
    from scipy import ndimage

    flagged = evidence.combined() > 0.5
    labels, count = ndimage.label(flagged, structure=np.ones((3, 3), bool))
    if count == 0:
        return None
    chosen: dict[str, np.ndarray] = {}
    for index in range(1, count + 1):
        inside = labels == index
        method = _choose_for_part(evidence, rgb, _block_pixels(inside, shape), _core_blocks(inside))
        chosen[method] = chosen.get(method, np.zeros_like(inside)) | inside
    specific = {m: b for m, b in chosen.items() if m != "wiener"} or chosen
    blocks = max(specific.values(), key=lambda b: int(b.sum()))
    return _block_pixels(blocks, shape)


def _block_pixels(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixels (bool ``shape``) of the blocks ``blocks`` (bool block grid)."""
    from grefine_kit.indicators.defect_features import BLOCK

    where = np.kron(blocks, np.ones((BLOCK, BLOCK), bool))
    where = np.pad(where, ((0, max(0, shape[0] - where.shape[0])), (0, max(0, shape[1] - where.shape[1]))))
    return where[: shape[0], : shape[1]]


def whole_image_restoration(
    rgb: np.ndarray, s: float, part: np.ndarray | None, evidence: DefectEvidence | None = None
) -> tuple[np.ndarray, str]:
    """Table 1's whole-image baseline: the restoration stage 1 applies to the defect ``part``
    (bool ``(H, W)``), applied to every pixel of ``rgb`` (float RGB in [0, 1]) at strength ``s``:
    the method :func:`choose_method` picks for ``part`` (inside against outside, blur judged on
    :func:`fit_area`'s core, as in stage 1), with its noise level and JPEG quality estimated on
    ``part`` as stage 1 estimates them on its part (the quality on the core). ``part`` None
    (nothing to repair): the mild ``wiener`` pass. Returns the blended image and the method."""
    from grefine_kit.indicators.defect_features import BLOCK
    from grefine_kit.stages.restore_methods import noise_sigma, restore

    if part is None or not part.any():
        method = "wiener"
        restored = restore(rgb, method, noise_sigma(rgb), None)
        return rgb + s * (restored - rgb), method
    if evidence is None:
        evidence = image_evidence(rgb)
    method = "wiener"
    core = fit_area(part)
    if evidence is not None:
        method = _choose_for_part(evidence, rgb, part, _block_grid(core, evidence.blockiness.shape, BLOCK))
    restored = restore(rgb, method, noise_sigma(rgb, part), core)
    return rgb + s * (restored - rgb), method
