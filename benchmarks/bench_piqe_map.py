"""piqe-map on a 1024x1024 image, one CPU thread: time per image and its ratio to the 1 s target.

The image is the bundled test AIGI (tests/data/perceptual-example.jpg) when present, else a
seeded random texture of the same size; the timing does not depend on the content much, since
every step is vectorised over whole blocks. Prints the median of ``--repeats`` runs (after one
warm-up) and the split between the PIQE core and the rest (detail term, smoothing, upsampling).

    python benchmarks/bench_piqe_map.py [--size 1024] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # numpy here is single-threaded anyway

    from PIL import Image

    from grefine_kit.indicators.piqe import grey_levels, piqe
    from grefine_kit.indicators.piqe_map import PiqeMap

    example = Path(__file__).resolve().parents[1] / "tests" / "data" / "perceptual-example.jpg"
    if example.is_file():
        image = Image.open(example).convert("RGB").resize((args.size, args.size), Image.Resampling.BICUBIC)
    else:
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8), "RGB")
    indicator = PiqeMap()
    indicator.score([image])  # warm-up
    full, core = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        indicator.score([image])
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        piqe(grey_levels(np.asarray(image)))
        core.append(time.perf_counter() - t0)
    t_full, t_core = float(np.median(full)), float(np.median(core))
    print(f"machine: {platform.machine()} {os.cpu_count()} CPU(s), python {platform.python_version()}")
    print(f"image: {args.size}x{args.size}, median of {args.repeats} runs")
    print(f"piqe core:        {t_core * 1000:7.1f} ms")
    print(f"piqe-map (total): {t_full * 1000:7.1f} ms")
    print(f"ratio to the {TARGET_S:.0f} s target: {t_full / TARGET_S:.3f} (below 1 = faster than the target)")


if __name__ == "__main__":
    main()
