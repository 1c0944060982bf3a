"""Does colour matching at paste-back reduce seams? The ``seam`` metric with and without it.

A synthetic planted-defect set (the ``restore`` work's ``grefine make-defects`` set was not on
main when this was written): ``--n`` smooth scenes (a colour gradient and soft discs), each
with one planted defect (a box of coloured noise) at a random place; the clean scene is the
reference, the box the region.

Part 1, the oracle mask: a controlled indicator marks exactly the planted box (as a perfect
detector would), the ``g-refine`` combiner grows and feathers it, the tiny inpaint stage
(random weights) repaints it, and the repaint is pasted back with ``colour_match`` = none, mean,
local. Scored with ``seam`` (vs the refiner's input and mask), ``psnr-region`` (vs the clean
reference, inside the planted box) and ``ssim-unmasked``.

Part 2, ``grefine benchmark`` itself: the tiny recipe (stage 1 only) with a ``[regions]`` table, once per
``colour_match`` value, on the same manifest, ``--metric seam --metric psnr-region``: the table
shows whether the option helps (masks come from the tiny random PQ-/AQ-Maps there).

Run: ``python benchmarks/bench_seams.py --out /tmp/seams`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

MODES = ("none", "mean", "local")


def scene(rng: np.random.Generator, w: int, h: int) -> tuple[Image.Image, Image.Image, np.ndarray]:
    """(clean, defective, region mask) of one synthetic scene."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    t = (xx / w * rng.uniform(0.3, 1) + yy / h * rng.uniform(0.3, 1))[..., None] / 2
    img = c0 * (1 - t) + c1 * t
    for _ in range(3):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, 24)
        weight = np.clip(1.5 - np.hypot(xx - cx, yy - cy) / r, 0, 1)[..., None]
        img = img * (1 - weight) + rng.uniform(20, 235, 3) * weight
    clean = np.clip(img, 0, 255)
    bw, bh = int(rng.integers(w // 5, w // 3)), int(rng.integers(h // 5, h // 3))
    x0, y0 = int(rng.integers(4, w - bw - 4)), int(rng.integers(4, h - bh - 4))
    region = np.zeros((h, w), bool)
    region[y0 : y0 + bh, x0 : x0 + bw] = True
    bad = clean.copy()
    bad[region] = np.clip(bad[region] + rng.normal(0, 60, (int(region.sum()), 3)), 0, 255)
    as_image = lambda a: Image.fromarray(np.rint(a).astype(np.uint8), "RGB")  # noqa: E731
    return as_image(clean), as_image(bad), region


class Oracle:
    """Perceptual quality 0 exactly on the planted box (by image size), 1 elsewhere."""

    needs_prompt = False

    def __init__(self, regions: dict[tuple[int, int, int], np.ndarray]) -> None:
        self.regions = regions

    def score(self, images: list[Image.Image], prompts: Any = None) -> list[Any]:
        from grefine_kit.types import QualityMap

        out = []
        for im in images:
            key = (im.width, im.height, int(np.asarray(im).sum()))
            out.append(QualityMap(map=(~self.regions[key]).astype(np.float32), score=0.3))
        return out


def mean(values: list[float]) -> float:
    return float(np.mean(values))


def oracle_part(items: list[tuple[str, Image.Image, Image.Image, np.ndarray]]) -> dict[str, dict[str, float]]:
    from grefine_kit.combiners.g_refine import GRefineCombiner
    from grefine_kit.metrics.base import MetricContext
    from grefine_kit.metrics.fidelity import psnr, ssim_unmasked
    from grefine_kit.metrics.seam import Seam
    from grefine_kit.refiner.refiner import Refiner
    from grefine_kit.stages.diffusion import InpaintStage

    oracle = Oracle({(b.width, b.height, int(np.asarray(b).sum())): r for _, _, b, r in items})
    stage = InpaintStage(model="tiny", device="cpu", dtype="float32")
    table: dict[str, dict[str, float]] = {}
    for mode in MODES:
        refiner = Refiner(
            perceptual=oracle, combiner=GRefineCombiner(), stage1=stage, iterations=20, colour_match=mode
        )
        seams, psnrs, ssims, started = [], [], [], time.perf_counter()
        for name, clean, bad, region in items:
            result = refiner.refine(bad, "a smooth colourful scene", name)
            mask = result.mask.binary > 0
            context = MetricContext(input=bad, refiner_mask=mask)
            seams.append(Seam().score([result.image], None, [context])[0])
            psnrs.append(psnr(result.image, clean, region))
            ssims.append(ssim_unmasked(result.image, bad, mask))
        table[mode] = {
            "seam": mean(seams),
            "psnr-region": mean(psnrs),
            "ssim-unmasked": mean(ssims),
            "seconds": time.perf_counter() - started,
        }
        print(mode, json.dumps(table[mode]), flush=True)
    # the defective input itself, as a reference row
    table["input (no refine)"] = {
        "seam": 0.0,
        "psnr-region": mean([psnr(b, c, r) for _, c, b, r in items]),
        "ssim-unmasked": 1.0,
        "seconds": 0.0,
    }
    return table


def benchmark_part(folder: Path) -> str:
    from click.testing import CliRunner

    from grefine_kit.cli import cli
    from grefine_kit.recipes.recipe import Recipe

    args = ["benchmark", "--manifest", str(folder / "manifest.csv"), "--out", str(folder / "bench")]
    for mode in MODES:
        data = Recipe.load("tiny").to_dict()
        data["name"] = f"tiny-regions-{mode}"
        data["regions"] = {"part": "components", "padding": 8}
        del data["stage2"]  # stage 2 repaints every pixel: it would hide the paste-back
        data["refiner"] = {**data.get("refiner", {}), "colour_match": mode}
        path = folder / f"{data['name']}.toml"
        path.write_text(Recipe.from_dict(data).dump())
        args += ["--recipe", str(path)]
    args += ["--metric", "seam", "--metric", "psnr-region", "--metric", "ssim-unmasked"]
    result = CliRunner().invoke(cli, args)
    if result.exit_code not in (0, 1):
        raise SystemExit(result.output)
    return (folder / "bench" / "summary.md").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 96))
    parser.add_argument("--skip-benchmark", action="store_true")
    parser.add_argument("--skip-oracle", action="store_true")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(23)
    items = []
    rows = ["id,image,prompt,reference,region"]
    for i in range(opts.n):
        clean, bad, region = scene(rng, *opts.size)
        name = f"s{i}"
        bad.save(opts.out / f"{name}.png")
        clean.save(opts.out / f"{name}.clean.png")
        Image.fromarray((region * 255).astype(np.uint8), "L").save(opts.out / f"{name}.region.png")
        rows.append(f"{name},{name}.png,a smooth colourful scene,{name}.clean.png,{name}.region.png")
        items.append((name, clean, bad, region))
    (opts.out / "manifest.csv").write_text("\n".join(rows) + "\n")
    table = {} if opts.skip_oracle else oracle_part(items)
    print("\n| colour_match | seam ↓ | psnr-region ↑ (dB) | ssim-unmasked ↑ | seconds |")
    print("|---|---|---|---|---|")
    for mode, row in table.items():
        print(
            f"| {mode} | {row['seam']:.2f} | {row['psnr-region']:.2f} | {row['ssim-unmasked']:.4f} "
            f"| {row['seconds']:.1f} |"
        )
    if not opts.skip_benchmark:
        print("\n" + benchmark_part(opts.out))


if __name__ == "__main__":
    main()
