"""The offline evidence of docs/benchmark.md: does mask-guided repair help, and does it harm?

Builds a planted-defect set from the bundled photos (``grefine make-defects --builtin``: 8 of
scikit-image's colour photographs and the demo image's clean original, capped at 512 px; noise,
blur and JPEG blocking; ``--seeds`` seeds), then measures four arms on every item with the
project's own refiner and fidelity metrics (``grefine_kit.defects.evaluate``):

- ``restore``: the recipe as shipped (defect-map finds the defect: the *detector* arm);
- ``restore oracle``: the same stages with the item's region as the mask (region-map, exact);
- ``restore oracle s1``: the oracle without stage 2 (what the mild global pass costs);
- ``restore-global``: the same restoration over the whole image (Table 1's whole-image row):
  the method stage 1 picks for the defect the detector finds, at stage 1's strength;
- ``restore-global oracle``: the same, told the item's region: the oracle's stage 1 restoration
  (method, noise level, JPEG quality chosen on the region) over every pixel.

Prints a Markdown table (medians per kind and arm) and the done-when checks of issue #19.
``--soften σ`` blurs every photo first (pictures soft all over, as many generated images are;
docs/benchmark.md's "Soft pictures").

    python benchmarks/bench_restore.py [--seeds 0,1] [--out DIR] [--csv rows.csv] [--soften 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default=None, help="keep the planted set here (default: a temp folder)")
    parser.add_argument("--csv", default=None, help="write every measured row to this CSV")
    parser.add_argument(
        "--soften",
        type=float,
        default=0.0,
        help="blur every photo by this Gaussian σ (px) before planting: pictures soft all over, "
        "as many generated images are (default 0: the photos as they are)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import attrs
    from PIL import ImageFilter

    from grefine_kit.defects.build import make_defect_set
    from grefine_kit.defects.evaluate import (
        Arm,
        load_cases,
        measure,
        oracle_baseline,
        oracle_recipe,
        summarise,
    )
    from grefine_kit.defects.photos import Photo, builtin_photos
    from grefine_kit.recipes.recipe import Recipe

    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out) if args.out else Path(tmp) / "planted"
        clean = builtin_photos()
        if args.soften > 0:
            clean = [
                Photo(p.name, p.image.convert("RGB").filter(ImageFilter.GaussianBlur(args.soften)))
                for p in clean
            ]
        built = make_defect_set(clean, folder, seeds=seeds)
        cases = load_cases(built.manifest)
        restore = Recipe.load("restore")
        oracle = oracle_recipe(restore)
        oracle_s1 = attrs.evolve(
            oracle, name="restore-oracle-s1", parts={k: v for k, v in oracle.parts.items() if k != "stage2"}
        )
        arms = [
            Arm("restore", restore),
            Arm("restore oracle", oracle, oracle=True),
            Arm("restore oracle s1", oracle_s1, oracle=True),
            Arm("restore-global", Recipe.load("restore-global")),
            oracle_baseline(Recipe.load("restore-global")),
        ]
        rows = measure(cases, arms)
    if args.csv:
        import csv

        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            fields = [a.name for a in attrs.fields(type(rows[0]))]
            writer.writerow(fields)
            writer.writerows([getattr(r, k) for k in fields] for r in rows)
    table = summarise(rows)
    photos = len({c.id.rsplit("-", 2)[0] for c in cases})
    print(
        f"{len(cases)} items ({photos} photos x 3 kinds x {len(seeds)} seeds"
        f"{f', softened by σ {args.soften:g} px' if args.soften > 0 else ''}), "
        f"{platform.machine()} {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    print()
    print(
        "| defect | arm | psnr-region in → out (dB) | gain median (min) | ssim-rest median (min) "
        "| mask-iou | mask on rest | psnr worse than input | s / image |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for t in table:
        print(
            f"| {t['kind']} | {t['arm']} | {t['psnr_region_in']:.2f} → {t['psnr_region']:.2f} "
            f"| {t['gain']:+.2f} ({t['gain_min']:+.2f}) | {t['ssim_rest']:.4f} ({t['ssim_rest_min']:.4f}) "
            f"| {t['mask_iou']:.2f} | {t['mask_rest']:.1%} | {t['negative']}/{t['n']} | {t['seconds']:.2f} |"
        )
    print()
    by = {(t["kind"], t["arm"]): t for t in table}
    checks = []
    for kind in ("noise", "blur", "jpeg"):
        o, g, d = by[(kind, "restore oracle")], by[(kind, "restore-global")], by[(kind, "restore")]
        go = by[(kind, "restore-global oracle")]
        checks += [
            (f"{kind}: oracle ssim-rest >= 0.99 (min {o['ssim_rest_min']:.4f})", o["ssim_rest_min"] >= 0.99),
            (
                f"{kind}: restore-global ssim-rest <= 0.95 (median {g['ssim_rest']:.4f}; "
                f"told the region {go['ssim_rest']:.4f})",
                g["ssim_rest"] <= 0.95,
            ),
            (f"{kind}: detector median mask-iou >= 0.5 ({d['mask_iou']:.2f})", d["mask_iou"] >= 0.5),
            (f"{kind}: detector mask on rest <= 5% ({d['mask_rest']:.1%})", d["mask_rest"] <= 0.05),
        ]
    target = {"noise": 4.0, "jpeg": 1.0}
    for kind, gain in target.items():
        o = by[(kind, "restore oracle")]
        checks.append((f"{kind}: oracle psnr-region gain >= {gain} dB ({o['gain']:+.2f})", o["gain"] >= gain))
    ob = by[("blur", "restore oracle")]
    checks.append((f"blur: oracle never worse inside (min gain {ob['gain_min']:+.2f})", ob["gain_min"] >= 0))
    neg = sum(by[(k, "restore")]["negative"] for k in ("noise", "blur", "jpeg"))
    checks.append((f"detector: negative optimisations <= 5% ({neg}/{len(cases)})", neg <= 0.05 * len(cases)))
    for text, ok in checks:
        print(f"- [{'x' if ok else ' '}] {text}")


if __name__ == "__main__":
    main()
