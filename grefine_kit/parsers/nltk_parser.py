"""NLTK parser (registry name ``nltk``): NLTK's tokenizer and POS tagger + the shared head rules.

NLTK has no dependency parser, so heads come from the same rules as the ``rules`` parser
(``grefine_kit.parsers.heads.find_heads``: noun chunks, their heads, and spaCy-like attachments;
docs/parsers.md lists them), applied to NLTK's tags instead of the rule parser's lexicon tags:

- sentences: split after ``.``/``!``/``?`` followed by whitespace, except after common
  abbreviations ("Mr.", "Dr.", "e.g.", single initials); words: ``TreebankWordTokenizer``
  (no data files needed);
- tags: NLTK's averaged perceptron tagger (Penn Treebank), mapped to Universal POS
  (``penn_to_upos``; "to" before a non-verb is a preposition);
- lemmas are the lower-cased words.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Protocol

import attrs

from grefine_kit.errors import MissingDependencyError
from grefine_kit.parsers.heads import find_heads
from grefine_kit.parsers.tree import MAX_PARSE_CHARS, build_tree
from grefine_kit.types import PromptTree, Token

__all__ = ["NltkParser", "penn_to_upos", "split_sentences", "tokenize_spans", "upos_tags"]

_PENN_UPOS = {
    "NN": "NOUN",
    "NNS": "NOUN",
    "NNP": "PROPN",
    "NNPS": "PROPN",
    "VB": "VERB",
    "VBD": "VERB",
    "VBG": "VERB",
    "VBN": "VERB",
    "VBP": "VERB",
    "VBZ": "VERB",
    "MD": "AUX",
    "JJ": "ADJ",
    "JJR": "ADJ",
    "JJS": "ADJ",
    "AFX": "ADJ",
    "RB": "ADV",
    "RBR": "ADV",
    "RBS": "ADV",
    "WRB": "ADV",
    "IN": "ADP",
    "RP": "ADP",
    "DT": "DET",
    "PDT": "DET",
    "WDT": "DET",
    "PRP": "PRON",
    "PRP$": "PRON",
    "WP": "PRON",
    "WP$": "PRON",
    "EX": "PRON",
    "CD": "NUM",
    "CC": "CCONJ",
    "UH": "INTJ",
    "TO": "PART",
    "POS": "PART",
    "SYM": "SYM",
    "$": "SYM",
    "#": "SYM",
    "FW": "X",
    "LS": "X",
    "ADD": "X",
    "XX": "X",
    "GW": "X",
    "NFP": "PUNCT",
    "HYPH": "PUNCT",
}
_ABBREV = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "prof",
        "sr",
        "jr",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "no",
        "fig",
        "mt",
        "ft",
        "inc",
        "ltd",
        "co",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
_SENT_END = re.compile(r"[.!?]+[\"')\]\u201d\u2019]*(?=\s)")
_FALLBACK_TOKEN = re.compile(r"\w+|[^\w\s]+")


class Tagger(Protocol):
    """What the parser needs of a POS tagger (``nltk.tag.PerceptronTagger`` is one)."""

    def tag(self, tokens: list[str]) -> list[tuple[str, str]]: ...


_TAGGER_CACHE: dict[str, Tagger] = {}
_LOCK = threading.Lock()


def penn_to_upos(tag: str) -> str:
    """Universal POS for a Penn Treebank tag (punctuation tags -> PUNCT, unknown -> X)."""
    if tag in _PENN_UPOS:
        return _PENN_UPOS[tag]
    if tag and not any(c.isalnum() for c in tag):  # . , : `` '' etc.
        return "PUNCT"
    if tag in ("-LRB-", "-RRB-", "-NONE-"):
        return "PUNCT"
    return "X"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence ``(start, end)`` spans: break after ``.!?`` + whitespace, not after abbreviations."""
    spans, start = [], 0
    for m in _SENT_END.finditer(text):
        word = text[start : m.start()].split()[-1:] if text[start : m.start()].strip() else []
        last = word[0].lower().rstrip(".") if word else ""
        if m.group().startswith(".") and (last in _ABBREV or (len(last) == 1 and last.isalpha())):
            continue
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def tokenize_spans(text: str) -> list[tuple[int, int]]:
    """Word ``(start, end)`` spans from ``TreebankWordTokenizer`` (regex fallback if it can't align)."""
    from nltk.tokenize import TreebankWordTokenizer

    try:
        return [(a, b) for a, b in TreebankWordTokenizer().span_tokenize(text) if b > a]
    except (ValueError, LookupError):  # align_tokens fails on some quote rewrites
        return [m.span() for m in _FALLBACK_TOKEN.finditer(text)]


