"""Checking a request's form fields (the prompt, the overrides' JSON) and the table of error
responses every route declares (docs/serve.md lists the codes)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from grefine_serve.errors import ApiError
from grefine_serve.schemas import ErrorResponse

if TYPE_CHECKING:
    from grefine_kit.recipes.recipe import Recipe

__all__ = ["ERRORS", "MAX_PROMPT", "check_prompt", "parse_overrides", "refine_prompt"]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 409, 413, 415, 422, 429, 503)
}
MAX_PROMPT = 2000


def check_prompt(prompt: str | None) -> str | None:
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise ApiError(422, "bad_request", f"the prompt is longer than {MAX_PROMPT} characters")
    return prompt or None


def refine_prompt(recipe: Recipe, prompt: str | None) -> str:
    """The prompt a refine with ``recipe`` runs with: the checked ``prompt``; without one, ``""``
    when no part of the recipe reads prompts (``restore``), else a 422 ``prompt_required``."""
    checked = check_prompt(prompt)
    if checked:
        return checked
    if recipe.build().needs_prompt:
        reads = f"recipe {recipe.name!r} reads prompts (AQ-Map, diffusion stages): give one"
        raise ApiError(422, "prompt_required", reads)
    return ""


def parse_overrides(text: str | None) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(422, "bad_override", f"overrides must be a JSON object: {exc}") from None
