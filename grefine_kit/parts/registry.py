"""The part registry: kinds, lazy entries, plugin loading.

Parts come from pluggy hooks (see ``grefine_kit.parts.hookspecs``). The built-in parts are
registered by ``grefine_kit.parts.builtins`` through the very same hooks; third-party plugins are
found through the ``grefine_kit`` entry-point group. Building the registry imports plugin
modules but no heavy library: factories are resolved only when a part is created.

Environment switches (as in llm / datasette):

- ``GREFINE_LOAD_PLUGINS``: comma-separated distribution or entry-point names; when set, only
  those external plugins load (an empty value loads none). Built-ins always load. Names compare
  as pip compares distribution names: case and `-`, `_`, `.` do not matter.
- ``GREFINE_DISABLE_PLUGINS``: comma-separated names never to load.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata as importlib_metadata
from types import BuiltinFunctionType, FunctionType, MethodType
from typing import Any, TypeVar

import attrs
import pluggy

from grefine_kit.errors import PluginError, UnknownPartError, UserError, error_text
from grefine_kit.parts import hookspecs
from grefine_kit.parts.hints import plugin_fix

PartT = TypeVar("PartT")

__all__ = [
    "KINDS",
    "PartEntry",
    "PluginFailure",
    "Registry",
    "create_part",
    "error_text",
    "get_registry",
    "import_target",
    "reset_registry",
    "suggest",
]

#: kind -> hook name
KINDS: dict[str, str] = {
    "indicator": "register_indicators",
    "parser": "register_parsers",
    "combiner": "register_combiners",
    "regions": "register_regions",
    "stage": "register_stages",
    "metric": "register_metrics",
    "engine": "register_engines",
    "recipe": "register_recipes",
}

BUILTIN_DISTRIBUTION = "grefine-kit"


def suggest(name: str, candidates: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix, or ``""`` when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def import_target(target: str, label: str, distribution: str) -> object:
    """Import ``target`` (``"module:attr.attr"``) for the part or command ``label`` names.

    ``UserError`` when the module cannot be imported (a missing dependency, fixable by the
    user); ``PluginError`` when the attribute does not exist (the plugin is wrong).
    """
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise UserError(f"{label} (from {distribution}) cannot be imported: {exc}") from exc
    except AttributeError as exc:
        raise PluginError(
            f"{label} (from {distribution}) points at {target!r}, which does not exist"
        ) from exc
    return obj


@attrs.frozen
class PartEntry:
    """One registered part. ``factory`` is resolved lazily by ``load()``."""

    kind: str
    name: str
    factory: Any = attrs.field(repr=False)
    plugin: str
    distribution: str
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def target(self) -> str:
        """``"module:attr"`` for display, whatever form the factory was given in."""
        if isinstance(self.factory, str):
            return self.factory
        factory = self.factory
        if isinstance(factory, (type, FunctionType, BuiltinFunctionType, MethodType)):
            return f"{factory.__module__}:{factory.__qualname__}"
        return f"{type(factory).__module__}:{factory!r}"  # e.g. a functools.partial

    @property
    def summary(self) -> str:
        return str(self.metadata.get("summary", ""))

    @property
    def licence(self) -> str:
        """A licence note for parts under terms other than the toolkit's (``""`` when none)."""
        return str(self.metadata.get("licence", "") or "")

    def load(self) -> Any:
        """Import and return the factory (or the recipe path for kind ``recipe``)."""
        if not isinstance(self.factory, str) or self.kind == "recipe":
            return self.factory
        return import_target(self.factory, f"{self.kind} {self.name!r}", self.distribution)


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded or that registered something invalid."""

    plugin: str
    distribution: str
    message: str


def _normal_name(name: str) -> str:
    # distribution names compare like pip compares them (PEP 503): case and -_. do not matter
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _split_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {_normal_name(item) for item in raw.split(",") if item.strip()}


class Registry:
    """All parts known to this process, per kind.

    Use ``get_registry()`` for the process-wide instance; build a private one with
    ``Registry.from_plugins(...)`` in tests.
    """

    def __init__(self, plugin_manager: pluggy.PluginManager) -> None:
        self.plugin_manager = plugin_manager
        self.entries: dict[str, dict[str, PartEntry]] = {kind: {} for kind in KINDS}
        self.failures: list[PluginFailure] = []
        #: plugin name -> distribution name
        self.distributions: dict[str, str] = {}

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_plugins(
        cls,
        extra_plugins: Iterable[tuple[object, str, str]] = (),
        *,
        entry_points: bool = True,
    ) -> Registry:
        """Build a registry from the built-ins, installed entry points and ``extra_plugins``.

        ``extra_plugins`` are ``(module_or_object, plugin_name, distribution)`` triples
        (used by ``grefine_kit.testing`` to register a plugin for one test).
        """
        from grefine_kit.parts import builtins

        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        registry = cls(pm)
        registry._add_plugin(builtins, "grefine_kit.parts.builtins", BUILTIN_DISTRIBUTION)
        if entry_points:
            registry._load_entry_points()
        for plugin, name, distribution in extra_plugins:
            registry._add_plugin(plugin, name, distribution)
        registry._collect()
        return registry

    def _add_plugin(self, plugin: object, name: str, distribution: str) -> None:
        try:
            self.plugin_manager.register(plugin, name=name)
        except Exception as exc:  # pluggy validates hookimpl signatures here
            self.failures.append(PluginFailure(name, distribution, f"invalid plugin: {exc}"))
            return
        self.distributions[name] = distribution

    def _load_entry_points(self) -> None:
        allow = _split_env("GREFINE_LOAD_PLUGINS")
        deny = _split_env("GREFINE_DISABLE_PLUGINS") or set()
        for ep in importlib_metadata.entry_points(group=hookspecs.PROJECT_NAME):
            dist = ep.dist.name if ep.dist is not None else "?"
            if dist == BUILTIN_DISTRIBUTION and ep.value.startswith("grefine_kit.parts.builtins"):
                continue  # registered directly above
            names = {_normal_name(ep.name), _normal_name(dist)}
            if allow is not None and not names & allow:
                continue
            if names & deny:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self.failures.append(
                    PluginFailure(ep.name, dist, f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
                )
                continue
            self._add_plugin(plugin, ep.name, dist)

    def _collect(self) -> None:
        for kind, hook_name in KINDS.items():
            hook = getattr(self.plugin_manager.hook, hook_name)
            # Call each implementation on its own so that we know who registered what and a
            # failing hook only loses that plugin's parts. get_hookimpls() is in registration
            # order, so the built-ins claim their names first.
            for impl in hook.get_hookimpls():
                plugin_name = impl.plugin_name
                distribution = self.distributions.get(plugin_name, "?")
                register = self._register_function(kind, plugin_name, distribution)
                try:
                    impl.function(register=register)
                except Exception as exc:
                    self.failures.append(
                        PluginFailure(
                            plugin_name, distribution, f"{hook_name} raised {type(exc).__name__}: {exc}"
                        )
                    )

    def _register_function(self, kind: str, plugin: str, distribution: str) -> Callable[..., None]:
        def register(name: str, factory: Any, /, **metadata: Any) -> None:
            if not isinstance(name, str) or not name.strip():
                raise PluginError(f"{kind} names must be non-empty strings; got {name!r}")
            if isinstance(factory, str) and kind != "recipe" and ":" not in factory:
                raise PluginError(
                    f"{kind} {name!r}: a string factory must look like 'module:attr'; got {factory!r}"
                )
            existing = self.entries[kind].get(name)
            if existing is not None:
                self.failures.append(
                    PluginFailure(
                        plugin,
                        distribution,
                        f"duplicate {kind} name {name!r}: already registered by {existing.distribution} "
                        f"({existing.plugin}); the one from {distribution} ({plugin}) is ignored",
                    )
                )
                return
            self.entries[kind][name] = PartEntry(kind, name, factory, plugin, distribution, dict(metadata))

        return register

    # -- queries -----------------------------------------------------------------------

    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise UserError(f"unknown part kind {kind!r}{suggest(kind, KINDS)}; kinds: {', '.join(KINDS)}")

    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> PartEntry:
        """The entry for ``name``; ``UnknownPartError`` with a suggestion otherwise."""
        self._check_kind(kind)
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none installed"
            raise UnknownPartError(
                f"unknown {kind} {name!r}{suggest(name, self.entries[kind])}; known: {known}"
                + plugin_fix(kind, name)
            ) from None

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None) -> object:
        """Build part ``name`` with ``options``; bad options raise ``UserError`` naming the key.

        The part is what the factory returns, unchecked: :meth:`create_as` checks it against
        its kind's protocol and gives the type checker that type."""
        entry = self.get(kind, name)
        factory = entry.load()
        options = dict(options or {})
        check_options(factory, options, what=f"{kind} {name!r}")
        try:
            return factory(**options)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{kind} {name!r}: {error_text(exc)}") from exc

    def create_as(
        self, kind: str, name: str, options: Mapping[str, Any] | None, protocol: type[PartT]
    ) -> PartT:
        """:meth:`create`, then ``PluginError`` unless the part follows ``protocol`` (a
        ``runtime_checkable`` protocol of its kind: ``Indicator``, ``Parser``, ``Metric``,
        ``Engine``, ...; its members are present, their signatures are not checked)."""
        part = self.create(kind, name, options)
        if not isinstance(part, protocol):
            raise PluginError(
                f"{kind} {name!r} built a {type(part).__name__}, which lacks what the "
                f"{protocol.__name__} protocol asks for (grefine_kit.testing's checks say what)"
            )
        return part

    def option_names(self, kind: str, name: str) -> list[str] | None:
        """The option names a part accepts, or None when it takes ``**kwargs``."""
        return accepted_options(self.get(kind, name).load())


