"""PQ-Map cost against a plain CLIP image forward, at real ViT-B/16 size (random weights, CPU).

Times, for 1 and 8 images at 224 px:
Each figure is the best of ``--repeats`` runs, the three taken in turn (robust to a busy machine).

- ``encode_image``: open_clip's plain image forward on ready tensors (the floor);
- ``surgery``: ``clip_surgery_tokens`` on the same tensors (the v-v path on the last 6 blocks);
- ``pq-map``: a full ``PQMap.score`` call on PIL images (preprocessing, surgery forward,
  4 factor pairs, cask effect, map upsampling), text features cached, image cache cleared.

Run: ``python benchmarks/bench_pq_map.py [--repeats 3] [--threads N]``. Target: pq-map <= 1.3x encode_image.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from grefine_kit.indicators.pq_map import PQMap
from grefine_kit.models.loading import BackboneSpec, get_backbone
from grefine_kit.models.surgery import clip_surgery_tokens


def _time_interleaved(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Best-of-``repeats`` ms per function, run in turn so that load from other processes hits all alike."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return [b * 1000.0 for b in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--model", default="ViT-B-16-quickgelu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = BackboneSpec(model=args.model, weights="random", device="cpu")
    backbone = get_backbone(spec)
    pq = PQMap(model=spec.model, weights=spec.weights, device=spec.device)
    pq.load()  # text table computed once, as in a long run
    rng = np.random.default_rng(0)
    print(
        f"{args.model} random weights | torch {torch.__version__} | threads {torch.get_num_threads()} | "
        f"{platform.machine()} {platform.processor() or ''}".strip()
    )
    print(
        f"{'batch':>5} {'encode_image':>13} {'surgery':>9} {'pq-map':>9}"
        f" {'surgery/enc':>12} {'pq-map/enc':>11}"
    )
    for batch in (1, 8):
        images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(batch)]
        pixels = backbone.preprocess(images)

        def plain(pixels: torch.Tensor = pixels) -> object:
            with torch.no_grad():
                return backbone.model.encode_image(pixels)

        def surgery(pixels: torch.Tensor = pixels) -> object:
            with torch.no_grad():
                return clip_surgery_tokens(backbone.model, pixels)

        def full(images: list[Image.Image] = images) -> object:
            backbone._image_cache.clear()  # measure the real forward, not a cache hit
            return pq.score(images)

        t_plain, t_surgery, t_full = _time_interleaved([plain, surgery, full], args.repeats)
        print(
            f"{batch:>5} {t_plain:>10.0f} ms {t_surgery:>6.0f} ms {t_full:>6.0f} ms "
            f"{t_surgery / t_plain:>11.2f}x {t_full / t_plain:>10.2f}x"
        )


if __name__ == "__main__":
    main()
