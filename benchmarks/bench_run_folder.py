"""What the run-folder guarantees cost: the refine runner on a model-free refiner vs a bare loop.

The refiner double inverts the image, so almost all the time is I/O: loading, PNG encoding and
the run folder's work (SHA-256 of each input, temp file + fsync + rename per output, one synced
log line per item, the lock). The bare loop loads, inverts and saves the PNG in place, with none
of those guarantees. Also timed: a rerun with everything done (fingerprints from size + mtime,
no image decoded). With real models a refine takes 0.7 s (tiny, CPU) to tens of seconds per
image, so the overhead per item printed here is what to compare with that.

    python benchmarks/bench_run_folder.py [--images 200] [--size 256]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from grefine_kit.runner.refine_work import SingleImageRefiner


class Inverter(SingleImageRefiner):
    seed, recipe_hash = 0, "bench"

    def refine(self, image: Image.Image, prompt: str, image_id: str = "image") -> Any:
        from grefine_kit.refiner.refiner import RefineResult
        from grefine_kit.types import Mask

        empty = np.zeros((image.height, image.width), np.float32)
        return RefineResult(
            image=Image.fromarray(255 - np.asarray(image)), mask=Mask(binary=empty, soft=empty)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    from grefine_kit.images.loading import load_image
    from grefine_kit.runner.refine import refine_files

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = root / "in"
        inputs.mkdir()
        files = []
        for i in range(args.images):
            path = inputs / f"img{i:04d}.png"
            Image.fromarray((rng.random((args.size, args.size, 3)) * 255).astype(np.uint8)).save(path)
            files.append(path)

        bare = root / "bare"
        bare.mkdir()
        started = time.perf_counter()
        refiner = Inverter()
        for path in files:
            refiner.refine(load_image(path), "p").image.save(bare / path.name)
        t_bare = time.perf_counter() - started

        started = time.perf_counter()
        summary = refine_files(files, refiner, root / "run", prompts="p", progress=False)
        t_run = time.perf_counter() - started
        assert summary.n_ok == len(files)

        started = time.perf_counter()
        again = refine_files(files, refiner, root / "run", prompts="p", progress=False)
        t_resume = time.perf_counter() - started
        assert again.n_skipped == len(files)

    n = len(files)
    where = f"{platform.machine()}, {platform.processor() or 'cpu'}"
    print(f"machine: {where}; {n} images of {args.size}x{args.size}")
    print(f"bare loop (load, invert, save in place): {1000 * t_bare / n:.2f} ms/image")
    print(f"run folder (hash, atomic writes, synced log): {1000 * t_run / n:.2f} ms/image")
    print(f"overhead: {1000 * (t_run - t_bare) / n:.2f} ms/image, ratio run/bare {t_run / t_bare:.2f}")
    print(
        f"rerun, all done (skip check only): {1000 * t_resume / n:.2f} ms/image, "
        f"ratio rerun/run {t_resume / t_run:.3f}"
    )


if __name__ == "__main__":
    main()