def accepted_options(factory: Any) -> list[str] | None:
    """Keyword names ``factory`` accepts (attrs fields or signature); None if open-ended."""
    if isinstance(factory, type) and attrs.has(factory):
        return [f.alias or f.name for f in attrs.fields(factory) if f.init]
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = []
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(p.name)
    return names


#: annotations (as strings, under ``from __future__ import annotations``) of numeric options
_NUMBER_TYPES = frozenset(
    {"int", "float", "int|None", "float|None", "None|int", "None|float", "Optional[int]", "Optional[float]"}
)


def _is_number_field(field: attrs.Attribute[Any]) -> bool:
    t = field.type
    return t in (int, float) or (isinstance(t, str) and t.replace(" ", "") in _NUMBER_TYPES)


def check_options(factory: Any, options: Mapping[str, Any], *, what: str) -> None:
    """Raise ``UserError`` for an option key ``factory`` does not accept (with a suggestion),
    and for a boolean given to a numeric attrs field (``True`` is an ``int`` in Python, so
    ``instance_of(int)`` alone would take ``iterations = true`` as 1)."""
    accepted = accepted_options(factory)
    if accepted is None:
        return
    for key in options:
        if key not in accepted:
            valid = ", ".join(accepted) or "none"
            raise UserError(f"{what} has no option {key!r}{suggest(key, accepted)}; options: {valid}")
    if isinstance(factory, type) and attrs.has(factory):
        for field in attrs.fields(factory):
            key = field.alias or field.name
            if isinstance(options.get(key), bool) and _is_number_field(field):
                prefix = f"{what}: " if what else ""
                raise UserError(f"{prefix}{key!r} must be a number, not a boolean ({options[key]!r})")


_lock = threading.Lock()
_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry.from_plugins()
        return _registry


def reset_registry(registry: Registry | None = None) -> None:
    """Forget (or replace) the process-wide registry; for tests and plugin fixtures."""
    global _registry
    with _lock:
        _registry = registry


def create_part(kind: str, name: str, **options: Any) -> object:
    """Build a registered part by kind and name (e.g. ``create_part("parser", "spacy")``)."""
    return get_registry().create(kind, name, options)
