"""Command-line overrides of recipe values: ``--set KEY=VALUE``.

``KEY`` is a dotted recipe path (``stage1.guidance_scale``, ``indicators.perceptual.model``,
``refiner.iterations``, ``seed``); ``VALUE`` is read as a TOML value (``5``, ``0.3``, ``true``,
``"text"``, ``[1, 2]``) and, when it is not valid TOML, taken as a string (so
``--set stage1.negative_prompt=blurry`` needs no quotes). The overridden recipe is validated
exactly like a TOML file with those values written in: unknown keys, wrong types and bad values
are a ``UserError`` naming the key. Overrides are kept on the recipe (``Recipe.overrides``) and
written to every report under ``recipe.overrides``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import UserError
from grefine_kit.parts.roles import ROLES, STAGE_ROLES

if TYPE_CHECKING:
    from grefine_kit.recipes.recipe import PartSpec, Recipe
    from grefine_kit.types import JSONValue

__all__ = ["apply_overrides", "parse_assignment", "parse_value", "shortcut_overrides"]


def _part_tables() -> tuple[str, ...]:
    """Recipe tables whose keys are part options (the table must exist in the recipe)."""

    return tuple(slot.table for slot in ROLES)


def parse_value(text: str) -> JSONValue:
    """``text`` as a TOML value; not valid TOML -> the text itself (a string)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(item: str) -> tuple[str, Any]:
    """``"stage1.guidance_scale=5"`` -> ``("stage1.guidance_scale", 5)``."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set expects KEY=VALUE (e.g. stage1.guidance_scale=5); got {item!r}")
    return key, parse_value(value.strip())


def shortcut_overrides(
    *,
    steps: int | None = None,
    strength: float | None = None,
    negative_prompt: str | None = None,
    guidance_scale: float | None = None,
    stages: Iterable[str] = STAGE_ROLES,
) -> list[tuple[str, Any]]:
    """The ``--set`` pairs the refine shortcuts stand for (``stages``: the recipe's stages).

    ``--steps N`` is ``refiner.iterations`` (the schedule both stages share); ``--strength S``
    fixes stage 1's strength (rule ``fixed``, min = max = S); ``--negative-prompt`` and
    ``--guidance-scale`` go to every stage.
    """
    pairs: list[tuple[str, Any]] = []
    if steps is not None:
        pairs.append(("refiner.iterations", steps))
    if strength is not None:
        pairs += [
            ("refiner.strength_rule", "fixed"),
            ("refiner.strength_min", strength),
            ("refiner.strength_max", strength),
        ]
    for stage in stages:
        if negative_prompt is not None:
            pairs.append((f"{stage}.negative_prompt", negative_prompt))
        if guidance_scale is not None:
            pairs.append((f"{stage}.guidance_scale", guidance_scale))
    return pairs


def _set(data: dict[str, Any], key: str, value: Any, recipe_name: str) -> None:
    parts = key.split(".")
    table_key = next((t for t in _part_tables() if key.startswith(t + ".")), None)
    if table_key is not None:
        head = table_key.split(".")
        node: Any = data
        for name in head:
            node = node.get(name) if isinstance(node, Mapping) else None
        if not isinstance(node, dict):
            raise UserError(f"--set {key}: recipe {recipe_name!r} has no [{table_key}] table")
        parts = parts[len(head) :]
    else:
        node = data
    for name in parts[:-1]:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: {name!r} is not a table in recipe {recipe_name!r}")
        node = child
    node[parts[-1]] = value


def apply_overrides(recipe: Recipe, pairs: Sequence[tuple[str, Any]]) -> Recipe:
    """A validated copy of ``recipe`` with ``pairs`` applied; errors name the key."""
    if not pairs:
        return recipe
    from grefine_kit.recipes.recipe import Recipe

    data = _deep_copy(recipe.to_dict())
    for key, value in pairs:
        _set(data, key, value, recipe.name)
    source = f"{recipe.source} with --set"
    try:
        new = Recipe.from_dict(data, source=source)
    except UserError as exc:
        raise UserError(_name_key(str(exc).removeprefix(f"{source}: "), pairs)) from None
    # option values are checked by the parts themselves: build each touched one now
    for key, value in pairs:
        spec = _spec_for(new, key)
        try:
            if spec is not None:
                new.build_part(spec)
            elif key.split(".")[0] == "refiner":
                new.build()
        except UserError as exc:
            message = str(exc).removeprefix(f"{source}: ")
            raise UserError(f"--set {key}={value!r}: {message}") from None
    overrides = {**dict(recipe.overrides), **dict(pairs)}
    return attrs.evolve(new, overrides=overrides, source=recipe.source)


def _name_key(message: str, pairs: Sequence[tuple[str, Any]]) -> str:
    for key, _ in pairs:
        last = key.split(".")[-1]
        if f"'{last}'" in message or message.startswith((key, key.split(".")[0] + ":")):
            return f"--set {key}: {message}"
    return f"--set: {message}"


def _spec_for(recipe: Recipe, key: str) -> PartSpec | None:
    """The spec of the part whose table ``key`` is in (a recipe's extra roles included)."""
    for slot in recipe.roles:
        if key.startswith(slot.table + "."):
            return recipe.part(slot.name)
    return None


def _deep_copy(table: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a recipe table that ``_set`` may change: tables become dicts and lists new lists."""
    return {k: _copy_value(v) for k, v in table.items()}


def _copy_value(value: object) -> object:
    if isinstance(value, Mapping):
        return _deep_copy(value)
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return value
