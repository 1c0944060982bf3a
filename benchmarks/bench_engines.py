"""Throughput of the engines on the tiny recipe: local batch 1 vs batch 8, and Ray with 2 actors.

Refine (tiny random CLIP + tiny SDXL-structured pipelines, CPU) and score (PQ-Map on the tiny
CLIP), each on the same images into a fresh run folder, all in one process so the ratios come
from one machine at one time. The first local run is a warm-up (model build, caches), not
counted. Ray starts once (its start-up is printed apart) and its actors build their own models
inside the timed run: that is what a real Ray job pays per run.

    python benchmarks/bench_engines.py [--images 32] [--size 64] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PROMPT = "a red house with a blue door"


def _images(folder: Path, n: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir()
    files = []
    for i in range(n):
        path = folder / f"img{i:04d}.png"
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
        files.append(path)
    return files


def _timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray runs (grefine-ray not installed)")
    args = parser.parse_args()

    import torch

    from grefine_kit.api import build_indicator
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runner.refine import refine_files
    from grefine_kit.runner.score import IndicatorSpec, score_files

    torch.set_num_threads(1)  # one thread per worker everywhere: the comparison is about workers
    recipe = Recipe.load("tiny")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = _images(root / "in", args.images, args.size)
        n = len(files)
        rows: list[tuple[str, str, float]] = []

        def refine(name: str, **kw: Any) -> float:
            seconds, summary = _timed(
                lambda: refine_files(files, recipe, root / name, prompts=PROMPT, progress=False, **kw)
            )
            assert summary.n_ok == n, summary
            return seconds

        def score(name: str, source: Any, **kw: Any) -> float:
            seconds, summary = _timed(lambda: score_files(files, source, root / name, progress=False, **kw))
            assert summary.n_ok == n, summary
            return seconds

        indicator = build_indicator("pq-map", recipe="tiny")
        refine("warm", batch_size=1)
        score("warm-score", indicator, batch_size=1)
        rows.append(("refine", "local, batch 1", refine("r1", batch_size=1)))
        rows.append(("refine", "local, batch 8", refine("r8", batch_size=8)))
        rows.append(("score", "local, batch 1", score("s1", indicator, batch_size=1)))
        rows.append(("score", "local, batch 8", score("s8", indicator, batch_size=8)))
        ray_start = None
        if not args.no_ray:
            import ray

            from grefine_kit.engines import get_engine

            ray_start, _ = _timed(lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False))
            engine = get_engine("ray", workers=2, torch_threads=1)
            rows.append(("refine", "ray, 2 actors, batch 8", refine("rr", batch_size=8, engine=engine)))
            spec = IndicatorSpec("pq-map", recipe="tiny")  # portable: each actor builds its own
            rows.append(("score", "ray, 2 actors, batch 8", score("rs", spec, batch_size=8, engine=engine)))
            ray.shutdown()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )
    print(
        f"torch {torch.__version__}, {n} images of {args.size}x{args.size}, tiny recipe, "
        "1 torch thread per worker"
    )
    if ray_start is not None:
        print(f"ray start-up (not counted): {ray_start:.1f} s")
    print(f"{'run':7} {'engine':26} {'seconds':>8} {'items/s':>8} {'vs local batch 1':>17}")
    base = {kind: s for kind, name, s in rows if name == "local, batch 1"}
    for kind, name, seconds in rows:
        print(f"{kind:7} {name:26} {seconds:8.2f} {n / seconds:8.2f} {base[kind] / seconds:16.2f}x")


if __name__ == "__main__":
    main()
