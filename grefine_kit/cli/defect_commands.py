"""``grefine make-defects``: a planted-defect set from clean photos (docs/benchmark.md)."""

from __future__ import annotations

import click

from grefine_kit.cli.app import cli, user_errors


def _seeds(text: str) -> list[int]:
    from grefine_kit.errors import UserError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds must be integers separated by commas; got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"--seeds must be non-negative integers separated by commas; got {text!r}")
    return list(dict.fromkeys(seeds))


def _sizes(text: str) -> tuple[float, float]:
    from fractions import Fraction

    from grefine_kit.errors import UserError

    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(Fraction(p)) for p in parts if p]
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--sizes takes two area fractions like 1/25,1/6; got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise UserError(f"--sizes takes two area fractions like 1/25,1/6; got {text!r}")
    return values[0], values[1]


@cli.command("make-defects")
@click.argument("photos", nargs=-1, type=click.Path())
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="folder to write the set into"
)
@click.option(
    "--builtin",
    is_flag=True,
    help="add the bundled photos: scikit-image's colour photographs and the demo image's clean original",
)
@click.option("--kinds", default="noise,blur,jpeg", show_default=True, help="defect kinds, comma-separated")
@click.option(
    "--seeds", default="0", show_default=True, help="one defect per photo, kind and seed (e.g. 0,1)"
)
@click.option(
    "--sizes",
    default="1/25,1/6",
    show_default=True,
    help="smallest,largest defect area as a fraction of the image",
)
@user_errors
def make_defects_command(
    photos: tuple[str, ...], out_dir: str, builtin: bool, kinds: str, seeds: str, sizes: str
) -> None:
    """Plant one local defect (noise, blur or JPEG blocking) per photo, kind and seed, at a
    random position and size; write the images, clean references, region masks and a manifest
    (id,image,prompt,reference,region) for `grefine benchmark --manifest`."""
    from grefine_kit.defects.build import make_defect_set
    from grefine_kit.defects.photos import builtin_photos, load_photos
    from grefine_kit.errors import UserError

    if not photos and not builtin:
        raise UserError("no photos: give image files or folders, or --builtin for the bundled photos")
    found = (builtin_photos() if builtin else []) + (load_photos(photos) if photos else [])
    names = [p.name for p in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"two photos are named {dupes[0]!r}; item ids must be unique, rename one")
    result = make_defect_set(
        found,
        out_dir,
        kinds=[k.strip() for k in kinds.split(",") if k.strip()],
        seeds=_seeds(seeds),
        sizes=_sizes(sizes),
    )
    total = sum(result.counts.values())
    per_kind = ", ".join(f"{n} {k}" for k, n in result.counts.items())
    click.echo(f"planted {total} defect(s) ({per_kind}) into {len(found)} photo(s) -> {result.out_dir}")
    click.echo(f"  manifest: {result.manifest}")
    click.echo(
        f"Next: grefine benchmark --manifest {result.manifest} --recipe restore --recipe restore-global "
        "--metric psnr-region --metric ssim-rest --metric mask-iou --out DIR"
    )
