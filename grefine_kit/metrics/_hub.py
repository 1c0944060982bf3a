"""Getting metric weights: hub files and folders with the indicators' offline rules.

The local Hugging Face cache is tried first (instant, works offline); the network only when
offline mode is not requested (``GREFINE_OFFLINE`` / ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)
and the hub resolves. A failure is one ``MissingDependencyError`` saying how to get the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from grefine_kit.errors import MissingDependencyError
from grefine_kit.hub import cache_then_hub

__all__ = ["hub_file", "is_local", "split_hub_file", "with_offline_rules"]

T = TypeVar("T")


def is_local(value: str) -> bool:
    """True for an existing path or anything spelled like one (``./x``, ``/x``, ``~/x``)."""
    return os.path.exists(value) or value.startswith((".", "/", "~"))


def split_hub_file(value: str) -> tuple[str, str]:
    """``"hf-hub:org/repo/path/file.pt"`` or ``"org/repo/file.pt"`` -> ``("org/repo", "path/file.pt")``."""
    spec = value.removeprefix("hf-hub:")
    parts = spec.split("/")
    if len(parts) < 3 or not all(parts):
        raise ValueError(f"expected a local file or a hub file 'org/repo/filename'; got {value!r}")
    return "/".join(parts[:2]), "/".join(parts[2:])


def with_offline_rules(what: str, load: Callable[[bool], T], hint: str) -> T:
    """Call ``load(cache_only)`` the way :func:`grefine_kit.hub.cache_then_hub` does: first from
    the cache only, then (if allowed) from the hub. ``what`` names the weights in the error;
    ``hint`` says how to get them."""

    def missing(error: BaseException) -> MissingDependencyError:
        return MissingDependencyError(
            f"{what} is not available on this machine ({type(error).__name__}: {str(error)[:200]}). {hint}"
        )

    return cache_then_hub(load, missing)


def hub_file(value: str, what: str) -> str:
    """A local path for ``value`` (a path is returned as is; a hub file is fetched or found cached)."""
    if is_local(value):
        return os.path.expanduser(value)
    repo, filename = split_hub_file(value)

    def load(cache_only: bool) -> str:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(repo, filename, local_files_only=cache_only)

    hint = (
        "Run once where the Hugging Face hub is reachable (it goes to the hub cache; copy that over), "
        "or give the option a local file path."
    )
    return str(with_offline_rules(f"{what} {value!r}", load, hint))
