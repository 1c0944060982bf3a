"""Setup checks the commands run before any heavy import (see :mod:`grefine_kit.readiness.preflight`).

Each returns quietly or raises one ``UserError`` (exit 2): a problem that would fail every image
the same way is reported once, up front, not as N per-image errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grefine_kit.errors import UserError
from grefine_kit.parts.base import as_part
from grefine_kit.readiness.preflight import ensure_ready, fetch_command, recipe_parts


def check_indicator_ready(
    indicator: Any, name: str, *, recipe: str | None, prompts: Mapping[str, str] | str | None
) -> None:
    """``indicator`` can run here (weights, parser model, device) and has the prompts it needs."""
    if as_part(indicator).needs_prompt and prompts is None:
        raise UserError(f"{name} needs a prompt per image: give --prompt TEXT or --prompts CSV")
    ensure_ready({name: indicator}, fetch_command=fetch_command(recipe=recipe, indicator=name))


def check_recipe_ready(recipe: Any, recipe_arg: str) -> None:
    """Every part of ``recipe`` can run here; ``recipe_arg`` is how the user named the recipe."""
    ensure_ready(recipe_parts(recipe), fetch_command=fetch_command(recipe=recipe_arg))
