"""Denoiser work of G-Refine vs a whole-image img2img baseline, on tiny random-weight pipelines.

Counts every UNet call (by wrapping ``unet.forward``) and the latent pixels it evaluates
(batch × latent height × latent width; classifier-free guidance doubles the batch for both
methods alike). Half of the images are clean (an empty mask), half have one defect covering
about 1/5 of the image; the maps come from a controlled indicator so the masks are known.

- g-refine: stage 1 inpaints an only-masked crop (at the model's working area), stage 2 a
  mild global img2img pass (delta), 20 iterations split half/half.
- img2img baseline: the whole image, all 20 iterations, strength ``--baseline-strength``.

The counts depend on step counts, strengths and working sizes only, so the tiny models give
the same ratios a real SDXL run at the same settings would (its working area is 1024² instead
of 64²). Run: ``python benchmarks/bench_refiner.py`` (about a minute on 2 CPU cores).

Two corners: one image with two small defects in opposite corners, stage 1 with a regions
block, ``merge = "each"`` (one crop per region, enlarged at most ``max_upscale``) against
``merge = "single"`` (one crop around the whole mask: nearly the whole image). The geometry is
a 1024x768 image at a 1024² working area scaled down by ``--corners-scale`` (the latent-pixel
ratio depends on the proportions only, up to rounding to multiples of 8). ``--corners-only``
runs just this case.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import torch
from PIL import Image

from grefine_kit.combiners.g_refine import GRefineCombiner
from grefine_kit.refiner.refiner import Refiner
from grefine_kit.regions.components import ComponentRegions
from grefine_kit.stages.diffusion import Img2ImgStage, InpaintStage
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import QualityMap


@attrs.define
class ControlledIndicator:
    """Perceptual maps we choose: quality ``low`` in a box (or nowhere), a fixed score."""

    boxes: dict[str, tuple[float, float, float, float] | None]
    scores: dict[str, float]
    needs_prompt: bool = False
    current: list[str] = attrs.field(factory=list)

    def score(self, images: Sequence[Image.Image], prompts: Any = None) -> list[QualityMap]:
        out = []
        for im, image_id in zip(images, self.current, strict=True):
            m = np.ones((im.height, im.width), np.float32)
            box = self.boxes[image_id]
            if box is not None:
                x0, y0, x1, y1 = box
                m[
                    round(y0 * im.height) : round(y1 * im.height), round(x0 * im.width) : round(x1 * im.width)
                ] = 0.1
            out.append(QualityMap(map=m, score=self.scores[image_id], indicator="controlled"))
        return out


@attrs.define
class TwoBoxIndicator:
    """Perceptual quality 0.1 in each of ``boxes`` (fractions of the image), 1 elsewhere."""

    boxes: tuple[tuple[float, float, float, float], ...]
    needs_prompt: bool = False

    def score(self, images: Sequence[Image.Image], prompts: Any = None) -> list[QualityMap]:
        out = []
        for im in images:
            m = np.ones((im.height, im.width), np.float32)
            for x0, y0, x1, y1 in self.boxes:
                m[
                    round(y0 * im.height) : round(y1 * im.height), round(x0 * im.width) : round(x1 * im.width)
                ] = 0.1
            out.append(QualityMap(map=m, score=0.45, indicator="two-box"))
        return out


class Counter:
    """Wraps a UNet's forward; ``calls`` and ``pixels`` (latent pixels evaluated) accumulate."""

    def __init__(self, unet: Any) -> None:
        self.calls = 0
        self.pixels = 0
        original = unet.forward

        def forward(sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.pixels += int(sample.shape[0] * sample.shape[-2] * sample.shape[-1])
            return original(sample, *args, **kwargs)

        unet.forward = forward

    def snapshot(self) -> tuple[int, int]:
        return self.calls, self.pixels


def run(
    refiner: Refiner, items: list[tuple[Image.Image, str, str]], counters: dict[str, Counter]
) -> dict[str, Any]:
    per_image: list[dict[str, Any]] = []
    started = time.perf_counter()
    for image, prompt, image_id in items:
        before = {k: c.snapshot() for k, c in counters.items()}
        indicator = refiner.part("perceptual")
        if isinstance(indicator, ControlledIndicator):
            indicator.current[:] = [image_id]
        result = refiner.refine(image, prompt, image_id)
        delta = {
            k: [a - b for a, b in zip(c.snapshot(), before[k], strict=True)] for k, c in counters.items()
        }
        per_image.append({"id": image_id, "mask_area": result.mask.area, **delta})
    seconds = time.perf_counter() - started
    total_calls = sum(sum(p[k][0] for k in counters) for p in per_image)
    total_pixels = sum(sum(p[k][1] for k in counters) for p in per_image)
    return {"per_image": per_image, "calls": total_calls, "pixels": total_pixels, "seconds": seconds}


def two_corners(scale: int, iterations: int) -> dict[str, Any]:
    """Latent-pixel evaluations of stage 1 on two corner defects: per region vs one crop."""
    w, h, resolution, padding = 1024 // scale, 768 // scale, 1024 // scale, max(1, 32 // scale)
    image = sample_images([(w, h)])[0]
    indicator = TwoBoxIndicator(((0.04, 0.05, 0.16, 0.2), (0.84, 0.8, 0.96, 0.95)))
    inpaint = InpaintStage(model="tiny", resolution=resolution)
    counter = Counter(inpaint.pipeline().unet)
    out: dict[str, Any] = {"size": [w, h], "resolution": resolution, "padding": padding}
    for label, regions in (
        ("each", ComponentRegions(merge="each", padding=padding)),
        ("each-uncapped", ComponentRegions(merge="each", padding=padding, max_upscale=0)),
        ("single", ComponentRegions(merge="single", padding=padding)),
    ):
        refiner = Refiner(
            perceptual=indicator,
            combiner=GRefineCombiner(),
            regions=regions,
            stage1=inpaint,
            iterations=iterations,
        )
        before = counter.snapshot()
        started = time.perf_counter()
        result = refiner.refine(image, "a red house next to a green tree", "corners")
        calls, pixels = (a - b for a, b in zip(counter.snapshot(), before, strict=True))
        crops = [r["crop"] for r in result.report["stage1"]["regions"]]
        out[label] = {
            "calls": calls,
            "pixels": pixels,
            "crops": crops,
            "seconds": time.perf_counter() - started,
        }
    out["ratio"] = out["each"]["pixels"] / out["single"]["pixels"]
    out["ratio_uncapped"] = out["each-uncapped"]["pixels"] / out["single"]["pixels"]
    print(
        f"two corners: {w}x{h} (1024x768 at 1/{scale}), working area {resolution}², padding {padding} px; "
        f"stage-1 latent-pixel evaluations:"
    )
    for label in ("each", "each-uncapped", "single"):
        r = out[label]
        print(
            f"  {label}: {len(r['crops'])} crop(s) {r['crops']}, "
            f"{r['calls']} UNet calls, {r['pixels']} latent px"
        )
    print(
        f"  each / single = {out['ratio']:.3f} (target <= 0.5; max_upscale 2); "
        f"without the upscale cap each / single = {out['ratio_uncapped']:.3f}"
    )
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=8, help="number of images (half clean, half defective)")
    parser.add_argument("--size", default="160x120", help="image size WxH")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--delta", type=float, default=0.2, help="g-refine stage-2 strength")
    parser.add_argument(
        "--defect-score", type=float, default=0.45, help="perceptual score of defective images"
    )
    parser.add_argument(
        "--baseline-strength", type=float, action="append", help="repeatable; default 0.3 0.5 0.75"
    )
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument(
        "--corners-scale", type=int, default=4, help="two-corner case: 1024x768 divided by this"
    )
    parser.add_argument("--corners-only", action="store_true", help="run only the two-corner case")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.corners_only:
        corners = two_corners(args.corners_scale, args.iterations)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump({"settings": vars(args), "two-corners": corners}, fh, indent=1)
        return {"two-corners": corners}
    w, h = (int(x) for x in args.size.lower().split("x"))
    side = 0.2**0.5  # a square box covering 1/5 of the image
    boxes: dict[str, tuple[float, float, float, float] | None] = {}
    scores: dict[str, float] = {}
    items = []
    for i, image in enumerate(sample_images([(w, h)] * args.images)):
        image_id = f"img{i:03d}"
        defective = i % 2 == 1
        x0 = 0.1 + 0.3 * ((i // 2) % 2) * (1 - side)
        boxes[image_id] = (x0, 0.2, x0 + side, 0.2 + side) if defective else None
        scores[image_id] = args.defect_score if defective else 0.9
        items.append((image, "a red house next to a green tree", image_id))

    inpaint, img2img = InpaintStage(model="tiny"), Img2ImgStage(model="tiny")
    counters = {"stage1": Counter(inpaint.pipeline().unet), "stage2": Counter(img2img.pipeline().unet)}
    grefine = Refiner(
        perceptual=ControlledIndicator(boxes, scores),
        combiner=GRefineCombiner(),
        stage1=inpaint,
        stage2=img2img,
        iterations=args.iterations,
        delta=args.delta,
        regions=ComponentRegions(merge="single", padding=round(0.0625 * min(w, h)), max_upscale=0),
    )
    results: dict[str, Any] = {"settings": vars(args), "g-refine": run(grefine, items, counters)}
    g = results["g-refine"]
    clean = [p for p in g["per_image"] if p["mask_area"] == 0]
    per_call = g["pixels"] // max(g["calls"], 1) // 2  # CFG batch of 2
    print(
        f"images {len(items)} at {w}x{h}; tiny pipelines (random weights); "
        f"{per_call} latent pixels per image per call"
    )
    print(f"g-refine: {g['calls']} UNet calls, {g['pixels']} latent-pixel evaluations, {g['seconds']:.1f} s")
    print(f"  stage-1 calls on clean images: {sum(p['stage1'][0] for p in clean)} (of {len(clean)} images)")
    masked = [p for p in g["per_image"] if p["mask_area"] > 0]
    if masked:
        print(f"  mean mask area on defective images: {np.mean([p['mask_area'] for p in masked]):.3f}")
    for strength in args.baseline_strength or [0.3, 0.5, 0.75]:
        baseline = Refiner(stage2=img2img, split=0.0, iterations=args.iterations, delta=strength)
        b = run(baseline, items, counters)
        ratio = g["pixels"] / b["pixels"] if b["pixels"] else float("nan")
        results[f"baseline@{strength}"] = {**b, "ratio": ratio}
        print(
            f"img2img baseline strength {strength}: {b['calls']} UNet calls, {b['pixels']} latent-pixel "
            f"evaluations, {b['seconds']:.1f} s -> g-refine / baseline = {ratio:.3f}"
        )
    results["two-corners"] = two_corners(args.corners_scale, args.iterations)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
