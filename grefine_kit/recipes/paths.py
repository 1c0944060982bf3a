"""Relative file paths in a recipe resolve against the recipe file's folder.

A recipe that says ``prompt_checkpoints = ["prompts/overall.pth", ...]`` or
``weights = "./clip.safetensors"`` means files next to it, wherever the command runs from (as
``pyproject.toml`` or a Dockerfile would). ``resolve_path_options`` rewrites such values to
absolute paths once, when a recipe is loaded from a file; built-in recipes and hub ids are left
alone. A value counts as a path when it starts with ``./``, ``../`` or ``~``, ends with a
checkpoint suffix, or has a folder part (``org/model``) and names something that exists next to
the recipe; a hub id such as ``org/model`` is therefore untouched unless a folder of that name
sits beside the recipe. A bare name (``tiny``, ``random``, ``rules``) is never a path, whatever
sits beside the recipe: write ``./tiny`` for a folder of that name.

``looks_like_recipe_path`` answers the question one step earlier: whether ``--recipe`` names a
recipe file or a registered recipe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grefine_kit.types import JSONValue

__all__ = ["PATH_OPTIONS", "looks_like_recipe_path", "resolve_path_options"]

#: part options that may hold a file or folder path
PATH_OPTIONS = ("model", "weights", "config", "prompt_checkpoints", "model_dir")
_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".json", ".toml")


def _resolve(value: str, base: Path, *, force: bool = False) -> str:
    if value.startswith("local-dir:"):
        return "local-dir:" + _resolve(value[len("local-dir:") :], base, force=True)
    if value.startswith("~"):
        return str(Path(value).expanduser())
    if os.path.isabs(value) or not value:
        return value
    looks_like_path = force or value.startswith(("./", "../")) or value.lower().endswith(_SUFFIXES)
    beside = "/" in value.replace("\\", "/") and (base / value).exists()
    if looks_like_path or beside:
        return str((base / value).resolve())
    return value


def _resolve_option(key: str, value: Any, base: Path) -> JSONValue:
    if key == "prompt_checkpoints" and isinstance(value, (list, tuple)):
        return [_resolve(v, base, force=True) if isinstance(v, str) else v for v in value]
    if key == "prompt_checkpoints":
        return value  # a bundled set's name ("g-refine") or "zero-shot", never a path
    if isinstance(value, str):
        return _resolve(value, base)
    return value


def resolve_path_options(options: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """A copy of a part's ``options`` whose relative path options (:data:`PATH_OPTIONS`, and
    those inside ``parser_options``) are absolute, taken from ``base`` (the recipe file's folder)."""
    out = {}
    for key, value in options.items():
        if key in PATH_OPTIONS:
            out[key] = _resolve_option(key, value, base)
        elif key == "parser_options" and isinstance(value, Mapping):
            out[key] = resolve_path_options(value, base)
        else:
            out[key] = value
    return out


def looks_like_recipe_path(path_or_name: str | os.PathLike[str]) -> bool:
    """Whether ``--recipe`` names a file (see :meth:`Recipe.load`) rather than a registered
    recipe; never looks at the disk, so a file in the working folder cannot shadow a name."""
    if isinstance(path_or_name, os.PathLike):
        return True
    text = str(path_or_name)
    return (
        text.lower().endswith(".toml")
        or "/" in text
        or os.sep in text
        or text.startswith((".", "~"))
        or os.path.isabs(text)
    )
