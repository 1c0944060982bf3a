"""paq2piq on CPU: seconds per image at a few sizes (random weights: the timing does not depend on
them), and the ratio of the batched 401 boxes to scoring each box on its own.

    python plugins/grefine-paq2piq/benchmarks/bench_paq2piq.py [--sizes 512 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from grefine_paq2piq.indicator import PaQ2PiQ
    from grefine_paq2piq.model import boxes_for
    from PIL import Image

    ind = PaQ2PiQ(weights="random", device="cpu")
    model = ind.load()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()} {os.cpu_count()} CPU(s), torch threads {torch.get_num_threads()}")
    for size in args.sizes:
        image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
        ind.score([image])  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ind.score([image])
            times.append(time.perf_counter() - t0)
        pixels = ind.pixels(image)
        boxes = boxes_for(pixels.shape[2], pixels.shape[3])
        with torch.inference_mode():
            feats = model.features(pixels)
            t0 = time.perf_counter()
            model.score_boxes(feats, boxes)
            batched = time.perf_counter() - t0
            t0 = time.perf_counter()
            for box in boxes:
                model.score_boxes(feats, box[None])
            single = time.perf_counter() - t0
        print(
            f"{size}x{size}: {np.median(times):.3f} s per image (median of {args.repeats}); "
            f"heads on 401 boxes batched {batched * 1000:.1f} ms vs one by one {single * 1000:.1f} ms "
            f"(ratio {single / batched:.1f}x)"
        )


if __name__ == "__main__":
    main()
