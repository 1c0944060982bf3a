"""Generate grefine_kit/data/example.png: a small procedural scene with one "defect" region.

The scene (320x240 RGB): a sky gradient, a sun, green ground with a little texture, a house
(walls, roof, door, window) and a patch of strong colour noise on the right of the ground
that stands in for a generation defect. Everything comes from numpy with a fixed seed, so
running this script again writes the same file byte for byte (for a given Pillow version).

    python tools/make_example_image.py [OUTPUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 320, 240
HORIZON = 160
SEED = 20261126
DEFECT_BOX = (232, 176, 296, 228)  # x0, y0, x1, y1 of the noisy patch


def make_example_image() -> Image.Image:
    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    img = np.zeros((HEIGHT, WIDTH, 3), np.float32)

    # sky: deep blue at the top to pale blue at the horizon
    t = (y / HORIZON)[..., None]
    img[:] = (1 - t) * np.array([40, 90, 190]) + t * np.array([170, 210, 245])

    # sun: a disc with a soft glow
    d = np.hypot(x - 260, y - 45)
    glow = np.clip(1 - (d - 18) / 30, 0, 1)[..., None] * 0.5
    img = img * (1 - glow) + np.array([255, 240, 170]) * glow
    img[d <= 18] = (255, 225, 80)

    # ground: green, darker towards the bottom, with mild grass texture
    ground = y >= HORIZON
    shade = ((y - HORIZON) / (HEIGHT - HORIZON))[..., None]
    grass = (1 - shade) * np.array([90, 160, 70]) + shade * np.array([50, 110, 40])
    grass = grass + rng.normal(0, 6, (HEIGHT, WIDTH, 1))
    img = np.where(ground[..., None], grass, img)

    # house: walls, a triangular roof, a door and a window
    wx0, wx1, wy0, wy1 = 70, 170, 110, 185
    img[wy0:wy1, wx0:wx1] = (225, 205, 170)
    roof = (y >= 70) & (y < wy0) & (np.abs(x - (wx0 + wx1) / 2) <= (y - 70) * 1.5 + 4)
    img[roof] = (160, 60, 50)
    img[145:185, 108:130] = (110, 70, 40)  # door
    img[125:147, 140:162] = (120, 170, 220)  # window
    img[135:137, 140:162] = img[125:147, 150:152] = (250, 250, 250)  # window bars

    # the "defect": strong colour noise in a patch of ground
    x0, y0, x1, y1 = DEFECT_BOX
    img[y0:y1, x0:x1] = rng.uniform(0, 255, (y1 - y0, x1 - x0, 3))

    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")


def main(argv: list[str]) -> None:
    default = Path(__file__).resolve().parents[1] / "grefine_kit" / "data" / "example.png"
    out = Path(argv[0]) if argv else default
    out.parent.mkdir(parents=True, exist_ok=True)
    make_example_image().save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
