"""Commands about the registry and recipes: ``plugins``, ``list``, ``recipe show|validate``."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping
from typing import Any

import click

from grefine_kit.cli.app import EXIT_FAILURES, cli, user_errors, warn_plugin_failures


@cli.command("plugins")
@user_errors
def plugins_command() -> None:
    """List installed plugins, the parts each registers, and broken plugins."""
    from grefine_kit.parts.registry import get_registry

    registry = get_registry()
    by_plugin: dict[tuple[str, str], list[str]] = {}
    for kind, entries in registry.entries.items():
        for entry in entries.values():
            by_plugin.setdefault((entry.distribution, entry.plugin), []).append(f"{kind}:{entry.name}")
    licences: dict[tuple[str, str], set[str]] = {}
    for entries in registry.entries.values():
        for entry in entries.values():
            if entry.licence:
                licences.setdefault((entry.distribution, entry.plugin), set()).add(entry.licence)
    for (distribution, plugin), parts in sorted(by_plugin.items()):
        click.echo(f"{distribution} ({plugin})")
        for note in sorted(licences.get((distribution, plugin), ())):
            click.echo(f"  licence: {note}")
        for part in sorted(parts):
            click.echo(f"  {part}")
    for failure in registry.failures:
        click.echo(f"BROKEN {failure.distribution} ({failure.plugin}): {failure.message}")


@cli.command("list")
@click.argument("kind", required=False)
@click.option(
    "-f", "--filter", "pattern", default="*", show_default=True, help="glob on part names, e.g. 'g-refine*'"
)
@user_errors
def list_command(kind: str | None, pattern: str) -> None:
    """List registered parts, optionally of one KIND (indicator, parser, combiner, stage, metric, recipe)."""
    from grefine_kit.parts.registry import KINDS, get_registry

    registry = get_registry()
    kinds = [kind] if kind else list(KINDS)
    rows = [
        (k, registry.get(k, n)) for k in kinds for n in registry.names(k) if fnmatch.fnmatchcase(n, pattern)
    ]
    # columns as wide as their longest cell (a plugin's names can be long: pyiqa:clipiqa+_vitL14_512)
    name_w = max([22, *(len(e.name) for _, e in rows)])
    dist_w = max([0, *(len(e.distribution) for _, e in rows)])
    facts = {e.name: _metric_facts(e.metadata) for k, e in rows if k == "metric"}
    facts_w = max([0, *(len(f) for f in facts.values())])
    for k, entry in rows:
        summary = f"  {entry.summary}" if entry.summary else ""
        if k == "metric":
            summary = f"  {facts[entry.name]:<{facts_w}}{summary}"
        click.echo(f"{k:<10} {entry.name:<{name_w}} {entry.distribution:<{dist_w}}{summary}".rstrip())
    warn_plugin_failures()


def _metric_facts(metadata: Mapping[str, Any]) -> str:
    """``↑ [0, 1] prompt`` from a metric's registry metadata (``?`` where a plugin gave none),
    with ``needs reference+region`` for a metric that reads more than the image."""
    from grefine_kit.metrics.base import format_needs, format_range

    lower = metadata.get("lower_better")
    arrow = "?" if lower is None else ("↓" if lower else "↑")
    rng = metadata.get("score_range")
    try:
        shown = format_range(rng) if rng is not None else "[?]"
    except (TypeError, ValueError):
        shown = "[?]"
    prompt = " prompt" if metadata.get("needs_prompt") else ""
    needs = metadata.get("needs")
    shown_needs = format_needs(needs) if isinstance(needs, (list, tuple, set, frozenset)) else ""
    return f"{arrow} {shown}{prompt}" + (f" needs {shown_needs}" if shown_needs else "")


# -- recipes ----------------------------------------------------------------------------


@cli.group("recipe")
def recipe_group() -> None:
    """Show and validate recipes."""


@recipe_group.command("show")
@click.argument("name_or_path")
@user_errors
def recipe_show(name_or_path: str) -> None:
    """Print a recipe (built-in name or .toml path) as normalised TOML."""
    from grefine_kit.recipes.recipe import Recipe

    recipe = Recipe.load(name_or_path)
    click.echo(f"# source: {recipe.source}  hash: {recipe.hash}")
    click.echo(recipe.dump(), nl=False)


@recipe_group.command("validate")
@click.argument("name_or_path")
@user_errors
def recipe_validate(name_or_path: str) -> None:
    """Check a recipe: keys, part names, option names and values (no weights are loaded), then
    whether this machine has what it needs (weights, parser models, devices).

    Exit 0: valid and ready here; 1: valid, but something is missing here (listed); 2: invalid.
    """
    from grefine_kit.cli.doctor_commands import recipe_problems
    from grefine_kit.recipes.recipe import Recipe

    recipe = Recipe.load(name_or_path)
    recipe.validate()
    problems = recipe_problems(name_or_path)
    if not problems:
        click.echo(f"ok: {recipe.name} ({recipe.source}) is valid and has what it needs here")
        return
    click.echo(f"valid: {recipe.name} ({recipe.source}), but this machine lacks:")
    for line in problems:
        click.echo(f"  {line}")
    sys.exit(EXIT_FAILURES)
