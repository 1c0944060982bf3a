"""Safe image loading, pixel limits, map resizing and heatmap overlays (grefine_kit.images)."""

from __future__ import annotations

import importlib.util
import io
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grefine_kit.errors import ImageError, UserError
from grefine_kit.images.heatmaps import colorize_map, overlay_heatmap, resize_map, save_map_npy
from grefine_kit.images.loading import (
    DEFAULT_MAX_PIXELS,
    ENV_MAX_PIXELS,
    ImageSource,
    load_image,
    max_pixels_from_env,
)

REPO = Path(__file__).resolve().parents[1]


def png_bytes(width: int, height: int, depth: int, colour_type: int, rows: list[bytes]) -> bytes:
    """A PNG written by hand, so the header can claim any size (decompression-bomb tests)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + r for r in rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rgb(im: Image.Image) -> np.ndarray:
    assert im.mode == "RGB"
    return np.asarray(im).astype(int)


@pytest.fixture
def no_env_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MAX_PIXELS, raising=False)


# --- sources ---------------------------------------------------------------------------


def test_every_source_kind_gives_the_same_rgb(tmp_path: Path, no_env_limit: None) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (9, 17, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    data = path.read_bytes()
    sources: list[ImageSource] = [
        str(path),
        path,
        data,
        bytearray(data),
        io.BytesIO(data),
        Image.open(path),
        arr,
    ]
    for src in sources:
        im = load_image(src)
        assert im.size == (17, 9)
        np.testing.assert_array_equal(rgb(im), arr)
    with path.open("rb") as f:
        np.testing.assert_array_equal(rgb(load_image(f)), arr)


def test_numpy_dtypes_and_shapes(no_env_limit: None) -> None:
    grey = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_array_equal(rgb(load_image(grey))[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(rgb(load_image(grey[..., None]))[0, :, 1], [0, 128, 255])
    u16 = np.array([[0, 32896, 65535]], np.uint16)
    np.testing.assert_array_equal(rgb(load_image(u16))[0, :, 2], [0, 128, 255])
    f = np.array([[0.0, 0.5, 1.0]], np.float64)
    np.testing.assert_array_equal(rgb(load_image(f))[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(rgb(load_image(np.array([[True, False]])))[0, :, 0], [255, 0])
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 2.0))
    with pytest.raises(ImageError, match="finite"):
        load_image(np.full((4, 4), np.nan))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="dtype"):
        load_image(np.zeros((4, 4), np.int64))
    with pytest.raises(ImageError, match="cannot load"):
        load_image(12345)  # type: ignore[arg-type]


def test_torch_tensors(no_env_limit: None) -> None:
    torch = pytest.importorskip("torch")
    arr = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    chw_float = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    for t in (chw_float, chw_float[None], torch.from_numpy(arr), chw_float.to(torch.bfloat16)):
        im = load_image(t)
        assert im.size == (7, 5)
        tol = 2 if t.dtype == torch.bfloat16 else 0
        assert np.abs(rgb(im) - arr).max() <= tol
    grey = torch.zeros(1, 5, 7)
    assert load_image(grey).size == (7, 5)
    with pytest.raises(ImageError, match="dtype"):
        load_image(torch.zeros(3, 4, 4, dtype=torch.int32))


def test_loading_a_path_never_imports_torch(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(path)
    code = (
        f"import sys; from grefine_kit.images.loading import load_image; load_image({str(path)!r}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- modes and alpha -------------------------------------------------------------------


def test_alpha_is_composited_over_white(no_env_limit: None) -> None:
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    rgba[0, 1] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    rgba[0, 2] = (0, 0, 255, 255)  # opaque blue stays blue
    out = rgb(load_image(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    assert np.all(np.abs(out[0, 1] - 127) <= 1)
    np.testing.assert_array_equal(out[0, 2], [0, 0, 255])
    np.testing.assert_array_equal(rgb(load_image(rgba))[0, 0], [255, 255, 255])  # numpy HxWx4 too
    la = Image.fromarray(np.array([[[10, 0], [10, 255]]], np.uint8), "LA")
    np.testing.assert_array_equal(rgb(load_image(la))[0], [[255, 255, 255], [10, 10, 10]])


def test_palette_with_transparency(tmp_path: Path, no_env_limit: None) -> None:
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    path = tmp_path / "p.png"
    p.save(path, transparency=0)
    np.testing.assert_array_equal(rgb(load_image(path))[0], [[255, 255, 255], [200, 0, 0]])


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path, no_env_limit: None) -> None:
    values = np.array([[0, 257 * 64, 32896, 65535]], ">u2")
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(4, 1, 16, 0, [values.tobytes()]))
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(rgb(load_image(path))[0, :, 0], [0, 64, 128, 255])


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F", "CMYK", "YCbCr", "1", "L", "HSV"])
def test_other_modes_convert(mode: str, no_env_limit: None) -> None:
    im = Image.new(mode, (3, 2))
    out = load_image(im)
    assert out.mode == "RGB" and out.size == (3, 2)


def test_cmyk_and_float_values(no_env_limit: None) -> None:
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))
    np.testing.assert_array_equal(rgb(load_image(cmyk))[0, 0], [255, 0, 0])
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    np.testing.assert_array_equal(rgb(load_image(f))[0, :, 0], [0, 128, 255])
    f255 = Image.fromarray(np.array([[0.0, 100.0, 300.0]], np.float32), "F")
    np.testing.assert_array_equal(rgb(load_image(f255))[0, :, 0], [0, 100, 255])


def test_exif_orientation_is_applied(tmp_path: Path, no_env_limit: None) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    arr[:, 20:] = (0, 0, 255)  # right half blue
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the left edge ends up on top
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=95)
    out = rgb(load_image(path))
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60  # top is red
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 60  # bottom is blue


# --- pixel limit and bad files ---------------------------------------------------------


def test_header_bomb_is_refused_before_decoding(tmp_path: Path, no_env_limit: None) -> None:
    before = Image.MAX_IMAGE_PIXELS
    huge = tmp_path / "bomb.png"  # 10 gigapixels claimed, a few bytes of data
    huge.write_bytes(png_bytes(100_000, 100_000, 8, 0, []))
    big = tmp_path / "big.png"  # 81 MP: under PIL's own limit, over ours
    big.write_bytes(png_bytes(9000, 9000, 8, 0, []))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        with pytest.raises(ImageError, match=r"bomb\.png.*decompression bomb"):
            load_image(huge)
        with pytest.raises(ImageError, match=r"big\.png: 9000x9000 = 81\.0 MP exceeds the 64\.0 MP limit"):
            load_image(big)
    assert before == Image.MAX_IMAGE_PIXELS  # the global is never touched


def test_pixel_limit_argument_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.delenv(ENV_MAX_PIXELS, raising=False)
    assert max_pixels_from_env() == DEFAULT_MAX_PIXELS
    with pytest.raises(ImageError, match="limit"):
        load_image(path, max_pixels=9_999)
    assert load_image(path, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageError, match="limit"):
        load_image(np.zeros((100, 100), np.uint8), max_pixels=9_999)  # arrays obey it too
    monkeypatch.setenv(ENV_MAX_PIXELS, "9_999")
    with pytest.raises(ImageError, match="limit"):
        load_image(path)
    assert load_image(path, max_pixels=None).size == (100, 100)  # explicit beats the env
    monkeypatch.setenv(ENV_MAX_PIXELS, "none")
    assert max_pixels_from_env() is None
    assert load_image(path).size == (100, 100)
    monkeypatch.setenv(ENV_MAX_PIXELS, "lots")
    with pytest.raises(UserError, match=ENV_MAX_PIXELS):
        load_image(path)
    with pytest.raises(UserError, match="max_pixels"):
        load_image(path, max_pixels=-5)


def test_bad_files_name_the_file(tmp_path: Path, no_env_limit: None) -> None:
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, "PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    text = tmp_path / "notes.png"
    text.write_text("hello, I am not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = [
        (truncated, r"cut\.png: corrupt or truncated"),
        (text, r"notes\.png: not an image"),
        (empty, r"empty\.jpg: not an image"),
        (tmp_path / "missing.png", r"missing\.png: does not exist"),
        (tmp_path, "is a folder"),
    ]
    for path, pattern in cases:
        with pytest.raises(ImageError, match=pattern):
            load_image(path)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(Image.open(truncated))  # a lazily opened PIL image as well


# --- maps and overlays -----------------------------------------------------------------


def test_resize_map() -> None:
    q = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    out = resize_map(q, (8, 4))
    assert out.shape == (4, 8) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[0, 0] < 0.3 and out[0, -1] > 0.7
    same = resize_map(q, (2, 2))
    np.testing.assert_array_equal(same, q)
    assert same is not q
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        resize_map(q * 2, (4, 4))
    with pytest.raises(ValueError, match="2-D"):
        resize_map(np.zeros(4), (4, 4))


def test_overlay_colours_mean_red_is_bad() -> None:
    image = Image.new("RGB", (6, 4), (128, 128, 128))
    q = np.ones((4, 6), np.float32)
    q[:, :3] = 0.0  # left half bad
    out = rgb(overlay_heatmap(image, q, alpha=1.0))
    assert out.shape == (4, 6, 3)
    assert out[0, 0, 0] > out[0, 0, 2] + 50  # bad: red dominates
    assert out[0, 5, 2] > out[0, 5, 0]  # good: blue dominates
    green = rgb(overlay_heatmap(image, q, alpha=1.0, colormap="rdylgn"))
    assert green[0, 5, 1] > green[0, 5, 0] and green[0, 0, 0] > green[0, 0, 1]
    np.testing.assert_array_equal(rgb(overlay_heatmap(image, q, alpha=0.0)), rgb(image))
    half = rgb(overlay_heatmap(image, q, alpha=0.5))
    assert np.all(np.abs(half - (out + 128) / 2) <= 1)
    with pytest.raises(UserError, match="colormap"):
        overlay_heatmap(image, q, colormap="jet")
    with pytest.raises(ValueError, match="alpha"):
        overlay_heatmap(image, q, alpha=1.5)


def test_overlay_legend_is_a_strip_below_the_image() -> None:
    from grefine_kit.images.heatmaps import legend_height

    image = Image.new("RGB", (320, 200), (128, 128, 128))
    q = np.linspace(0, 1, 320, dtype=np.float32)[None, :].repeat(200, axis=0)
    plain = rgb(overlay_heatmap(image, q))
    with_legend = rgb(overlay_heatmap(image, q, legend=True))
    strip = legend_height(320)
    assert with_legend.shape == (200 + strip, 320, 3)
    np.testing.assert_array_equal(with_legend[:200], plain)  # the image is not covered
    bar = with_legend[200 + strip // 2]
    coloured = np.flatnonzero(np.ptp(bar.astype(int), axis=1) > 40)  # non-grey pixels: the bar
    left, right = bar[coloured[0]], bar[coloured[-1]]
    assert left[0] > left[2] + 50 and right[2] > right[0]  # bad (red) left, good (blue) right


def test_overlay_resizes_a_smaller_map_to_the_image() -> None:
    image = Image.new("RGBA", (40, 30))
    out = overlay_heatmap(image, np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4))
    assert out.mode == "RGB" and out.size == (40, 30)


def test_colormap_is_monotonic_in_redness() -> None:
    colours = colorize_map(np.linspace(0, 1, 11)[None].astype(np.float32))[0].astype(int)
    redness = colours[:, 0] - colours[:, 2]
    assert redness[0] > 0 > redness[-1]  # 0 (bad) red, 1 (good) blue


def test_save_map_npy_roundtrip(tmp_path: Path) -> None:
    q = np.random.default_rng(3).random((5, 7)).astype(np.float64)
    path = save_map_npy(tmp_path / "sub" / "cat.map.npy", q)
    assert path == tmp_path / "sub" / "cat.map.npy" and path.is_file()
    back = np.load(path)
    assert back.dtype == np.float32 and back.shape == (5, 7)
    np.testing.assert_allclose(back, q, atol=1e-6)
    with pytest.raises(ValueError):
        save_map_npy(tmp_path / "bad.npy", q + 5)


def test_bundled_example_image_is_reproducible() -> None:
    path = REPO / "grefine_kit" / "data" / "example.png"
    assert path.stat().st_size < 200_000
    im = load_image(path)
    assert im.size == (384, 384)
    spec = importlib.util.spec_from_file_location(
        "make_example_image", REPO / "tools" / "make_example_image.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    np.testing.assert_array_equal(np.asarray(module.make_example_image()), np.asarray(im))
