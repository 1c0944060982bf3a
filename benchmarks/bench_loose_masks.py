"""Does stage 1 still repair when its mask is looser than the defect?

A map rarely fits a defect exactly: combiners grow and feather the mask, and CLIP maps are
16-px patches upsampled. This script plants defects with ``grefine make-defects --builtin``
(``--seeds``), grows each item's exact region by ``--grow`` px (a square dilation) and runs the
``restore`` stage on it as stage 1 does (``auto``, strength 0.9), then prints the median and the
smallest ``psnr-region`` gain (dB, inside the planted region, against the clean original) per
defect kind and growth. A restoration whose strength comes from the pixels it is given (the
noise level for non-local means, the JPEG quality for deblocking) should gain about as much
with a loose mask as with the exact one.

    python benchmarks/bench_loose_masks.py [--seeds 0,1] [--grow 0,16,32] [--kinds noise,jpeg,blur]
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
    parser.add_argument("--grow", default="0,16,32", help="px added around the region, comma-separated")
    parser.add_argument("--kinds", default="noise,jpeg,blur")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np
    from scipy import ndimage

    from grefine_kit.defects.build import make_defect_set
    from grefine_kit.defects.evaluate import load_cases
    from grefine_kit.defects.photos import builtin_photos
    from grefine_kit.metrics.fidelity import psnr
    from grefine_kit.stages.base import StageRequest
    from grefine_kit.stages.restore import RestoreStage
    from grefine_kit.types import Mask

    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    grows = [int(g) for g in args.grow.split(",")]
    kinds = args.kinds.split(",")
    stage = RestoreStage()
    gains: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        built = make_defect_set(builtin_photos(), Path(tmp) / "planted", seeds=seeds)
        for case in load_cases(built.manifest):
            if case.kind not in kinds:
                continue
            before = psnr(case.image, case.reference, case.region)
            for grow in grows:
                area = (
                    ndimage.binary_dilation(case.region, np.ones((2 * grow + 1,) * 2, bool))
                    if grow
                    else case.region
                )
                binary = area.astype(np.float32)
                result = stage.run(
                    StageRequest(image=case.image, mask=Mask(binary=binary, soft=binary), strength=0.9)
                )
                gains.setdefault((case.kind, grow), []).append(
                    psnr(result.image, case.reference, case.region) - before
                )
    print(
        f"seeds {args.seeds}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {time.perf_counter() - started:.0f} s\n"
    )
    print("| defect | mask grown by (px) | psnr-region gain median (min) | items |")
    print("|---|---|---|---|")
    for (kind, grow), values in gains.items():
        print(f"| {kind} | {grow} | {statistics.median(values):+.2f} ({min(values):+.2f}) | {len(values)} |")


if __name__ == "__main__":
    main()
