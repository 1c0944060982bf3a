"""How much of the blur baseline's harm does deblur's width gate hide?

``restore-global`` (Table 1's whole-image baseline) applies stage 1's restoration to every
pixel. For blur that is gated Richardson-Lucy: the deconvolution is kept only where an edge is
already wider than σ 1.2 px (``restore_methods.blur_width_weight``), so on a sharp photo's rest
it mostly does nothing. This script plants defects with ``grefine make-defects --builtin``
(``--seeds``) and, on every blurred item, applies to the whole image at strength 0.9 (stage 1's)
both the baseline as shipped (``whole_image_restoration`` told the item's region) and the same
clamped Richardson-Lucy without the gate, then prints per item and as medians ``ssim-rest``
(outside the planted box against the clean original; 1 = left alone) and the ``psnr-region``
gain inside (dB).

    python benchmarks/bench_blur_baseline.py [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np
    from PIL import Image

    from grefine_kit.defects.build import make_defect_set
    from grefine_kit.defects.evaluate import load_cases
    from grefine_kit.defects.photos import builtin_photos
    from grefine_kit.metrics.fidelity import psnr, ssim
    from grefine_kit.stages.restore import whole_image_restoration
    from grefine_kit.stages.restore_methods import deblur

    strength = 0.9
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[tuple[str, str, float, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        built = make_defect_set(builtin_photos(), Path(tmp) / "planted", seeds=seeds, kinds=("blur",))
        for case in load_cases(built.manifest):
            rgb = np.asarray(case.image.convert("RGB"), np.float64) / 255.0
            shipped, method = whole_image_restoration(rgb, strength, case.region)
            plain = rgb + strength * (deblur(rgb, gated=False) - rgb)
            before = psnr(case.image, case.reference, case.region)
            figures = []
            for out in (shipped, plain):
                image = Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), "RGB")
                figures += [
                    ssim(image, case.reference, ~case.region),
                    psnr(image, case.reference, case.region) - before,
                ]
            rows.append((case.id, method, *figures))
    print(
        f"{len(rows)} blurred items, seeds {args.seeds}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {time.perf_counter() - started:.0f} s\n"
    )
    print(
        "| item | baseline's method | ssim-rest, gated (shipped) | gain, gated (dB) "
        "| ssim-rest, no gate | gain, no gate (dB) |"
    )
    print("|---|---|---|---|---|---|")
    for item, method, s_g, g_g, s_p, g_p in rows:
        print(f"| {item} | {method} | {s_g:.4f} | {g_g:+.2f} | {s_p:.4f} | {g_p:+.2f} |")
    columns = list(zip(*(r[2:] for r in rows), strict=True))
    medians = " | ".join(
        f"{statistics.median(c):.4f}" if i % 2 == 0 else f"{statistics.median(c):+.2f}"
        for i, c in enumerate(columns)
    )
    print(f"| median | | {medians} |")


if __name__ == "__main__":
    main()
