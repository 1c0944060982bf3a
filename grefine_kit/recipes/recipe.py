"""Recipes: TOML files that assemble G-Refine (or a variant) from registered parts.

A recipe names parts by registry key only. It never holds an import path and can never make
the toolkit import or run code: ``part = "pq-map"`` is looked up in the registry, and every
other key of a part's table is passed as a keyword option to that part, which validates it.

Layout::

    name = "g-refine"
    description = "The paper's G-Refine."
    seed = 0

    [indicators.perceptual]      # optional
    part = "pq-map"
    model = "ViT-B-16-quickgelu"

    [indicators.alignment]       # optional
    part = "aq-map"

    [combiner]                   # required with stage1 (it writes the mask stage 1 reads)
    part = "g-refine"

    [regions]                    # optional: refine each defect on its own crop
    part = "components"

    [stage1]                     # optional: masked refinement
    part = "inpaint"

    [stage2]                     # optional: mild global pass
    part = "img2img"

    [refiner]                    # RefinerOptions (iterations, strength rule, ...)
    iterations = 20

The tables and their part kinds come from the role table (``grefine_kit.parts.roles``). A recipe
may add roles of its own: ``[indicators.<name>]`` (one more map, state entry ``maps.<name>``) and
``[stages.<name>]`` (one more stage after stage 2, in written order; masked or global as its
part's ``role`` says). :attr:`Recipe.roles` lists the recipe's roles in run order; everything
that walks a recipe's parts (dump, build, fetch, preflight, the runners) iterates over it. The
blocks the parts become are checked like the Refiner checks them (every read written earlier).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import RecipeError, UserError
from grefine_kit.parts.registry import Registry, check_options, error_text, get_registry, suggest
from grefine_kit.parts.roles import (
    INDICATORS,
    ROLES,
    STAGES,
    Role,
    extra_stage_role,
    in_run_order,
    indicator_role,
    role_for,
)
from grefine_kit.recipes.paths import looks_like_recipe_path, resolve_path_options
from grefine_kit.recipes.toml_writer import dump_toml
from grefine_kit.refiner.options import RefinerOptions, check_role_names

if TYPE_CHECKING:
    from grefine_kit.refiner.refiner import Refiner

__all__ = ["PartSpec", "Recipe", "dump_toml"]

#: top-level keys: the scalars, then each role table's first key (``indicators``, ``combiner``, ...)
TOP_LEVEL_KEYS = ("name", "description", "seed", *dict.fromkeys(r.path[0] for r in ROLES), STAGES, "refiner")
#: the grouping tables whose keys name roles: built-in or the recipe's own
_GROUPS = {INDICATORS: indicator_role, STAGES: extra_stage_role}
#: options the CLI's --device / --dtype override on every part that accepts them
RUNTIME_OPTIONS = ("device", "dtype")


@attrs.frozen
class PartSpec:
    """A part named by registry key plus its options (the table's other keys)."""

    kind: str
    part: str
    options: Mapping[str, Any] = attrs.field(factory=dict)

    def to_table(self) -> dict[str, Any]:
        return {"part": self.part, **self.options}


def _parts(value: Mapping[str, PartSpec]) -> dict[str, PartSpec]:
    """``value`` in run order; ``ValueError`` for a name that is no role of its spec's kind."""
    roles = in_run_order(role_for(name, spec.kind) for name, spec in value.items())
    check_role_names(r.name for r in roles if not r.builtin)
    return {r.name: value[r.name] for r in roles}


@attrs.frozen
class Recipe:
    """A validated recipe. ``parts`` maps role names (``grefine_kit.parts.roles``) to PartSpecs;
    ``refiner`` is the ``[refiner]`` table as written (see :attr:`options`). ``source`` says
    where it came from (a path or ``builtin:NAME``)."""

    name: str
    description: str = ""
    seed: int = 0
    parts: Mapping[str, PartSpec] = attrs.field(factory=dict, converter=_parts)
    refiner: Mapping[str, Any] = attrs.field(factory=dict)
    #: provenance only: two recipes with the same content are equal wherever they came from
    source: str = attrs.field(default="<memory>", eq=False)
    #: command-line ``--set`` values already applied (grefine_kit.recipes.overrides); reports record them
    overrides: Mapping[str, Any] = attrs.field(factory=dict, eq=False)

    @property
    def roles(self) -> tuple[Role, ...]:
        """The recipe's roles in run order: the built-in slots it fills and its extra
        ``[indicators.<name>]`` / ``[stages.<name>]`` roles."""
        return tuple(role_for(name, spec.kind) for name, spec in self.parts.items())

    def part(self, role: str) -> PartSpec | None:
        """The spec in role ``role`` (``perceptual``, ``stage1``, ...), None when absent."""
        return self.parts.get(role)

    @property
    def options(self) -> RefinerOptions:
        """The ``[refiner]`` table as ``RefinerOptions``."""
        try:
            return RefinerOptions.from_table(self.refiner)
        except UserError as exc:
            raise RecipeError(f"{self.source}: {exc}") from exc

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def load(cls, path_or_name: str | Path, registry: Registry | None = None) -> Recipe:
        """Load a recipe from a file or by built-in / plugin recipe name.

        A bare name (``tiny``, ``g-refine``) always means the registered recipe, whatever files
        the working folder holds; a file is named by something that looks like a path: a
        ``Path`` object, a name ending in ``.toml``, or one with a folder part or a leading
        ``.``/``~`` (``./tiny``, ``recipes/mine``, ``~/r.toml``).
        """
        registry = registry or get_registry()
        path = Path(path_or_name).expanduser()
        text: str
        if looks_like_recipe_path(path_or_name):
            if not path.is_file():
                raise RecipeError(f"{path}: no such recipe file")
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RecipeError(f"{path}: cannot read: {exc}") from exc
            source = str(path)
            return cls.loads(text, source=source, registry=registry).with_paths_from(path.parent)
        else:
            name = str(path_or_name)
            if name not in registry.entries["recipe"]:
                known = ", ".join(registry.names("recipe"))
                here = f"; to load the file {name!r}, write ./{name}" if path.exists() else ""
                raise RecipeError(
                    f"unknown recipe {name!r}{suggest(name, registry.entries['recipe'])}; "
                    f"built-in and plugin recipes: {known}; or give a path to a .toml file{here}"
                )
            entry = registry.get("recipe", name)
            target = entry.load()
            text = (
                target.read_text("utf-8")
                if isinstance(target, (Path, Traversable))
                else Path(target).read_text()
            )
            source = (
                f"builtin:{name}" if entry.distribution == "grefine-kit" else f"{entry.distribution}:{name}"
            )
        return cls.loads(text, source=source, registry=registry)

    def with_paths_from(self, base: Path) -> Recipe:
        """A copy whose relative path options are absolute, taken from ``base`` (the folder of
        the recipe file: paths in a recipe are relative to it)."""
        base = base.resolve()
        parts = {}
        for role, spec in self.parts.items():
            options = resolve_path_options(spec.options, base)
            parts[role] = spec if options == dict(spec.options) else attrs.evolve(spec, options=options)
        return attrs.evolve(self, parts=parts)

    @classmethod
    def loads(cls, text: str, *, source: str = "<string>", registry: Registry | None = None) -> Recipe:
        """Parse and validate TOML text; errors name ``source`` and the key."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{source}: not valid TOML: {exc}") from exc
        except RecursionError:  # tomllib recurses per nesting level
            raise RecipeError(f"{source}: not a usable recipe: arrays or tables nested too deeply") from None
        try:
            return cls.from_dict(data, source=source, registry=registry)
        except RecursionError:
            raise RecipeError(f"{source}: not a usable recipe: values nested too deeply") from None

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "<dict>", registry: Registry | None = None
    ) -> Recipe:
        registry = registry or get_registry()

        def fail(key: str, message: str) -> RecipeError:
            return RecipeError(f"{source}: {key}: {message}")

        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise fail(
                    key, f"unknown key{suggest(key, TOP_LEVEL_KEYS)}; allowed: {', '.join(TOP_LEVEL_KEYS)}"
                )
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise fail("name", "required, a non-empty string")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise fail("description", f"must be a string, not {_type_name(description)}")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise fail("seed", f"must be an integer in [0, 2**63); got {seed!r}")

        def part_spec(slot: Role, table: Any) -> PartSpec:
            key, kind = slot.table, slot.kind
            if not isinstance(table, Mapping):
                raise fail(key, f"must be a table with a 'part' key, not {_type_name(table)}")
            part = table.get("part")
            if not isinstance(part, str):
                raise fail(
                    f"{key}.part",
                    f"required: the registry name of a {kind}; known: {', '.join(registry.names(kind))}",
                )
            if part not in registry.entries[kind]:
                raise fail(
                    f"{key}.part",
                    f"unknown {kind} {part!r}{suggest(part, registry.entries[kind])}; "
                    f"known: {', '.join(registry.names(kind))}",
                )
            options = {k: v for k, v in table.items() if k != "part"}
            try:
                check_options(registry.get(kind, part).load(), options, what=f"{kind} {part!r}")
            except UserError as exc:
                raise fail(key, str(exc)) from exc
            return PartSpec(kind, part, options)

        slots = [r for r in ROLES if len(r.path) == 1]
        for group, make in _GROUPS.items():  # [indicators.<name>], [stages.<name>]: any role name
            table = data.get(group, {})
            if not isinstance(table, Mapping):
                raise fail(group, f"must be a table, not {_type_name(table)}")
            for key in table:
                try:
                    slots.append(make(str(key)))
                except ValueError as exc:
                    raise fail(f"{group}.{key}", str(exc)) from None
        parts: dict[str, PartSpec] = {}
        for slot in in_run_order(slots):
            table = _lookup(data, slot.path)
            if table is not None:
                parts[slot.name] = part_spec(slot, table)
        refiner = data.get("refiner", {})
        if not isinstance(refiner, Mapping):
            raise fail("refiner", f"must be a table, not {_type_name(refiner)}")
        try:
            RefinerOptions.from_table(refiner)
        except UserError as exc:
            raise RecipeError(f"{source}: {exc}") from exc
        _check_graph(parts, registry, source)
        return cls(
            name=name, description=description, seed=seed, parts=parts, refiner=dict(refiner), source=source
        )

    # -- output ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["seed"] = self.seed
        for slot in self.roles:
            spec = self.parts.get(slot.name)
            if spec is not None:
                *groups, last = slot.path
                target = data
                for group in groups:
                    target = target.setdefault(group, {})
                target[last] = spec.to_table()
        if self.refiner:
            data["refiner"] = dict(self.refiner)
        return data

    def dump(self) -> str:
        """The recipe as TOML; ``Recipe.loads(recipe.dump())`` gives an equal recipe."""
        return dump_toml(self.to_dict())

    @property
    def hash(self) -> str:
        """A short content hash of the normalised recipe (for provenance in reports)."""
        return hashlib.sha256(self.dump().encode("utf-8")).hexdigest()[:16]

    # -- building ----------------------------------------------------------------------

    def with_runtime(self, **overrides: Any) -> Recipe:
        """A copy whose parts get ``device``/``dtype`` overrides where they accept them."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if not overrides:
            return self
        unknown = set(overrides) - set(RUNTIME_OPTIONS)
        if unknown:
            raise ValueError(f"only {RUNTIME_OPTIONS} can be overridden; got {sorted(unknown)}")
        registry = get_registry()

        def patch(spec: PartSpec) -> PartSpec:
            accepted = registry.option_names(spec.kind, spec.part)
            extra = {k: v for k, v in overrides.items() if accepted is None or k in accepted}
            return attrs.evolve(spec, options={**spec.options, **extra})

        return attrs.evolve(self, parts={role: patch(spec) for role, spec in self.parts.items()})

    def build_part(self, spec: PartSpec, registry: Registry | None = None) -> Any:
        registry = registry or get_registry()
        try:
            return registry.create(spec.kind, spec.part, spec.options)
        except UserError as exc:
            raise RecipeError(f"{self.source}: {exc}") from exc

    def build(self, registry: Registry | None = None) -> Refiner:
        """Build every part and assemble the ``Refiner``. No weights load until it runs."""
        from grefine_kit.refiner.refiner import Refiner

        registry = registry or get_registry()
        parts = {role: self.build_part(spec, registry) for role, spec in self.parts.items()}
        try:
            return Refiner(
                **parts,
                options=self.options,
                part_names={role: spec.part for role, spec in self.parts.items()},
                roles=self.roles,
                seed=self.seed,
                recipe_name=self.name,
                recipe_hash=self.hash,
                recipe_overrides=dict(self.overrides),
            )
        except UserError as exc:
            raise RecipeError(f"{self.source}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"{self.source}: refiner: {error_text(exc)}") from exc

    def validate(self, registry: Registry | None = None) -> None:
        """Construct every part (cheap: no weights load) so that option values are checked too."""
        self.build(registry)


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _check_graph(parts: Mapping[str, PartSpec], registry: Registry, source: str) -> None:
    """The Refiner's block check on the recipe's part classes (nothing is built)."""
    from grefine_kit.refiner.blocks import check_blocks, declared_io

    io = []
    for name, spec in parts.items():
        reads, writes = declared_io(role_for(name, spec.kind), registry.get(spec.kind, spec.part).load())
        io.append((f"{name} ({spec.part})", reads, writes))
    try:
        check_blocks(io)
    except RecipeError as exc:
        raise RecipeError(f"{source}: {exc}") from exc


def _type_name(value: Any) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)
