"""Which recipes requests may use, request overrides, and the models loaded once.

A request names a recipe by name only: a registered recipe the operator allows
(``--recipes``) or one of the operator's own TOML files (``--recipe-file``, read with the CLI's
rules). Overrides are the CLI's ``--set`` pairs given as a JSON object and validated by the
same code (``grefine_kit.recipes.overrides.apply_overrides``), except that keys choosing what to load or
where from (``part``, ``model``, ``weights``, ``device``, paths, ...) are refused: a request
can never name a server path, a URL or a plugin.

:class:`ModelStore` builds each (recipe, overrides, device) once and shares the built Refiner
(its indicators and stages hold the loaded models) between every request; a lock per entry
makes the jobs using it take turns (diffusers schedulers keep per-call state).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.parts.registry import get_registry, suggest
from grefine_kit.recipes.recipe import Recipe
from grefine_serve.errors import ApiError
from grefine_serve.settings import ServeSettings

__all__ = ["Catalog", "Loaded", "ModelStore", "check_overrides"]

MAX_OVERRIDES = 32
#: option names that choose what is loaded, from where, or on which device: never from a request
FORBIDDEN_KEYS = frozenset(
    {
        "part",
        "model",
        "weights",
        "device",
        "dtype",
        "parser",
        "config",
        "checkpoint",
        "path",
        "model_dir",
        "cache_dir",
        "prompt_checkpoints",
        "revision",
        "variant",
        "arch",
        "processor",
        "templates",
        "location",
        "source",
        "cpu_offload",
        "lang",
        "name",
        "description",
    }
)
_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def _looks_like_location(text: str) -> bool:
    lowered = text.strip().lower()
    return (
        "://" in lowered
        or "\\" in lowered
        or lowered.startswith(("/", "~", "./", "../", "hf-hub:", "file:", "local-dir:"))
    )


def _check_value(key: str, value: Any, depth: int = 0) -> None:
    if isinstance(value, bool) or value is None:
        if value is None:
            raise ApiError(422, "bad_override", f"override {key}: null is not a recipe value")
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(422, "bad_override", f"override {key}: {value!r} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > 1000:
            raise ApiError(422, "bad_override", f"override {key}: text longer than 1000 characters")
        if _looks_like_location(value):
            raise ApiError(422, "bad_override", f"override {key}: paths and URLs are not accepted")
        return
    if isinstance(value, list) and depth == 0 and len(value) <= 64:
        for item in value:
            _check_value(key, item, depth + 1)
        return
    raise ApiError(422, "bad_override", f"override {key}: values are numbers, booleans, text or short lists")


def check_overrides(overrides: Any) -> list[tuple[str, Any]]:
    """The ``(key, value)`` pairs of a request's overrides object, or ``ApiError`` 422."""
    if overrides is None:
        return []
    if not isinstance(overrides, Mapping):
        raise ApiError(
            422, "bad_override", 'overrides must be a JSON object such as {"refiner.iterations": 4}'
        )
    if len(overrides) > MAX_OVERRIDES:
        raise ApiError(422, "bad_override", f"at most {MAX_OVERRIDES} overrides per request")
    pairs = []
    for key, value in overrides.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ApiError(422, "bad_override", f"override key {key!r} is not a dotted recipe key")
        last = key.split(".")[-1]
        if last in FORBIDDEN_KEYS or any(w in last for w in ("path", "dir", "file", "url")):
            raise ApiError(
                422,
                "forbidden_override",
                f"override {key}: what is loaded, from where and on which device is the server's "
                "choice, not a request's",
            )
        _check_value(key, value)
        pairs.append((key, value))
    return pairs


class Catalog:
    """The recipes of this server, by name (module doc)."""

    def __init__(self, settings: ServeSettings) -> None:
        registry = get_registry()
        registered = registry.names("recipe")
        allowed = list(settings.recipes) if settings.recipes is not None else registered
        for name in allowed:
            if name not in registered:
                raise UserError(
                    f"--recipes: unknown recipe {name!r}{suggest(name, registered)}; known: "
                    f"{', '.join(registered)}"
                )
        self._recipes: dict[str, Recipe] = {name: Recipe.load(name) for name in allowed}
        for path in settings.recipe_files:
            recipe = Recipe.load(Path(path))  # the CLI's rules: TOML, paths relative to the file
            if recipe.name in self._recipes:
                raise UserError(f"--recipe-file {path}: a recipe named {recipe.name!r} is already served")
            self._recipes[recipe.name] = recipe
        if not self._recipes:
            raise UserError("no recipe to serve: give --recipes NAME,... or --recipe-file FILE")
        default = settings.default_recipe
        if default is not None and default not in self._recipes:
            raise UserError(f"--default-recipe {default!r} is not served; served: {', '.join(self.names)}")
        self.default = default or ("g-refine" if "g-refine" in self._recipes else self.names[0])
        self.device = settings.device

    @property
    def names(self) -> list[str]:
        return sorted(self._recipes)

    def base(self, name: str) -> Recipe:
        recipe = self._recipes.get(name)
        if recipe is None:
            raise ApiError(
                404,
                "unknown_recipe",
                f"unknown recipe {name!r}{suggest(name, self._recipes)}; served: {', '.join(self.names)}",
            )
        return recipe

    def resolve(self, name: str | None, overrides: Any = None) -> Recipe:
        """The recipe ``name`` (default: the server's) with ``overrides`` and the server's device."""
        recipe = self.base(name or self.default)
        pairs = check_overrides(overrides)
        if pairs:
            from grefine_kit.recipes.overrides import apply_overrides

            try:
                recipe = apply_overrides(recipe, pairs)
            except UserError as exc:
                raise ApiError(422, "bad_override", str(exc).replace("--set ", "override ")) from None
        return recipe.with_runtime(device=self.device)


@attrs.define(eq=False)
class Loaded:
    """A built Refiner shared by every request of one (recipe, overrides, device)."""

    key: str
    recipe: Recipe
    refiner: Any
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    jobs: int = 0
    seconds_to_build: float = 0.0


class ModelStore:
    """Builds each recipe once per process; ``builds`` counts builds by recipe name."""

    def __init__(self) -> None:
        self._entries: dict[str, Loaded] = {}
        self._building: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.builds: dict[str, int] = {}

    def get(self, recipe: Recipe) -> Loaded:
        """The shared entry for ``recipe`` (built now when new; ``ApiError`` 503 when this machine
        lacks its weights or libraries)."""
        key = recipe.hash
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return entry
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one build per key, however many requests wait for it
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None:
                return entry
            entry = self._build(key, recipe)
            with self._lock:
                self._entries[key] = entry
                self.builds[recipe.name] = self.builds.get(recipe.name, 0) + 1
            return entry

    def _build(self, key: str, recipe: Recipe) -> Loaded:
        from grefine_kit.readiness.preflight import ensure_ready, fetch_command, recipe_parts

        started = time.perf_counter()
        try:
            ensure_ready(recipe_parts(recipe), fetch_command=fetch_command(recipe=recipe.name))
            refiner = recipe.build()
        except MissingDependencyError as exc:
            raise ApiError(503, "missing_dependency", str(exc)) from None
        except UserError as exc:
            raise ApiError(422, "bad_recipe", str(exc)) from None
        return Loaded(key, recipe, refiner, seconds_to_build=time.perf_counter() - started)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "recipe": e.recipe.name,
                    "key": e.key,
                    "jobs": e.jobs,
                    "build_seconds": round(e.seconds_to_build, 3),
                }
                for e in self._entries.values()
            ]
