"""Safe image input: every image that enters the toolkit.

Every image that enters the toolkit goes through :func:`load_image`, which returns a fully
loaded RGB ``PIL.Image.Image`` or raises :class:`~grefine_kit.errors.ImageError` with a
one-line message naming the source. Rules (see docs/images.md):

- EXIF orientation is applied; animated files give their first frame.
- Alpha is composited over **white**: transparent regions of generated cut-outs, logos and
  stickers are meant to be seen on light backgrounds, and white keeps a fully transparent
  area from reading as a dark blob that an indicator would flag as a defect.
- 16-bit and 32-bit integer grey levels are scaled from 0..65535 to 0..255 (PIL alone clips).
- The pixel limit is checked on the header size, before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, TypeAlias, Union, cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from grefine_kit.errors import ImageBombError, ImageError, ImageTooLargeError, NotAnImageError, UserError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ENV_MAX_PIXELS",
    "FROM_ENV",
    "ImageSource",
    "MaxPixels",
    "load_image",
    "max_pixels_from_env",
    "resolve_max_pixels",
    "source_name",
    "to_rgb",
]

DEFAULT_MAX_PIXELS: Final = 64_000_000
"""Default pixel limit (64 MP): larger than any generator output, far below a bomb's size."""

ENV_MAX_PIXELS: Final = "GREFINE_MAX_PIXELS"


class _FromEnv:
    """Sentinel type: read the pixel limit from ``GREFINE_MAX_PIXELS`` (else the default)."""

    def __repr__(self) -> str:
        return "FROM_ENV"


FROM_ENV: Final = _FromEnv()

# Union[...] rather than X | Y: "torch.Tensor" stays a forward reference (no torch import)
ImageSource: TypeAlias = Union[
    str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray, "torch.Tensor"
]
"""Anything :func:`load_image` accepts."""

MaxPixels: TypeAlias = int | _FromEnv | None
"""A pixel limit: a count, None (no limit) or :data:`FROM_ENV` (``GREFINE_MAX_PIXELS`` or 64 MP)."""

_WHITE = (255, 255, 255)