def _default_tagger() -> Tagger:
    with _LOCK:
        if "eng" not in _TAGGER_CACHE:
            from nltk.tag import PerceptronTagger

            try:
                _TAGGER_CACHE["eng"] = PerceptronTagger()
            except LookupError as exc:
                raise MissingDependencyError(
                    "the nltk parser needs NLTK's POS tagger data: run "
                    "`python -c \"import nltk; nltk.download('averaged_perceptron_tagger_eng')\"`"
                ) from exc
        return _TAGGER_CACHE["eng"]


def upos_tags(words: Sequence[str], penn: Sequence[str]) -> list[str]:
    """Universal POS per word for the head engine: ``penn_to_upos``, except that "to" before
    anything but a verb is a preposition (Penn tags both uses ``TO``)."""
    out = [penn_to_upos(t) for t in penn]
    for i, tag in enumerate(penn):
        if tag == "TO" and not (i + 1 < len(penn) and penn[i + 1].startswith("VB")):
            out[i] = "ADP"
    return out


@attrs.frozen
class NltkParser:
    """Parse prompts with NLTK: Treebank tokenizer, POS tagger, chunk grammar, head rules.

    Options:
        tagger: any object with ``tag(words) -> [(word, penn_tag), ...]`` (e.g. a trained
            ``nltk.tag.PerceptronTagger``). None (default) loads NLTK's averaged perceptron
            tagger, whose data comes from ``nltk.download('averaged_perceptron_tagger_eng')``.
    """

    tagger: Tagger | None = attrs.field(default=None, eq=False, repr=False)

    def _tagger(self) -> Tagger:
        try:
            import nltk  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "the nltk parser needs NLTK: `pip install grefine-kit[nltk]`"
            ) from exc
        return self.tagger if self.tagger is not None else _default_tagger()

    def load(self) -> None:
        """Import NLTK and load the tagger now (raises MissingDependencyError if absent)."""
        self._tagger()

    def parse(self, prompt: str) -> PromptTree:
        """Parse ``prompt``; never raises on odd text (see ``Parser``)."""
        tagger = self._tagger()
        text = str(prompt)
        body = text[:MAX_PARSE_CHARS]
        raw: list[Token] = []
        for s0, s1 in split_sentences(body):
            spans = [(s0 + a, s0 + b) for a, b in tokenize_spans(body[s0:s1])]
            if not spans:
                continue
            words = [body[a:b] for a, b in spans]
            tagged = list(tagger.tag(words))
            if len(tagged) != len(words):
                raise ValueError(f"the tagger returned {len(tagged)} tags for {len(words)} words")
            tags = upos_tags(words, [str(tag) for _, tag in tagged])
            offset = len(raw)
            for (a, b), tag, (head, dep) in zip(spans, tags, find_heads(words, tags), strict=True):
                raw.append(
                    Token(
                        text=body[a:b],
                        start=a,
                        end=b,
                        pos=tag,
                        head=head + offset if head != -1 else -1,
                        dep=dep,
                        lemma=body[a:b].lower(),
                    )
                )
        return build_tree(text, raw, parser="nltk")
