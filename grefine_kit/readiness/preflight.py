"""Check what a run needs before any heavy library is imported.

A run that lacks CLIP weights, a diffusers model, a spaCy model or a CUDA device used to find
out only after importing torch, open_clip and transformers (13-25 s on 2 cores). ``check_parts``
asks the *built* parts (construction is cheap and imports nothing heavy) what they need, through
their declared capabilities (:mod:`grefine_kit.parts.base`): ``required_weights()`` (hub files,
looked up here in the Hugging Face cache layout on disk) and ``preflight()`` (the part's own
findings: local files, packages, devices). It knows no part's internals, so a plugin part's
missing weights show exactly like a built-in's. ``ensure_ready`` turns the findings into one
``MissingDependencyError`` of at most two lines: what is missing, and the one command that
fixes it.

The checks a part's ``preflight()`` calls live below the parts: :mod:`grefine_kit.parts.checks`
(weights in the cache, devices) and :mod:`grefine_kit.parsers.availability` (parser packages
and models), each answering from the file system alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from grefine_kit.errors import MissingDependencyError
from grefine_kit.hub import hub_reachable, offline_requested
from grefine_kit.parts.base import DEVICE, FILE, PACKAGE, WEIGHTS, Missing, as_part
from grefine_kit.parts.checks import check_weights, hf_cache_dir

__all__ = [
    "DEVICE",
    "FILE",
    "PACKAGE",
    "WEIGHTS",
    "Missing",
    "check_parts",
    "ensure_ready",
    "fetch_command",
    "format_missing",
    "part_findings",
    "recipe_argument",
    "recipe_parts",
]

# -- parts -> findings -> one message -------------------------------------------------------


def fetch_command(*, recipe: str | None = None, indicator: str | None = None) -> str:
    """The ``grefine fetch-weights`` call that gets what a run of ``recipe``/``indicator`` needs."""
    words = ["grefine fetch-weights"]
    if indicator is not None:
        words.append(f"--indicator {indicator}")
    if recipe is not None:
        words.append(f"--recipe {recipe}")
    return " ".join(words)


def recipe_argument(recipe: Any) -> str | None:
    """How a user names ``recipe`` on the command line: its name for built-in/plugin recipes,
    its file path otherwise (``None`` for no recipe)."""
    if recipe is None or isinstance(recipe, str):
        return recipe
    source = str(recipe.source)
    if ":" in source and not source.endswith(".toml") and not source.startswith("<"):
        return str(recipe.name)  # builtin:NAME or DIST:NAME
    return source if source.endswith(".toml") else str(recipe.name)


def part_findings(part: object, where: str) -> list[Missing]:
    """What one built ``part`` needs and this machine lacks: its ``required_weights()`` not in
    the cache, then its own ``preflight()`` findings (``where`` filled in). A part whose own
    checks raise (a plugin built against another grefine_kit, say) gives one ``package``
    finding naming the error and its package, never a traceback."""
    view = as_part(part)
    try:
        found = check_weights(view.required_weights(), where)
        found += [m if m.where else attrs.evolve(m, where=where) for m in view.preflight()]
    except Exception as exc:  # a plugin's own check is its code: its failure is a finding
        package = type(part).__module__.split(".")[0]
        what = f"a working check of {view.name} (its preflight raised {type(exc).__name__}: {exc})"
        return [Missing(what, where, PACKAGE, f"update or reinstall {package}, which provides it")]
    return found


def check_parts(parts: Mapping[str, object]) -> list[Missing]:
    """What the built ``parts`` (role -> part; None is skipped) need and this machine lacks.
    Asks each part (:func:`part_findings`); imports nothing heavy for the built-in parts
    (open_clip only for a CLIP tag outside the OpenAI ones)."""
    found: list[Missing] = []
    for where, part in parts.items():
        if part is not None:
            found += part_findings(part, where)
    return found


def recipe_parts(recipe: Any) -> dict[str, Any]:
    """The ``Recipe``'s parts by role, built (cheap: nothing loads). (Typed ``Any``: this module
    stays below the recipe in the import graph, since parts call its checks.)"""
    return {
        slot.table: recipe.build_part(spec)
        for slot in recipe.roles
        if (spec := recipe.part(slot.name)) is not None
    }


#: first words of a fix that is a shell command (others are advice, e.g. "use --device cpu")
_COMMANDS = frozenset({"grefine", "pip", "python", "python3"})


def _merge(found: list[Missing]) -> list[tuple[str, list[str], Missing]]:
    merged: dict[str, tuple[str, list[str], Missing]] = {}
    for item in found:
        if item.what in merged:
            merged[item.what][1].append(item.where)
        else:
            merged[item.what] = (item.what, [item.where], item)
    return list(merged.values())


def format_missing(found: list[Missing], *, fetch_command: str) -> str:
    """At most two lines: what is missing (and where), then the one command that fixes it."""
    items = _merge(found)
    shown = [f"{what} ({', '.join(wheres)})" for what, wheres, _ in items[:3]]
    if len(items) > 3:
        shown.append(f"{len(items) - 3} more")
    weights = [m for _, _, m in items if m.kind == WEIGHTS]
    where = ""
    if weights:
        where = f"; not in the Hugging Face cache {hf_cache_dir()}"
        where += " (HF_HUB_OFFLINE is set)" if offline_requested() else " and the hub is not reachable"
    fixes: list[str] = []
    for _, _, m in items:
        fix = fetch_command if m.kind == WEIGHTS else m.fix
        if fix and fix not in fixes:
            fixes.append(fix)
    # shell commands chain with &&; advice ("use --device cpu") is no command to chain
    commands = [f for f in fixes if f.split(maxsplit=1)[0] in _COMMANDS]
    advice = [f for f in fixes if f not in commands]
    if commands:
        advice.append(("run " if advice else "") + " && ".join(commands))
    line2 = "fix: " + "; ".join(advice)
    if weights and not offline_requested() and fetch_command in fixes:
        line2 += " (on a machine with network, then copy its Hugging Face cache here)"
    elif weights:
        line2 += " (needs network: unset HF_HUB_OFFLINE for it)"
    return f"missing {'; '.join(shown)}{where}\n{line2}"


def ensure_ready(parts: Mapping[str, Any], *, fetch_command: str) -> None:
    """Raise one short ``MissingDependencyError`` when ``parts`` cannot run on this machine.

    Weights missing from the cache are only a problem when they cannot be downloaded now
    (offline mode, or the hub does not resolve); otherwise the loader downloads them.
    """
    found = check_parts(parts)
    if any(m.kind == WEIGHTS for m in found) and not offline_requested() and hub_reachable(timeout=1.5):
        found = [m for m in found if m.kind != WEIGHTS]
    if found:
        raise MissingDependencyError(format_missing(found, fetch_command=fetch_command))
