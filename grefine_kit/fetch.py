"""``grefine fetch-weights``: download what a recipe needs ahead of time.

A part that loads weights overrides ``PartBase.fetch_weights() -> list[str]``
(:mod:`grefine_kit.parts`): it downloads into the usual caches (Hugging Face hub cache,
open_clip's cache) and returns one line per item. Other parts are skipped. After fetching,
runs work with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from collections.abc import Iterator

from grefine_kit.errors import UserError
from grefine_kit.parts import capabilities
from grefine_kit.recipe import Recipe
from grefine_kit.roles import ROLES


def fetch_recipe_weights(recipe: Recipe) -> Iterator[str]:
    """Download every weight file the recipe's parts need; yields progress lines."""
    for slot in ROLES:
        spec = recipe.part(slot.name)
        if spec is None:
            continue
        label = f"{slot.table} ({spec.part})"
        part = recipe.build_part(spec)
        if not capabilities(part).fetches_weights:
            yield f"{label}: no weights to fetch"
            continue
        try:
            lines = list(part.fetch_weights())
        except UserError:
            raise
        except Exception as exc:  # a download failure is the user's environment, not a bug
            raise UserError(f"{label}: download failed: {type(exc).__name__}: {exc}") from exc
        for line in lines:
            yield f"{label}: {line}"
    yield f"done: recipe {recipe.name!r} can now run offline (HF_HUB_OFFLINE=1)"
