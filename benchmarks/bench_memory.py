"""Peak memory (RSS) of refining large images with the tiny random-weight pipelines on CPU.

Each case runs in a fresh Python process (peak RSS only grows within a process) and reports
``ru_maxrss`` at its end and its wall time:

- ``baseline``: the imports and the tiny models only (what every other case starts from);
- ``refine NNNN²``: the whole ``tiny`` recipe (PQ/AQ maps, combiner, stage 1, stage 2) on an
  NNNN x NNNN input, default options (the stages work at the model's working area and map back);
- ``stage 4096², resolution R, ...``: stage 1 alone on a 4096² input at a working area of R²,
  with the memory options off or on (VAE tiling / slicing, attention slicing);
- ``VAE NNNN²``: the tiny VAE's encode + decode of an NNNN² image, untiled and tiled (what
  ``vae_tiling`` bounds when a stage works at a large area).

Run: ``python benchmarks/bench_memory.py`` (``--sizes 1024 2048`` for a shorter run; ``--json``
for one JSON row per case). Figures in docs/refiner.md ("Big images, small devices").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

CASE = r"""
import json, resource, sys, time
import numpy as np
from PIL import Image
spec = json.loads(sys.argv[1])
from grefine_kit.stages.diffusion import InpaintStage
from grefine_kit.stages.loading import load_pipeline
from grefine_kit.stages.base import StageRequest
from grefine_kit.types import Mask
load_pipeline("tiny", "inpaint", device="cpu", dtype="float32")
side = spec["size"]
rng = np.random.default_rng(0)
image = None
if spec["kind"] != "baseline":
    small = (rng.random((64, 64, 3)) * 255).astype("uint8")
    image = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
started = time.perf_counter()
if spec["kind"] == "refine":
    from grefine_kit.recipes.recipe import Recipe
    refiner = Recipe.load("tiny").build()
    refiner.refine(image, "a red apple on a wooden table", "bench")
elif spec["kind"] == "stage":
    binary = np.zeros((side, side), np.float32)
    binary[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 1
    stage = InpaintStage(model="tiny", device="cpu", dtype="float32", **spec["options"])
    stage.run(StageRequest(image=image, mask=Mask(binary=binary, soft=binary), prompt="an apple",
                           strength=0.5, steps=4))
elif spec["kind"] == "vae":
    import torch
    vae = load_pipeline("tiny", "inpaint", device="cpu", dtype="float32").vae
    if spec["options"].get("vae_tiling"):
        vae.enable_tiling()
    x = torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        vae.decode(z)
seconds = time.perf_counter() - started
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": seconds}))
"""


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CASE, json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {**spec, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {**spec, **row, "process_seconds": time.perf_counter() - started}


def cases(
    sizes: list[int], resolutions: list[int], vae_sizes: list[int], kinds: list[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"kind": "baseline", "size": 0, "options": {}}]
    out += [{"kind": "refine", "size": s, "options": {}} for s in sizes]
    big = max(sizes)
    for r in resolutions:
        out.append({"kind": "stage", "size": big, "options": {"resolution": r}})
        out.append(
            {
                "kind": "stage",
                "size": big,
                "options": {
                    "resolution": r,
                    "vae_tiling": True,
                    "vae_slicing": True,
                    "attention_slicing": "auto",
                },
            }
        )
    for side in vae_sizes:
        out.append({"kind": "vae", "size": side, "options": {}})
        out.append({"kind": "vae", "size": side, "options": {"vae_tiling": True}})
    return [c for c in out if not kinds or c["kind"] in kinds]


def label(row: dict[str, Any]) -> str:
    if row["kind"] == "baseline":
        return "baseline (imports + tiny models)"
    if row["kind"] == "refine":
        return f"refine {row['size']}² (tiny recipe)"
    if row["kind"] == "vae":
        return f"VAE encode + decode {row['size']}², {'tiled' if row['options'] else 'untiled'}"
    opts = dict(row["options"])
    res = opts.pop("resolution")
    extra = ", ".join(k for k, v in opts.items() if v) or "no memory options"
    return f"stage 1, {row['size']}² input, working {res}², {extra}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256])
    parser.add_argument("--vae-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--kinds", nargs="+", default=[], help="only these: baseline refine stage vae")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.json:
        print("| case | peak RSS (MiB) | seconds |")
        print("|---|---:|---:|", flush=True)
    for spec in cases(
        args.sizes, args.resolutions, args.vae_sizes, args.kinds
    ):  # one line per case as it finishes
        row = run_case(spec)
        if args.json:
            print(json.dumps(row), flush=True)
        elif "error" in row:
            print(f"| {label(row)} | failed: {row['error']} | |", flush=True)
        else:
            print(f"| {label(row)} | {row['peak_rss_mib']:.0f} | {row['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
