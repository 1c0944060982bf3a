"""Clean photos to plant defects into: the ones that ship with the toolkit, or the user's own.

``builtin_photos()`` gives the colour photographs bundled inside the scikit-image wheel
(``skimage.data``: readable offline; the datasets it would download are left out) and the
clean original of the demo image (``grefine_kit/data/example-clean.png``). The scikit-image
photos are read from the installed scikit-image at run time, never copied into this
repository; their licences (public domain, CC0 or CC-BY) are stated in the docstring of each
``skimage.data`` function. The demo image's notice is ``grefine_kit/data/NOTICE``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
from PIL import Image

from grefine_kit.errors import MissingDependencyError, UserError

__all__ = ["BUILTIN_MAX_SIDE", "BUILTIN_NAMES", "Photo", "builtin_photos", "load_photos"]

#: skimage.data functions whose files ship in the wheel, all colour photographs
BUILTIN_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)


def _size_of(photo: Photo) -> tuple[int, int]:
    if isinstance(photo.source, Image.Image):
        return photo.source.size
    raise TypeError("a Photo read from a file needs its size (load_photos measures it)")


@attrs.frozen
class Photo:
    """A named clean RGB photo (``name`` becomes part of the item ids).

    ``source``: the pixels, or the file they are read from each time :attr:`image` is read,
    so that a folder of photos is never held in memory whole (``make_defect_set`` reads one at
    a time). ``size``: ``(width, height)`` as loaded (EXIF orientation applied); taken from
    an in-memory image, given for a file."""

    name: str
    source: Image.Image | Path = attrs.field(eq=False, repr=False)
    size: tuple[int, int] = attrs.field(default=attrs.Factory(_size_of, takes_self=True), eq=False)

    @property
    def image(self) -> Image.Image:
        """The photo as RGB (read from the file again when ``source`` is one)."""
        if isinstance(self.source, Image.Image):
            return self.source
        from grefine_kit.images.loading import load_image

        return load_image(self.source)


#: bundled photos larger than this (px, longer side) are downscaled (Lanczos) to it, so a set
#: built from them runs in minutes (retina is 1411 px, hubble_deep_field 1000)
BUILTIN_MAX_SIDE = 512


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    scale = max_side / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def builtin_photos(max_side: int = BUILTIN_MAX_SIDE) -> list[Photo]:
    """The bundled photos (see the module docstring), in :data:`BUILTIN_NAMES` order, then the
    demo image's clean original as ``example``; any larger than ``max_side`` px is downscaled."""
    try:
        from skimage import data
    except ImportError as exc:  # a core dependency; only a broken install gets here
        raise MissingDependencyError(
            "the bundled photos need scikit-image (pip install scikit-image)"
        ) from exc
    photos = []
    for name in BUILTIN_NAMES:
        loader: Callable[[], object] = getattr(data, name)
        arr = loader()
        if isinstance(arr, tuple):  # stereo_motorcycle: (left, right, disparity); the left view
            arr = arr[0]
        photos.append(Photo(name, _fit(Image.fromarray(arr).convert("RGB"), max_side)))  # type: ignore[arg-type]
    from grefine_kit.demo import clean_path

    with Image.open(clean_path()) as im:
        photos.append(Photo("example", im.convert("RGB")))
    return photos


def load_photos(paths: Sequence[str | os.PathLike[str]]) -> list[Photo]:
    """The user's photos: files, or folders (their images, sorted). Each is loaded once here,
    safely (a corrupt, huge or odd file is one clear error before anything is written), and
    kept as its path and size: the pixels are read again when planted."""
    from grefine_kit.images.loading import load_image
    from grefine_kit.runs.inputs import expand_inputs

    files = expand_inputs(paths)
    photos = []
    seen: set[str] = set()
    for f in files:
        name = Path(f).stem
        if name in seen:
            raise UserError(f"{f}: two photos are named {name!r}; item ids must be unique, rename one")
        seen.add(name)
        photos.append(Photo(name, Path(f), load_image(f).size))
    return photos
