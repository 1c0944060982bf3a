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

    [combiner]                   # required with stage1
    part = "g-refine"

    [stage1]                     # optional: masked refinement
    part = "inpaint"

    [stage2]                     # optional: mild global pass
    part = "img2img"

    [refiner]                    # Refiner settings (iterations, strength rule, ...)
    iterations = 20
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import RecipeError, UserError
from grefine_kit.registry import Registry, check_options, error_text, get_registry, suggest

if TYPE_CHECKING:
    from grefine_kit.pipeline import Refiner

__all__ = ["PartSpec", "Recipe"]

TOP_LEVEL_KEYS = ("name", "description", "seed", "indicators", "combiner", "stage1", "stage2", "refiner")
INDICATOR_ROLES = ("perceptual", "alignment")
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


@attrs.frozen
class Recipe:
    """A validated recipe. ``source`` says where it came from (a path or ``builtin:NAME``)."""

    name: str
    combiner: PartSpec | None = None
    description: str = ""
    seed: int = 0
    perceptual: PartSpec | None = None
    alignment: PartSpec | None = None
    stage1: PartSpec | None = None
    stage2: PartSpec | None = None
    refiner: Mapping[str, Any] = attrs.field(factory=dict)
    #: provenance only: two recipes with the same content are equal wherever they came from
    source: str = attrs.field(default="<memory>", eq=False)
    #: command-line ``--set`` values already applied (grefine_kit.overrides); reports record them
    overrides: Mapping[str, Any] = attrs.field(factory=dict, eq=False)

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def load(cls, path_or_name: str | Path, registry: Registry | None = None) -> Recipe:
        """Load a recipe from a ``.toml`` path or by built-in / plugin recipe name."""
        registry = registry or get_registry()
        path = Path(path_or_name)
        text: str
        if path.suffix == ".toml" or path.exists() or "/" in str(path_or_name):
            if not path.is_file():
                raise RecipeError(f"{path}: no such recipe file")
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RecipeError(f"{path}: cannot read: {exc}") from exc
            source = str(path)
            from grefine_kit.recipe_paths import resolve_recipe_paths  # paths are relative to the file

            return resolve_recipe_paths(cls.loads(text, source=source, registry=registry), path.parent)
        else:
            name = str(path_or_name)
            if name not in registry.entries["recipe"]:
                known = ", ".join(registry.names("recipe"))
                raise RecipeError(
                    f"unknown recipe {name!r}{suggest(name, registry.entries['recipe'])}; "
                    f"built-in and plugin recipes: {known}; or give a path to a .toml file"
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

    @classmethod
    def loads(cls, text: str, *, source: str = "<string>", registry: Registry | None = None) -> Recipe:
        """Parse and validate TOML text; errors name ``source`` and the key."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{source}: not valid TOML: {exc}") from exc
        return cls.from_dict(data, source=source, registry=registry)

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

        def part_spec(key: str, kind: str, table: Any) -> PartSpec:
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

        indicators = data.get("indicators", {})
        if not isinstance(indicators, Mapping):
            raise fail("indicators", f"must be a table, not {_type_name(indicators)}")
        for role in indicators:
            if role not in INDICATOR_ROLES:
                raise fail(
                    f"indicators.{role}",
                    f"unknown role{suggest(role, INDICATOR_ROLES)}; allowed: {', '.join(INDICATOR_ROLES)}",
                )
        specs = {
            role: part_spec(f"indicators.{role}", "indicator", indicators[role])
            for role in INDICATOR_ROLES
            if role in indicators
        }
        combiner = part_spec("combiner", "combiner", data["combiner"]) if "combiner" in data else None
        if combiner is None and "stage1" in data:
            raise fail(
                "combiner",
                'required with a stage1: a table naming a combiner, e.g. [combiner] part = "g-refine"',
            )
        stages = {key: part_spec(key, "stage", data[key]) for key in ("stage1", "stage2") if key in data}
        refiner = data.get("refiner", {})
        if not isinstance(refiner, Mapping):
            raise fail("refiner", f"must be a table, not {_type_name(refiner)}")
        _check_refiner_options(refiner, fail)
        return cls(
            name=name,
            description=description,
            seed=seed,
            perceptual=specs.get("perceptual"),
            alignment=specs.get("alignment"),
            combiner=combiner,
            stage1=stages.get("stage1"),
            stage2=stages.get("stage2"),
            refiner=dict(refiner),
            source=source,
        )

    # -- output ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["seed"] = self.seed
        indicators = {
            role: spec.to_table()
            for role, spec in (("perceptual", self.perceptual), ("alignment", self.alignment))
            if spec is not None
        }
        if indicators:
            data["indicators"] = indicators
        if self.combiner is not None:
            data["combiner"] = self.combiner.to_table()
        for key, spec in (("stage1", self.stage1), ("stage2", self.stage2)):
            if spec is not None:
                data[key] = spec.to_table()
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

        def patch(spec: PartSpec | None) -> PartSpec | None:
            if spec is None:
                return None
            accepted = registry.option_names(spec.kind, spec.part)
            extra = {k: v for k, v in overrides.items() if accepted is None or k in accepted}
            return attrs.evolve(spec, options={**spec.options, **extra})

        return attrs.evolve(
            self,
            perceptual=patch(self.perceptual),
            alignment=patch(self.alignment),
            stage1=patch(self.stage1),
            stage2=patch(self.stage2),
        )

    def build_part(self, spec: PartSpec, registry: Registry | None = None) -> Any:
        registry = registry or get_registry()
        try:
            return registry.create(spec.kind, spec.part, spec.options)
        except UserError as exc:
            raise RecipeError(f"{self.source}: {exc}") from exc

    def build_indicators(self, registry: Registry | None = None) -> dict[str, Any]:
        """The recipe's indicators by role (``perceptual`` / ``alignment``), built lazily-loading."""
        return {
            role: self.build_part(spec, registry)
            for role, spec in (("perceptual", self.perceptual), ("alignment", self.alignment))
            if spec is not None
        }

    def build(self, registry: Registry | None = None) -> Refiner:
        """Build every part and assemble the ``Refiner``. No weights load until it runs."""
        from grefine_kit.pipeline import Refiner

        registry = registry or get_registry()
        indicators = self.build_indicators(registry)
        parts: dict[str, Any] = {}
        if self.combiner is not None:
            parts["combiner"] = self.build_part(self.combiner, registry)
        try:
            return Refiner(
                perceptual=indicators.get("perceptual"),
                alignment=indicators.get("alignment"),
                **parts,
                stage1=self.build_part(self.stage1, registry) if self.stage1 else None,
                stage2=self.build_part(self.stage2, registry) if self.stage2 else None,
                seed=self.seed,
                recipe_name=self.name,
                recipe_hash=self.hash,
                recipe_overrides=dict(self.overrides),
                **dict(self.refiner),
            )
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"{self.source}: refiner: {error_text(exc)}") from exc

    def validate(self, registry: Registry | None = None) -> None:
        """Construct every part (cheap: no weights load) so that option values are checked too."""
        self.build(registry)


