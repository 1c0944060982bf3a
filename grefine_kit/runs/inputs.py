"""Turning command-line PATH arguments into image files, and prompts CSVs into prompts.

Rules (docs/scoring.md):

- A file argument is taken as is, whatever its extension (you named it; the loader will say
  if it is not an image). Folders and globs contribute image files only
  (:data:`IMAGE_EXTENSIONS`, any case), skipping hidden names (``.*``).
- A folder is read non-recursively unless ``recursive=True``. A glob may use ``**``.
- Order: arguments in the order given; inside a folder or glob, sorted by path. A file met
  twice (same resolved path) is kept once, at its first place.
- Arguments that do not exist (or globs that match nothing) are reported together in one
  UserError; so is an argument list that yields no image at all.
"""

from __future__ import annotations

import csv
import errno
import glob
import io
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from grefine_kit.errors import UserError

__all__ = ["IMAGE_EXTENSIONS", "PromptIndex", "expand_inputs", "read_prompts_csv"]

IMAGE_EXTENSIONS: Final = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif", ".ppm", ".pgm"}
)

IMAGE_COLUMNS: Final = ("image", "file", "filename", "path")
"""Accepted names of the image column of a prompts CSV (case-insensitive), first match wins."""
PROMPT_COLUMN: Final = "prompt"
MAX_PROMPTS_BYTES: Final = 64 * 2**20
"""The largest prompts CSV read (64 MiB: about a million long prompts)."""

_GLOB_CHARS = frozenset("*?[")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _sorted(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: p.as_posix())


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    if not recursive:
        return _sorted(p for p in folder.iterdir() if p.is_file() and _is_image(p))
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # skip .git, .cache, ...
        found.extend(Path(root, f) for f in files if _is_image(Path(f)))
    return _sorted(p for p in found if p.is_file())


