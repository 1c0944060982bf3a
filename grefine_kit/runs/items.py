"""The unit of work every runner shares: an :class:`Item` in, a record out.

An item is one image with its prompt (and optional seed, reference image and region mask). Its
``id`` is the path relative to the run's input root (:func:`item_ids`), so two ``cat.png``
files in different folders never collide; ids are display-safe text even for file names that
are not valid UTF-8.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

__all__ = ["Item", "display_path", "input_root", "item_ids", "make_items", "safe_text"]


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as printable text: bytes that are not UTF-8 become ``\\xNN`` escapes (never a
    ``UnicodeEncodeError`` in a CSV, a JSON line or a terminal)."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def safe_text(text: str) -> str:
    """``text`` with lone surrogates (undecodable file-name bytes) turned into ``\\xNN`` /
    ``\\udcNN`` escapes, so it can always be written as UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


@attrs.frozen
class Item:
    """One unit of work.

    Attributes:
        id: stable, unique within a run (default: the path relative to the input root, ``/``
            separated); keys the record log and derives the seed.
        image: the input file.
        prompt: the text prompt (None: the indicator needs none, or the prompts CSV has no row).
        seed: a base seed for this item overriding the recipe's (None: the recipe's).
        reference: a clean reference image for full-reference metrics (None: none given).
        region: a region mask file, white = inside (None: none given).
        region_prompts: this item's own region prompts, ``[SEP]``-separated (None: the
            recipe's ``refiner.region_prompts``; see :mod:`grefine_kit.refiner.region_rules`).
    """

    id: str
    image: Path
    prompt: str | None = None
    seed: int | None = None
    reference: Path | None = None
    region: Path | None = None
    region_prompts: str | None = None


def input_root(paths: Sequence[Path]) -> Path:
    """The deepest folder holding every input (their common ancestor, absolute)."""
    if not paths:
        raise ValueError("no paths")
    parents = [os.path.abspath(os.fspath(p.parent)) for p in paths]
    return Path(os.path.commonpath(parents))


def item_ids(paths: Sequence[Path], root: Path | None = None) -> list[str]:
    """Item ids of ``paths``: each path relative to ``root`` (default :func:`input_root`), with
    ``/`` separators and display-safe text. Distinct files get distinct ids."""
    if not paths:
        return []
    base = os.path.abspath(os.fspath(root if root is not None else input_root(paths)))
    out: list[str] = []
    for p in paths:
        full = os.path.abspath(os.fspath(p))
        rel = os.path.relpath(full, base)
        out.append(display_path(rel).replace(os.sep, "/"))
    return out


def make_items(paths: Sequence[Path], prompts: Mapping[str, str] | str | None) -> list[Item]:
    """Items for ``paths``: ids from :func:`item_ids`, prompts from one string or a prompts
    mapping (``read_prompts_csv``, matched by ``PromptIndex``; an image without a row gets None)."""
    from grefine_kit.runs.inputs import PromptIndex

    ids = item_ids(list(paths))
    if isinstance(prompts, Mapping):
        index = PromptIndex(prompts)
        return [Item(id=i, image=p, prompt=index.get(p)) for i, p in zip(ids, paths, strict=True)]
    return [Item(id=i, image=p, prompt=prompts) for i, p in zip(ids, paths, strict=True)]
