"""``grefine doctor``: what this machine has for running recipes (no heavy import)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import click

from grefine_kit.cli.app import EXIT_FAILURES, EXIT_OK, cli, user_errors


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def recipe_problems(name: str) -> list[str]:
    """One line per thing recipe ``name`` lacks here (empty: ready)."""
    from grefine_kit.readiness.preflight import WEIGHTS, check_parts, fetch_command, recipe_parts
    from grefine_kit.recipes.recipe import Recipe

    recipe = Recipe.load(name)
    lines = []
    for item in check_parts(recipe_parts(recipe)):
        fix = fetch_command(recipe=name) if item.kind == WEIGHTS else item.fix
        lines.append(f"{item.what} ({item.where}) -> {fix}")
    return list(dict.fromkeys(lines))


@cli.command("doctor")
@click.option("--recipe", "recipe_name", default=None, help="check this recipe in detail (name or .toml)")
@user_errors
def doctor_command(recipe_name: str | None) -> None:
    """Report versions, devices, caches, parser models and, per recipe, what is missing here.

    Exit 0 when the --recipe given (or, without one, the environment) is ready, 1 otherwise.
    """
    from grefine_kit import __version__
    from grefine_kit.hub import hub_reachable, offline_requested
    from grefine_kit.parsers.availability import parser_status
    from grefine_kit.parts.checks import cuda_available, hf_cache_dir
    from grefine_kit.parts.registry import get_registry

    click.echo(f"grefine-kit {__version__}, Python {platform.python_version()} ({sys.executable})")
    libs = ("torch", "open_clip_torch", "diffusers", "transformers", "spacy")
    click.echo("libraries: " + ", ".join(f"{d} {_version(d)}" for d in libs))
    cuda = cuda_available()
    click.echo(
        "CUDA: "
        + {False: "no NVIDIA driver (CPU only: use --device cpu)", None: "NVIDIA driver found"}.get(cuda, "")
    )
    mode = (
        "offline mode set"
        if offline_requested()
        else ("hub reachable" if hub_reachable(timeout=1.5) else "hub NOT reachable")
    )
    click.echo(f"Hugging Face cache: {hf_cache_dir()} ({mode})")
    for parser, status in parser_status().items():
        click.echo(f"parser {parser}: {status}")
    names = [recipe_name] if recipe_name else get_registry().names("recipe")
    failed = False
    for name in names:
        problems = recipe_problems(name)
        click.echo(f"recipe {name}: {'ready' if not problems else 'missing ' + str(len(problems))}")
        for line in problems:
            click.echo(f"  missing {line}")
        failed = failed or bool(problems and recipe_name)
    sys.exit(EXIT_FAILURES if failed else EXIT_OK)
