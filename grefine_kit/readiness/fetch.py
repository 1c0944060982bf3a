"""``grefine fetch-weights``: download what a recipe (or one indicator) needs ahead of time.

A part that loads weights overrides ``PartBase.fetch_weights() -> list[str]``
(:mod:`grefine_kit.parts.base`): it downloads into the usual caches (Hugging Face hub cache,
open_clip's cache) and returns one line per item. Other parts are skipped. After fetching,
runs work with ``HF_HUB_OFFLINE=1``.

Before anything is imported, ``check_can_fetch`` answers in a second when a download cannot
work here (offline mode, no network), naming what is missing and what to do instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.hub import hub_reachable, offline_requested
from grefine_kit.parts.base import capabilities
from grefine_kit.parts.checks import hf_cache_dir
from grefine_kit.readiness.preflight import DEVICE, WEIGHTS, check_parts
from grefine_kit.recipes.recipe import Recipe


def check_can_fetch(parts: Mapping[str, Any]) -> None:
    """Raise one two-line ``MissingDependencyError`` when ``parts`` lack something that cannot be
    downloaded from here: weights with offline mode set or the hub unreachable, or an NLP
    package (those come from pip, not the hub). Devices do not matter for a download."""
    found = [m for m in check_parts(parts) if m.kind != DEVICE]
    weights = [m for m in found if m.kind == WEIGHTS]
    others = [m for m in found if m.kind != WEIGHTS]
    if others:
        first = others[0]
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise MissingDependencyError(f"missing {first.what} ({first.where}){more}\nfix: {first.fix}")
    if not weights:
        return
    names = ", ".join(dict.fromkeys(m.what for m in weights))
    if offline_requested():
        raise MissingDependencyError(
            f"cannot download {names}: offline mode is set (HF_HUB_OFFLINE / GREFINE_OFFLINE)\n"
            "fix: unset HF_HUB_OFFLINE, GREFINE_OFFLINE and TRANSFORMERS_OFFLINE for this command"
        )
    if not hub_reachable(timeout=1.5):
        raise MissingDependencyError(
            f"cannot download {names}: the Hugging Face hub is not reachable from this machine\n"
            f"fix: run the same command on a machine with network access and copy its cache "
            f"({hf_cache_dir()}) to the same place here"
        )


def fetch_parts_weights(parts: Iterable[tuple[str, Any]]) -> Iterator[str]:
    """Download every weight file the labelled parts need; yields progress lines."""
    for label, part in parts:
        if not capabilities(part).fetches_weights:
            yield f"{label}: no weights to fetch"
            continue
        try:
            lines = list(part.fetch_weights())
        except UserError:
            raise
        except Exception as exc:  # a download failure is the user's environment, not a bug
            raise UserError(f"{label}: download failed: {type(exc).__name__}: {str(exc)[:200]}") from None
        for line in lines:
            yield f"{label}: {line}"


def fetch_recipe_weights(recipe: Recipe) -> Iterator[str]:
    """Download every weight file the recipe's parts need; yields progress lines."""
    labelled = [
        (f"{slot.table} ({spec.part})", recipe.build_part(spec))
        for slot in recipe.roles
        if (spec := recipe.part(slot.name)) is not None
    ]
    yield from fetch_parts_weights(labelled)
    yield f"done: recipe {recipe.name!r} can now run offline (HF_HUB_OFFLINE=1)"
