"""``make_defect_set``: write a planted-defect set (images, clean references, region masks and a
manifest) from clean photos; what ``grefine make-defects`` runs.

Layout of the output folder (every file written by temp file + rename):

- ``images/<id>.png``: the photo with one planted defect; ``<id>`` is ``<photo>-<kind>-s<seed>``;
- ``references/<photo>.png``: the clean photo (one per photo, shared by its items);
- ``regions/<id>.png``: the defect's region, greyscale 0 / 255 (255 = defect);
- ``manifest.csv``: ``id,image,prompt,reference,region`` (paths relative to the manifest, as
  ``grefine refine --manifest`` and ``grefine benchmark --manifest`` read them);
- ``defects.csv``: per item, the photo, kind, seed, level (noise σ in grey levels, blur σ in
  px, JPEG quality), box ``x0,y0,x1,y1`` (x1, y1 exclusive), area fraction and RMS change.

Every photo is checked against the smallest defect size before anything is written, so a photo
that is too small stops the run with one line and leaves no partial set.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
from PIL import Image

from grefine_kit.defects.photos import Photo
from grefine_kit.defects.plant import DEFAULT_SIZES, KINDS, check_photo_size, plant_defect
from grefine_kit.errors import UserError

__all__ = ["DefectSet", "make_defect_set"]

MANIFEST = "manifest.csv"
DEFECTS = "defects.csv"


@attrs.frozen
class DefectSet:
    """What was written: the folder, the manifest and the number of items per kind."""

    out_dir: Path
    manifest: Path
    counts: dict[str, int]


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def make_defect_set(
    photos: Sequence[Photo],
    out_dir: str | os.PathLike[str],
    *,
    kinds: Sequence[str] = KINDS,
    seeds: Sequence[int] = (0,),
    sizes: tuple[float, float] = DEFAULT_SIZES,
) -> DefectSet:
    """Plant one defect per (photo, kind, seed) and write the set (see the module docstring)."""
    from grefine_kit.runs import atomic
    from grefine_kit.runs.inputs import make_output_dir

    if not photos:
        raise UserError("no photos to plant defects into")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise UserError(f"unknown defect kind {bad[0] if bad else '(none)'!r}; kinds: {', '.join(KINDS)}")
    if not seeds:
        raise UserError("give at least one seed")
    for photo in photos:  # before writing anything: a too-small photo leaves no partial set
        check_photo_size(photo.size, sizes, photo.name)
    out = make_output_dir(out_dir)
    for sub in ("images", "references", "regions"):
        (out / sub).mkdir(exist_ok=True)
    rows: list[list[object]] = []
    facts: list[list[object]] = []
    counts = dict.fromkeys(kinds, 0)
    for photo in photos:
        clean = photo.image.convert("RGB")  # read once per photo (from its file, if it has one)
        reference = f"references/{photo.name}.png"
        atomic.write_png(out / reference, clean)
        prompt = f"a photo of {photo.name.replace('_', ' ').replace('-', ' ')}"
        for kind in kinds:
            for seed in seeds:
                planted = plant_defect(clean, kind, int(seed), sizes, name=photo.name)
                ident = f"{photo.name}-{kind}-s{seed}"
                image, region = f"images/{ident}.png", f"regions/{ident}.png"
                atomic.write_png(out / image, planted.image)
                mask = Image.fromarray(planted.region.astype("uint8") * 255, "L")
                atomic.write_png(out / region, mask)
                rows.append([ident, image, prompt, reference, region])
                x0, y0, x1, y1 = planted.box
                w, h = planted.image.size
                facts.append(
                    [
                        ident,
                        photo.name,
                        kind,
                        seed,
                        round(planted.level, 3),
                        x0,
                        y0,
                        x1,
                        y1,
                        round((x1 - x0) * (y1 - y0) / (w * h), 5),
                        round(planted.change, 3),
                    ]
                )
                counts[kind] += 1
    manifest = out / MANIFEST
    atomic.write_text(manifest, _csv_text(["id", "image", "prompt", "reference", "region"], rows))
    header = ["id", "photo", "kind", "seed", "level", "x0", "y0", "x1", "y1", "area", "change"]
    atomic.write_text(out / DEFECTS, _csv_text(header, facts))
    return DefectSet(out_dir=out, manifest=manifest, counts=counts)
