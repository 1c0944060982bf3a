"""What the ``restore`` recipe does to pictures that need no repair.

G-Refine's claim has two halves: repair the bad regions, and leave good images alone. This
script runs ``restore`` and its whole-image baseline ``restore-global`` on the bundled photos
(scikit-image's colour photographs and the demo image's clean original), defect-free, as they
are and softened all over by a Gaussian of ``--soften`` px (generated images are often that
soft), and prints per photo how much of it the mask covers, the methods each stage ran, the
PSNR (dB; ``inf``: not one pixel changed) and the SSIM of the output against the input, then the
median and the worst per recipe and softness. A recipe that harms nothing stays near ``inf``
dB and SSIM 1.

    python benchmarks/bench_clean.py [--soften 0,1.5,2.5]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soften", default="0,1.5,2.5", help="Gaussian σ (px) over each photo; 0 = as it is")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from PIL import ImageFilter

    from grefine_kit.defects.photos import builtin_photos
    from grefine_kit.metrics.fidelity import psnr, ssim
    from grefine_kit.recipes.recipe import Recipe

    started = time.perf_counter()
    recipes = {name: Recipe.load(name).build() for name in ("restore", "restore-global")}
    photos = builtin_photos()
    print(
        f"{len(photos)} defect-free photos; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    summary = []
    for sigma in (float(s) for s in args.soften.split(",")):
        print(f"\nsoftened by σ {sigma:g} px" if sigma else "\nas they are")
        print(
            f"  {'photo':22s} {'recipe':15s} {'mask':>6s} {'psnr (dB)':>9s} {'ssim':>7s}  stage 1 / stage 2"
        )
        for name, refiner in recipes.items():
            psnrs, ssims = [], []
            for photo in photos:
                image = photo.image.convert("RGB")
                if sigma:
                    image = image.filter(ImageFilter.GaussianBlur(sigma))
                result = refiner.refine(image, "", photo.name)
                masked = float((result.mask.binary > 0.5).mean()) if result.mask.binary.size else 0.0
                ran = [
                    ", ".join(sorted(set(stage.get("details", {}).get("methods", [])))) or "-"
                    for stage in (result.report.get(role) or {} for role in ("stage1", "stage2"))
                ]
                p, s = psnr(result.image, image), ssim(result.image, image)
                psnrs.append(p)
                ssims.append(s)
                print(f"  {photo.name:22s} {name:15s} {masked:6.1%} {p:9.2f} {s:7.4f}  {ran[0]} / {ran[1]}")
            summary.append(
                (sigma, name, statistics.median(psnrs), min(psnrs), statistics.median(ssims), min(ssims))
            )
    print("\n| softened (σ px) | recipe | psnr median (worst), dB | ssim median (worst) |")
    print("|---|---|---|---|")
    for sigma, name, p_med, p_min, s_med, s_min in summary:
        shown = [f"{v:.2f}" if math.isfinite(v) else "inf" for v in (p_med, p_min)]
        print(f"| {sigma:g} | {name} | {shown[0]} ({shown[1]}) | {s_med:.4f} ({s_min:.4f}) |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
