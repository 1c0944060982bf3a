"""The restore stage on a 1024x1024 image, one CPU thread: seconds per call against the 2 s target.

The image is the bundled test AIGI (tests/data/perceptual-example.jpg, 1024x1024) with a
planted defect over 1/9 of the area (``--kind``: noise, blur or jpeg, grefine_kit.defects),
the mask its exact box. Times (median of ``--repeats`` after one warm-up): the masked stage
(``auto``: detectors + the method on the box), the mild global pass (``wiener``), the
defect-map indicator, the whole ``restore`` recipe, and the ``restore-global`` baseline.

    python benchmarks/bench_restore_speed.py [--kind noise] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

TARGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="noise", choices=("noise", "blur", "jpeg"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np
    from PIL import Image

    from grefine_kit.defects.plant import plant_defect
    from grefine_kit.indicators.defect_map import DefectMap
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.stages.base import StageRequest
    from grefine_kit.stages.restore import RestoreStage
    from grefine_kit.types import Mask

    source = Path(__file__).resolve().parents[1] / "tests" / "data" / "perceptual-example.jpg"
    photo = Image.open(source).convert("RGB").resize((1024, 1024))
    planted = plant_defect(photo, args.kind, 0, sizes=(1 / 9, 1 / 9), name="bench")
    binary = planted.region.astype(np.float32)
    mask = Mask(binary=binary, soft=binary)
    restore_recipe, global_recipe = Recipe.load("restore").build(), Recipe.load("restore-global").build()
    cases = {
        "stage 1 (masked, auto)": lambda: RestoreStage().run(
            StageRequest(image=planted.image, mask=mask, strength=0.9)
        ),
        "stage 2 (global, wiener)": lambda: RestoreStage(method="wiener").run(
            StageRequest(image=planted.image, strength=0.1)
        ),
        "defect-map": lambda: DefectMap().score([planted.image]),
        "restore recipe (map + mask + both stages)": lambda: restore_recipe.refine(planted.image, "", "b"),
        "restore-global recipe": lambda: global_recipe.refine(planted.image, "", "b"),
    }
    print(
        f"1024x1024, planted {args.kind} over 1/9 of the image; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; median of {args.repeats}"
    )
    for name, call in cases.items():
        call()  # warm-up (imports, caches)
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        print(f"  {name:44s} {median:6.2f} s  ({median / TARGET_S:.2f} x the {TARGET_S:.0f} s target)")


if __name__ == "__main__":
    main()
