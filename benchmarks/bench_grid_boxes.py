"""Does ``restore``'s ``auto`` tell a blurred box from JPEG blocking when the box lies on the 8-px grid?

JPEG blocking is steps on the 8-px grid lines; a blurred box whose sides lie on those lines has
steps there too, along its border. This script pastes, into 9 bundled photos resized to 256 px,
a box of each ``--sizes`` side at two positions (64 and 96 px), on the grid and 3 px off it:
Gaussian blur σ 3 px, and JPEG at each of ``--qualities`` (36 boxes per kind and size).
It runs the ``restore`` stage (``auto``, strength 0.9) with the box as the mask, grown by
``--grow`` px, and prints per kind and size how often each method was chosen and the median
``psnr-region`` gain (dB, inside the box, against the photo).

    python benchmarks/bench_grid_boxes.py [--sizes 48,64,128] [--qualities 10,30,50,70] [--grow 0]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import statistics
import time
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="48,64,128")
    parser.add_argument("--qualities", default="10,30,50,70", help="JPEG qualities of the JPEG boxes")
    parser.add_argument("--grow", type=int, default=0, help="px the mask extends past the box")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np
    from PIL import Image, ImageFilter
    from scipy import ndimage

    from grefine_kit.defects.photos import builtin_photos
    from grefine_kit.metrics.fidelity import psnr
    from grefine_kit.stages.base import StageRequest
    from grefine_kit.stages.restore import RestoreStage
    from grefine_kit.types import Mask

    started = time.perf_counter()
    stage = RestoreStage()
    kinds = {"blur": 0} | {f"jpeg q{q}": int(q) for q in args.qualities.split(",")}
    chosen: dict[tuple[str, int], Counter[str]] = {}
    gains: dict[tuple[str, int], list[float]] = {}
    sides = [int(s) for s in args.sizes.split(",")]
    for photo in builtin_photos():
        clean = photo.image.convert("RGB").resize((256, 256), Image.Resampling.LANCZOS)
        for kind, quality in kinds.items():
            damaged = clean.filter(ImageFilter.GaussianBlur(3.0))
            if quality:
                buffer = io.BytesIO()
                clean.save(buffer, "JPEG", quality=quality)
                damaged = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
            for side, x0 in itertools.product(sides, (64, 67, 96, 99)):  # on the grid and 3 px off
                box = (x0, x0, x0 + side, x0 + side)
                image = clean.copy()
                image.paste(damaged.crop(box), box[:2])
                region = np.zeros((256, 256), bool)
                region[x0 : x0 + side, x0 : x0 + side] = True
                grown = ndimage.binary_dilation(region, np.ones((2 * args.grow + 1,) * 2, bool))
                m = (grown if args.grow else region).astype(np.float32)
                result = stage.run(StageRequest(image=image, mask=Mask(binary=m, soft=m), strength=0.9))
                chosen.setdefault((kind, side), Counter())[result.details["methods"][0]] += 1
                gain = psnr(result.image, clean, region) - psnr(image, clean, region)
                gains.setdefault((kind, side), []).append(gain)
    print(
        f"grow {args.grow} px; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {time.perf_counter() - started:.0f} s\n"
    )
    print("| box | side (px) | methods chosen | gain median (dB) |")
    print("|---|---|---|---|")
    for (kind, side), counts in chosen.items():
        methods = ", ".join(f"{m} {n}" for m, n in counts.most_common())
        print(f"| {kind} | {side} | {methods} | {statistics.median(gains[(kind, side)]):+.2f} |")


if __name__ == "__main__":
    main()
