"""Benchmark datasets: images with their prompts, from a folder + prompts or a manifest CSV.

- a folder (or files / globs) plus a prompts CSV (``image,prompt``, as ``grefine refine``) or
  one prompt for every image; ids are the output stems (``cat.png`` -> ``cat``);
- a manifest CSV with columns ``id,image,prompt`` (``id`` optional: the stem), image paths
  relative to the manifest's folder; optional ``reference`` (a clean image of the same size)
  and ``region`` (a black/white mask) columns feed the full-reference metrics (``psnr``,
  ``ssim-region``...), relative like ``image``. Those files are checked when a metric reads
  them: a missing or mismatched one is that item's error (a blank cell), not the run's.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from grefine_kit.errors import UserError

__all__ = ["Dataset", "Item", "load_dataset", "read_manifest"]


@attrs.frozen
class Item:
    """One benchmark image: ``id`` (unique, the row key), its file and its prompt, and
    optionally a ``reference`` image and a ``region`` mask file (manifest columns)."""

    id: str
    path: Path
    prompt: str
    reference: Path | None = None
    region: Path | None = None


@attrs.frozen
class Dataset:
    """The images of a benchmark, in order; ``source`` says where they came from."""

    items: tuple[Item, ...]
    source: str = ""

    def __attrs_post_init__(self) -> None:
        if not self.items:
            raise UserError("the benchmark dataset has no images")
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise UserError(f"{self.source}: image id {item.id!r} appears twice")
            seen.add(item.id)

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self.items]

    @property
    def prompts(self) -> dict[str, str]:
        """``{absolute path: prompt}``: the mapping ``refine_files`` takes."""
        return {str(item.path.resolve()): item.prompt for item in self.items}


def load_dataset(
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    prompts_csv: str | os.PathLike[str] | None = None,
    prompt: str | None = None,
    manifest: str | os.PathLike[str] | None = None,
    prompts_optional: bool = False,
) -> Dataset:
    """The dataset named by exactly one of: ``manifest``; or ``inputs`` with ``prompts_csv`` or
    ``prompt`` (or neither when ``prompts_optional``: no recipe or metric of the benchmark reads
    prompts, and every image gets the empty one)."""
    from grefine_kit.runs.inputs import PromptIndex, expand_inputs, read_prompts_csv
    from grefine_kit.runs.layout import output_stems

    if manifest is not None:
        if inputs or prompts_csv is not None or prompt is not None:
            raise UserError("give a manifest, or images with --prompts/--prompt, not both")
        return read_manifest(manifest)
    if not inputs:
        raise UserError("no images: give a folder (with --prompts CSV or --prompt TEXT) or --manifest CSV")
    if prompts_csv is not None and prompt is not None:
        raise UserError("give --prompt TEXT or --prompts CSV, not both")
    if prompts_csv is None and prompt is None:
        if not prompts_optional:
            raise UserError(
                "these recipes or metrics read prompts: give exactly one of --prompt TEXT or --prompts CSV"
                " with the images"
            )
        prompt = ""
    paths = expand_inputs(inputs)
    index = PromptIndex(read_prompts_csv(prompts_csv)) if prompts_csv is not None else None
    items = []
    missing = []
    for path, stem in zip(paths, output_stems(paths), strict=True):
        text = index.get(path) if index is not None else prompt
        if text is None:
            missing.append(path.name)
            continue
        items.append(Item(stem, path, text))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"{prompts_csv}: no prompt for {shown}")
    return Dataset(tuple(items), source=", ".join(os.fspath(i) for i in inputs))


def read_manifest(path: str | os.PathLike[str]) -> Dataset:
    """A manifest CSV ``id,image,prompt`` (``id`` optional); UserError naming the line otherwise."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            header = [h.strip().lower() for h in (rows[0].keys() if rows else [])]
    except FileNotFoundError as exc:
        raise UserError(f"{p}: manifest not found") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{p}: cannot read the manifest ({exc})") from exc
    if not rows:
        raise UserError(f"{p}: the manifest has no rows (expected columns id,image,prompt)")
    if "image" not in header or "prompt" not in header:
        raise UserError(f"{p}: the manifest needs columns image and prompt (id optional); found {header}")
    items = []
    for line, raw in enumerate(rows, start=2):
        row: Mapping[str, str] = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        image, text = row.get("image", ""), row.get("prompt", "")
        if not image or not text:
            raise UserError(f"{p}, line {line}: empty image or prompt")
        file = Path(image) if Path(image).is_absolute() else p.parent / image
        if not file.is_file():
            raise UserError(f"{p}, line {line}: image not found: {file}")
        ident = row.get("id") or Path(image).stem
        if any(c in ident for c in '/\\:*?"<>|') or ident in (".", ".."):
            raise UserError(f"{p}, line {line}: id {ident!r} must be usable as a file name")
        items.append(
            Item(ident, file, text, _side_file(p, row.get("reference")), _side_file(p, row.get("region")))
        )
    return Dataset(tuple(items), source=str(p))


def _side_file(manifest: Path, cell: str | None) -> Path | None:
    """A ``reference`` / ``region`` cell: None when blank, else relative to the manifest."""
    if not cell:
        return None
    path = Path(cell)
    return path if path.is_absolute() else manifest.parent / path
