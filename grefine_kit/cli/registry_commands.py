"""Commands about the registry and recipes: ``plugins``, ``list``, ``recipe show|validate``."""

from __future__ import annotations

import fnmatch

import click

from grefine_kit.cli.app import cli, user_errors, warn_plugin_failures


@cli.command("plugins")
@user_errors
def plugins_command() -> None:
    """List installed plugins, the parts each registers, and broken plugins."""
    from grefine_kit.registry import get_registry

    registry = get_registry()
    by_plugin: dict[tuple[str, str], list[str]] = {}
    for kind, entries in registry.entries.items():
        for entry in entries.values():
            licence = f"  [licence: {entry.licence}]" if entry.licence else ""
            by_plugin.setdefault((entry.distribution, entry.plugin), []).append(
                f"{kind}:{entry.name}{licence}"
            )
    for (distribution, plugin), parts in sorted(by_plugin.items()):
        click.echo(f"{distribution} ({plugin})")
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
    from grefine_kit.registry import KINDS, get_registry

    registry = get_registry()
    kinds = [kind] if kind else list(KINDS)
    for k in kinds:
        names = [n for n in registry.names(k) if fnmatch.fnmatchcase(n, pattern)]
        for name in names:
            entry = registry.get(k, name)
            summary = f"  {entry.summary}" if entry.summary else ""
            summary += f" [licence: {entry.licence}]" if entry.licence else ""
            click.echo(f"{k:<10} {name:<22} {entry.distribution}{summary}")
    warn_plugin_failures()


# -- recipes ----------------------------------------------------------------------------


@cli.group("recipe")
def recipe_group() -> None:
    """Show and validate recipes."""


@recipe_group.command("show")
@click.argument("name_or_path")
@user_errors
def recipe_show(name_or_path: str) -> None:
    """Print a recipe (built-in name or .toml path) as normalised TOML."""
    from grefine_kit.recipe import Recipe

    recipe = Recipe.load(name_or_path)
    click.echo(f"# source: {recipe.source}  hash: {recipe.hash}")
    click.echo(recipe.dump(), nl=False)


@recipe_group.command("validate")
@click.argument("name_or_path")
@user_errors
def recipe_validate(name_or_path: str) -> None:
    """Check a recipe: keys, part names, option names and values (no weights are loaded)."""
    from grefine_kit.recipe import Recipe

    recipe = Recipe.load(name_or_path)
    recipe.validate()
    click.echo(f"ok: {recipe.name} ({recipe.source})")