def _odd_file(path: Path) -> str | None:
    """Why ``path`` exists but cannot be an input (a FIFO, a device, a symlink loop), or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop (a link that leads back to itself)"
        return None  # missing: reported with the others
    if stat.S_ISFIFO(st.st_mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return "a device or socket"
    return None


def expand_inputs(args: Sequence[str | os.PathLike[str]], *, recursive: bool = False) -> list[Path]:
    """Expand files, folders and globs into a deterministic list of image files.

    Raises UserError listing every argument that does not exist or matches nothing, or when
    no image is found at all.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    missing: list[str] = []
    empty: list[str] = []

    def add(paths: Iterable[Path]) -> None:
        for p in paths:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)

    for arg in args:
        text = os.fspath(arg)
        path = Path(text)
        odd = _odd_file(path)
        if odd:
            raise UserError(f"{text}: {odd}, not an image file")
        if path.is_file():
            add([path])
        elif path.is_dir():
            found = _folder_images(path, recursive)
            if not found:
                empty.append(text)
            add(found)
        elif _GLOB_CHARS & set(text):
            matches = [Path(m) for m in glob.glob(text, recursive=True)]
            found = _sorted(m for m in matches if m.is_file() and _is_image(m))
            if not found:
                missing.append(f"{text} (no image matches)")
            add(found)
        else:
            missing.append(text)
    if missing:
        raise UserError(f"not found: {', '.join(missing)}")
    if not out:
        where = f" in {', '.join(empty)}" if empty else ""
        raise UserError(f"no image files found{where} (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return out


# --- prompts CSV -----------------------------------------------------------------------


def read_prompts_csv(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a CSV with an image column (``image``, ``file``, ``filename`` or ``path``) and a
    ``prompt`` column into ``{image value: prompt}``. Other columns are ignored.

    The image value is kept as written (backslashes turned into ``/``); match it to files
    with :class:`PromptIndex`. UTF-8 (a BOM is fine). Raises UserError naming the file and
    line for a missing file or column, an empty image or prompt cell, or one image given two
    different prompts.
    """
    p = Path(path)
    try:
        odd = _odd_file(p)
        if odd:
            raise UserError(f"{p}: {odd}, not a prompts CSV")
        with p.open("rb") as raw:
            data = raw.read(MAX_PROMPTS_BYTES + 1)  # /dev/zero or a huge file must not eat memory
        if len(data) > MAX_PROMPTS_BYTES:
            raise UserError(f"{p}: larger than {MAX_PROMPTS_BYTES // 2**20} MiB; not a prompts CSV")
        text = data.decode("utf-8-sig")
        return _parse_prompts(csv.reader(io.StringIO(text, newline="")), p)
    except FileNotFoundError as e:
        raise UserError(f"{p}: prompts CSV not found") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text ({e.reason})") from e
    except csv.Error as e:
        raise UserError(f"{p}: not a valid CSV ({e})") from e
    except IsADirectoryError as e:
        raise UserError(f"{p}: a folder, not a prompts CSV") from e
    except OSError as e:
        raise UserError(f"{p}: cannot read ({e.strerror or e})") from e


def _parse_prompts(reader: Iterable[list[str]], p: Path) -> dict[str, str]:
    rows = iter(reader)
    header = next(rows, None)
    if header is None:
        raise UserError(f"{p}: the prompts CSV is empty (expected a header: image,prompt)")
    names = [h.strip().lower() for h in header]
    image_col = next((names.index(c) for c in IMAGE_COLUMNS if c in names), None)
    prompt_col = names.index(PROMPT_COLUMN) if PROMPT_COLUMN in names else None
    if image_col is None or prompt_col is None:
        need = [] if image_col is not None else [" or ".join(IMAGE_COLUMNS)]
        need += [] if prompt_col is not None else [PROMPT_COLUMN]
        raise UserError(
            f"{p}: missing column {' and '.join(need)}; found columns: {', '.join(header) or 'none'}"
        )
    prompts: dict[str, str] = {}
    where: dict[str, int] = {}
    for row in rows:
        line = getattr(reader, "line_num", 0)
        if not any(cell.strip() for cell in row):
            continue  # blank lines are harmless
        if len(row) <= max(image_col, prompt_col):
            raise UserError(f"{p}, line {line}: expected at least {max(image_col, prompt_col) + 1} fields")
        image = row[image_col].strip().replace("\\", "/")
        prompt = row[prompt_col].strip()
        if not image:
            raise UserError(f"{p}, line {line}: empty {header[image_col]!r} cell")
        if not prompt:
            raise UserError(f"{p}, line {line}: empty prompt for {image!r}")
        if image in prompts and prompts[image] != prompt:
            raise UserError(
                f"{p}, line {line}: {image!r} already has a different prompt (line {where[image]})"
            )
        prompts[image] = prompt
        where.setdefault(image, line)
    if not prompts:
        raise UserError(f"{p}: the prompts CSV has a header but no rows")
    return prompts


def _as_dict(m: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in m.items()}


@attrs.frozen
class PromptIndex:
    """Finds the prompt of an image file among the keys of a prompts mapping.

    Matching rule: a key matches a file when the key's path components are the last
    components of the file's absolute path (``cat.png`` matches ``/data/a/cat.png``;
    ``a/cat.png`` matches it too and wins, as the longer match). An absolute key must equal
    the file's absolute path. A key without an image extension also matches by stem
    (``cat`` matches ``cat.png``) when no path key matched. Matching is case-sensitive.
    """

    prompts: Mapping[str, str] = attrs.field(converter=_as_dict)
    _by_parts: dict[tuple[str, ...], str] = attrs.field(init=False)
    _by_stem: dict[str, str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        by_parts: dict[tuple[str, ...], str] = {}
        by_stem: dict[str, str] = {}
        for key, prompt in self.prompts.items():
            parts = tuple(x for x in Path(key.replace("\\", "/")).parts if x not in (".", ""))
            if not parts:
                continue
            by_parts[parts] = prompt
            if len(parts) == 1 and Path(parts[0]).suffix.lower() not in IMAGE_EXTENSIONS:
                by_stem[parts[0]] = prompt
        object.__setattr__(self, "_by_parts", by_parts)
        object.__setattr__(self, "_by_stem", by_stem)

    def get(self, path: str | os.PathLike[str]) -> str | None:
        """The prompt for ``path``, or None when no key matches."""
        full = Path(path).resolve().parts
        for k in range(len(full), 0, -1):  # longest suffix first; k == len(full) is absolute
            prompt = self._by_parts.get(full[-k:])
            if prompt is not None:
                return prompt
        return self._by_stem.get(Path(path).stem)


def make_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create the output folder (and parents); a failure is a one-line UserError."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from exc
    return out
