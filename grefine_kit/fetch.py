"""``grefine fetch-weights``: download what a recipe needs ahead of time.

Each part that loads weights implements ``fetch_weights() -> list[str]``: it downloads into
the usual caches (Hugging Face hub cache, open_clip's cache) and returns one line per item.
Parts without weights are skipped. After fetching, runs work with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from grefine_kit.errors import UserError
from grefine_kit.recipe import Recipe


def _parts(recipe: Recipe) -> Iterator[tuple[str, Any]]:
    for role, spec in (
        ("indicators.perceptual", recipe.perceptual),
        ("indicators.alignment", recipe.alignment),
        ("stage1", recipe.stage1),
        ("stage2", recipe.stage2),
    ):
        if spec is not None:
            yield f"{role} ({spec.part})", recipe.build_part(spec)


def fetch_recipe_weights(recipe: Recipe) -> Iterator[str]:
    """Download every weight file the recipe's parts need; yields progress lines."""
    for label, part in _parts(recipe):
        fetch = getattr(part, "fetch_weights", None)
        if not callable(fetch):
            yield f"{label}: no weights to fetch"
            continue
        try:
            lines = list(fetch())
        except UserError:
            raise
        except Exception as exc:  # a download failure is the user's environment, not a bug
            raise UserError(f"{label}: download failed: {type(exc).__name__}: {exc}") from exc
        for line in lines:
            yield f"{label}: {line}"
    yield f"done: recipe {recipe.name!r} can now run offline (HF_HUB_OFFLINE=1)"
