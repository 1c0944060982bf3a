"""Plugin hook specifications (pluggy project ``grefine_kit``).

Each hook receives ``register(name, factory, **metadata)``. A factory is a class or other
callable, or a ``"package.module:attr"`` string that is imported only when the part is built,
so registering a part costs no heavy import. Useful metadata: ``summary`` (one line shown by
``grefine list``), ``licence`` (a note for parts under other terms, e.g. non-commercial weights
or libraries; shown by ``grefine plugins``) and, for metrics, ``lower_better``, ``score_range``
and ``needs_prompt`` (shown by ``grefine list metric`` without building the part).

Example plugin module::

    from grefine_kit import hookimpl

    @hookimpl
    def register_indicators(register):
        register("sharpness", "my_plugin.sharpness:Sharpness", summary="Laplacian sharpness map")
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

PROJECT_NAME = "grefine_kit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callable each hook receives."""

    def __call__(self, name: str, factory: Any, /, **metadata: Any) -> None: ...


@hookspec
def register_indicators(register: Register) -> None:
    """Register quality indicators (image [+ prompt] -> QualityMap)."""


@hookspec
def register_parsers(register: Register) -> None:
    """Register prompt parsers (text -> PromptTree)."""


@hookspec
def register_combiners(register: Register) -> None:
    """Register mask combiners ((P, A) -> Mask)."""


@hookspec
def register_regions(register: Register) -> None:
    """Register region detectors (mask + maps -> regions refined one crop each)."""


@hookspec
def register_stages(register: Register) -> None:
    """Register refiner stages (image [+ mask] -> image)."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics (``grefine_kit.metrics.base.Metric``: images -> one number each).

    Give ``lower_better``, ``score_range`` and ``needs_prompt`` as metadata too, so that
    ``grefine list metric`` can show them without building the part."""


@hookspec
def register_engines(register: Register) -> None:
    """Register engines (``grefine_kit.engines.base.Engine``: who runs a run's items).

    Options the CLI passes when given: ``workers`` (``--workers``) and ``address``
    (``--address``); an engine that accepts neither still works with the defaults."""


@hookspec
def register_recipes(register: Register) -> None:
    """Register recipe files: ``register(name, path_to_toml)``.

    The path may be a ``pathlib.Path`` or an ``importlib.resources`` traversable.
    """


@hookspec
def register_commands(register: Register) -> None:
    """Register ``grefine`` subcommands: ``register(name, "package.module:command")``.

    The target is a ``click.Command``, imported only when that subcommand runs (``grefine
    --help`` lists it from the ``summary`` metadata without importing it). A name the core
    already uses, or one registered twice, is ignored with a warning. Not a part kind:
    commands are not listed by ``grefine list`` (see ``grefine_kit.cli.plugin_commands``).
    """
