"""Stanza dependency parser (registry name ``stanza``).

Stanza models are never downloaded by the toolkit: get them once with
``python -c "import stanza; stanza.download('en')"`` (or pass ``model_dir``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import MissingDependencyError
from grefine_kit.parsers.tree import MAX_PARSE_CHARS, build_tree
from grefine_kit.types import PromptTree, Token

if TYPE_CHECKING:
    import stanza

__all__ = ["StanzaParser", "load_stanza_pipeline", "tree_from_stanza_doc"]

_CACHE: dict[tuple[str, str | None, bool], stanza.Pipeline] = {}
_LOCK = threading.Lock()


def tree_from_stanza_doc(doc: Any, text: str, parser: str = "stanza") -> PromptTree:
    """Convert a ``stanza.models.common.doc.Document`` into a ``PromptTree``.

    Words of a multi-word token ("don't" -> do, n't) share their token's character span when
    stanza gives them none. Heads are 1-based within a sentence (0 = sentence root); sentence
    roots are joined under the first one (``build_tree``).
    """
    raw: list[Token] = []
    for sent in doc.sentences:
        offset = len(raw)
        for word in sent.words:
            start, end = word.start_char, word.end_char
            if start is None or end is None:
                parent = getattr(word, "parent", None)
                start = getattr(parent, "start_char", None)
                end = getattr(parent, "end_char", None)
            if start is None or end is None:  # no offsets at all: locate the word after the previous one
                prev_end = raw[-1].end if raw else 0
                found = text.find(word.text, prev_end)
                start = found if found >= 0 else prev_end
                end = start + len(word.text) if found >= 0 else prev_end
            head = int(word.head or 0)
            raw.append(
                Token(
                    text=word.text,
                    start=int(start),
                    end=int(end),
                    pos=word.upos or "X",
                    head=offset + head - 1 if head > 0 else -1,
                    dep=word.deprel or "",
                    lemma=word.lemma or "",
                )
            )
    return build_tree(text, raw, parser=parser)


def load_stanza_pipeline(
    lang: str = "en", model_dir: str | None = None, use_gpu: bool = False
) -> stanza.Pipeline:
    """A cached ``stanza.Pipeline(lang, processors="tokenize,pos,lemma,depparse")``, never downloading."""
    key = (lang, model_dir, use_gpu)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            import stanza
        except ImportError as exc:
            raise MissingDependencyError(
                "the stanza parser needs stanza: `pip install grefine-kit[stanza]`"
            ) from exc
        kwargs: dict[str, Any] = {
            "processors": "tokenize,pos,lemma,depparse",
            "download_method": None,
            "use_gpu": use_gpu,
            "logging_level": "WARN",
        }
        if model_dir:
            kwargs["dir"] = model_dir
        try:
            nlp = stanza.Pipeline(lang, **kwargs)
        except (OSError, ValueError, KeyError) as exc:  # ResourcesFileNotFoundError is an OSError
            raise MissingDependencyError(
                f"stanza models for {lang!r} are not installed ({type(exc).__name__}): run "
                f"`python -c \"import stanza; stanza.download('{lang}')\"`"
            ) from exc
        _CACHE[key] = nlp
        return nlp


@attrs.frozen
class StanzaParser:
    """Parse prompts with a stanza pipeline (tokenize, pos, lemma, depparse).

    Options:
        lang: stanza language code (default ``"en"``).
        model_dir: stanza resources folder; None = stanza's default (``$STANZA_RESOURCES_DIR``,
            else its per-version cache folder, e.g. ``~/.cache/stanza/1.15.0/resources``).
        use_gpu: let stanza use a GPU (default False: prompts are short).
    """

    lang: str = attrs.field(default="en", validator=attrs.validators.min_len(1))
    model_dir: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )
    use_gpu: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def load(self) -> stanza.Pipeline:
        """Load (or fetch from the per-process cache) the stanza pipeline."""
        return load_stanza_pipeline(self.lang, self.model_dir, self.use_gpu)

    def parse(self, prompt: str) -> PromptTree:
        """Parse ``prompt``; never raises on odd text (see ``Parser``)."""
        nlp = self.load()
        text = str(prompt)
        body = text[:MAX_PARSE_CHARS]
        if not body.strip():  # stanza's tokenizer dislikes empty input
            return build_tree(text, [], parser=f"stanza:{self.lang}")
        return tree_from_stanza_doc(nlp(body), text, parser=f"stanza:{self.lang}")
