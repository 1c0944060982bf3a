"""Generate grefine_kit/data/example.png (a real AI-generated image with one planted defect) and
grefine_kit/data/example-clean.png (the same image without the defect: the reference the demo
measures its repair against, and a clean photo for ``grefine make-defects``).

The source is the example AIGI of the public G-Refine code (Q-Future/Q-Refine, Apache-2.0; a
cheetah cub, 1024x1024), kept unchanged in tests/data/perceptual-example.jpg. This script
downscales it to 384x384 (Lanczos) and adds Gaussian noise (sigma = 25 grey levels, fixed seed)
to a 96x96 patch (1/16 of the area) over the eyes and forehead: ``DEFECT_BOX``. ``grefine demo``
refines this image offline, and its mask should cover the patch and little else (tested).
Running the script again writes the same file byte for byte (for a given Pillow version).
Attribution: grefine_kit/data/NOTICE.

    python tools/make_example_image.py [OUTPUT]   (the clean image goes next to OUTPUT)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "data" / "perceptual-example.jpg"
SIZE = 384
SEED = 20261126
NOISE_SIGMA = 25.0  # grey levels, i.e. 25/255
DEFECT_BOX = (149, 111, 245, 207)  # x0, y0, x1, y1 of the noisy patch (96x96)


def make_clean_image(source: Path = SOURCE) -> Image.Image:
    with Image.open(source) as im:
        return im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def make_example_image(source: Path = SOURCE) -> Image.Image:
    arr = np.asarray(make_clean_image(source), np.float64).copy()
    x0, y0, x1, y1 = DEFECT_BOX
    rng = np.random.default_rng(SEED)
    arr[y0:y1, x0:x1] += rng.normal(0.0, NOISE_SIGMA, (y1 - y0, x1 - x0, 3))
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def main(argv: list[str]) -> None:
    default = ROOT / "grefine_kit" / "data" / "example.png"
    out = Path(argv[0]) if argv else default
    out.parent.mkdir(parents=True, exist_ok=True)
    make_example_image().save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    clean = out.with_name(out.stem + "-clean.png")
    make_clean_image().save(clean, optimize=True)
    print(f"wrote {clean} ({clean.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