def _check_refiner_options(refiner: Mapping[str, Any], fail: Any) -> None:
    try:
        from grefine_kit.pipeline import Refiner
    except ImportError:  # pragma: no cover - the pipeline module is part of the package
        return
    accepted = [
        f.alias or f.name
        for f in attrs.fields(Refiner)
        if f.init
        and f.name
        not in {
            "perceptual",
            "alignment",
            "combiner",
            "stage1",
            "stage2",
            "seed",
            "recipe_name",
            "recipe_hash",
            "recipe_overrides",
        }
    ]
    for key in refiner:
        if key not in accepted:
            raise fail(
                f"refiner.{key}", f"unknown option{suggest(key, accepted)}; options: {', '.join(accepted)}"
            )
    try:
        check_options(Refiner, refiner, what="")
    except UserError as exc:
        raise fail("refiner", str(exc)) from exc


def _type_name(value: Any) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)


# -- a small TOML writer for recipe values (str, int, float, bool, arrays, tables) ----------


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "-_" for c in key):
        return key
    return _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\t", "\\t")
            .replace("\r", "\\r")
        )
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """Write nested mappings as TOML tables (scalars first, then sub-tables)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    out = "\n".join(lines)
    for key, table in tables:
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        has_scalars = any(not isinstance(v, Mapping) for v in table.values())
        body = dump_toml(table, name)
        header = f"[{name}]\n" if has_scalars or not table else ""
        out += ("\n\n" if out else "") + header + body
    return out.strip("\n") + ("\n" if prefix == "" else "")