def max_pixels_from_env() -> int | None:
    """The pixel limit from ``GREFINE_MAX_PIXELS``: a positive integer, or ``none``/``off``/``0``
    to disable; unset or empty gives :data:`DEFAULT_MAX_PIXELS`. A bad value is a UserError."""
    raw = os.environ.get(ENV_MAX_PIXELS, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    if raw.lower() in {"none", "off", "0"}:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(f"{ENV_MAX_PIXELS}={raw!r} is not a pixel count (use a positive integer, or 'none')")
    return value


def resolve_max_pixels(max_pixels: MaxPixels) -> int | None:
    """The limit ``max_pixels`` stands for (reads the env var for FROM_ENV); UserError if invalid."""
    if isinstance(max_pixels, _FromEnv):
        return max_pixels_from_env()
    if max_pixels is not None and (not isinstance(max_pixels, int) or max_pixels <= 0):
        raise UserError(f"max_pixels must be a positive integer or None; got {max_pixels!r}")
    return max_pixels


def _pixels(n: int) -> str:
    """``64.0 MP`` for large counts, ``1,000 pixels`` below 0.1 MP (never a ``0.0 MP`` limit)."""
    return f"{n / 1e6:.1f} MP" if n >= 100_000 else f"{n:,} pixels"


def _check_size(size: tuple[int, int], limit: int | None, name: str) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: the image is empty ({w}x{h})")
    if limit is not None and w * h > limit:
        raise ImageTooLargeError(
            f"{name}: {w}x{h} = {_pixels(w * h)} exceeds the {_pixels(limit)} limit "
            f"(raise it with {ENV_MAX_PIXELS} or max_pixels=; 'none' disables it)"
        )


# --- loading ---------------------------------------------------------------------------


def load_image(source: ImageSource, *, max_pixels: MaxPixels = FROM_ENV) -> Image.Image:
    """Load ``source`` as a fully decoded RGB image.

    ``source``: a path (str / PathLike), ``bytes``, a binary file object, a PIL image, a numpy
    array (``HxW``, ``HxWx1|3|4``; uint8, uint16, bool, or float in ``[0, 1]``) or a torch
    tensor (``CxHxW`` or ``HxWxC``, optionally with a leading batch dim of 1; uint8 or float
    in ``[0, 1]``). ``max_pixels``: refuse images with more pixels (checked on the header
    before decoding); ``None`` disables; by default ``GREFINE_MAX_PIXELS`` or 64 MP.

    Raises ImageError (a UserError) naming the source for anything unreadable, too large,
    truncated or of an unsupported kind.
    """
    limit = resolve_max_pixels(max_pixels)
    if isinstance(source, Image.Image):
        name = source_name(source)
        _check_size(source.size, limit, name)
        try:
            source.load()  # a lazily opened PIL image may still be truncated
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
            raise ImageError(f"{name}: corrupt or truncated image ({e})") from e
        return to_rgb(_exif_transpose(source), name)
    if isinstance(source, np.ndarray):
        return _from_array(source, limit, "numpy array")
    if _is_torch_tensor(source):
        return _from_tensor(source, limit)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_file(io.BytesIO(bytes(source)), "<bytes>", limit)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            what = "is a folder, not an image" if path.is_dir() else "does not exist"
            raise ImageError(f"{path}: {what}")
        try:
            fp = path.open("rb")
        except OSError as e:
            raise ImageError(f"{path}: cannot open ({e.strerror or e})") from e
        with fp:
            return _from_file(fp, str(path), limit)
    if hasattr(source, "read"):
        return _from_file(cast(IO[bytes], source), str(getattr(source, "name", "<file object>")), limit)
    raise ImageError(f"cannot load an image from a {type(source).__name__}")


def source_name(im: Image.Image) -> str:
    """How messages name a PIL image: its file name, else ``<PIL image>``."""
    return str(getattr(im, "filename", "") or "<PIL image>")


def _from_file(fp: IO[bytes], name: str, limit: int | None) -> Image.Image:
    try:
        # Our own limit governs; PIL's warning would only duplicate it. PIL's hard error
        # (at 2x its global MAX_IMAGE_PIXELS) still fires in Image.open and is reported below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except Image.DecompressionBombError as e:
        raise ImageBombError(f"{name}: refused as a possible decompression bomb ({e})") from e
    except UnidentifiedImageError as e:
        raise NotAnImageError(f"{name}: not an image file, or a format PIL cannot read") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise NotAnImageError(f"{name}: cannot read the image header ({e})") from e
    with im:
        _check_size(im.size, limit, name)  # header size only: nothing decoded yet
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
        except Image.DecompressionBombError as e:
            raise ImageBombError(f"{name}: refused as a possible decompression bomb ({e})") from e
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
            raise ImageError(f"{name}: corrupt or truncated image ({e})") from e
        return to_rgb(_exif_transpose(im), name)


def _exif_transpose(im: Image.Image) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not lose an otherwise good image
        return im
    return out if out is not None else im


def to_rgb(im: Image.Image, name: str) -> Image.Image:
    """Convert any PIL mode to a fresh RGB image (alpha over white, 16-bit scaled)."""
    mode = im.mode
    if mode == "RGB":
        return im.copy()
    if mode == "P":
        # a palette with transparency becomes RGBA so the alpha rule below applies
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        return to_rgb(im, name)
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(im, dtype=np.float64)
        return _from_array((np.clip(grey, 0, 65535) / 257.0 + 0.5).astype(np.uint8), None, name)
    if mode == "F":
        grey = np.asarray(im, dtype=np.float64)
        if not np.isfinite(grey).all():
            raise ImageError(f"{name}: float image has NaN or inf pixels")
        # a float image is in [0, 1] when its maximum says so, else in 0..255
        scale = 255.0 if grey.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray((np.clip(grey * scale, 0, 255) + 0.5).astype(np.uint8), "L").convert("RGB")
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        if mode == "La":  # premultiplied grey: PIL only un-premultiplies it to LA
            im = im.convert("LA")
        rgba = im.convert("RGBA")  # also un-premultiplies RGBa
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageError(f"{name}: unsupported image mode {mode!r}") from e


# --- arrays and tensors ----------------------------------------------------------------


def _from_array(arr: np.ndarray, limit: int | None, name: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ImageError(f"{name}: expected shape HxW, HxWx3 or HxWx4; got {arr.shape}")
    h, w = arr.shape[:2]
    _check_size((w, h), limit, name)
    arr = _to_uint8(arr, name)
    if arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr), "L").convert("RGB")
    if arr.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(arr), "RGB")
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA"), name)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(f"{name}: float pixels must be finite")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ImageError(f"{name}: float pixels must lie in [0, 1]; got [{lo:.4g}, {hi:.4g}]")
        return (np.clip(arr.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    raise ImageError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16, bool or float in [0, 1])")


def _is_torch_tensor(obj: Any) -> bool:
    # If torch was never imported, obj cannot be a tensor: no import needed to decide.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _from_tensor(t: Any, limit: int | None) -> Image.Image:
    import torch  # already imported by the caller's code (see _is_torch_tensor)

    name = "torch tensor"
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        chw = False
    elif t.ndim == 3:
        # torch's convention is CxHxW; HxWxC only when the first dim cannot be channels
        chw = t.shape[0] in (1, 3, 4) or t.shape[2] not in (1, 3, 4)
    else:
        raise ImageError(f"{name}: expected CxHxW or HxWxC; got shape {tuple(t.shape)}")
    t = t.detach().cpu()
    if t.dtype.is_floating_point:
        t = t.to(torch.float32)
    elif t.dtype not in (torch.uint8, torch.bool):
        raise ImageError(f"{name}: unsupported dtype {t.dtype} (use uint8 or float in [0, 1])")
    arr = t.numpy()
    if t.ndim == 3 and chw:
        arr = np.moveaxis(arr, 0, -1)
    return _from_array(arr, limit, name)
