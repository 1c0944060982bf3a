"""NLTK parser (registry name ``nltk``): tokenizer + POS tagger + chunk grammar + head rules.

NLTK has no dependency parser, so heads come from documented rules over a RegexpParser chunking:

- sentences: split after ``.``/``!``/``?`` followed by whitespace, except after common
  abbreviations ("Mr.", "Dr.", "e.g.", single initials); words: ``TreebankWordTokenizer``
  (no data files needed);
- chunks: ``NP = det/poss/num* (adj|VBN|num|noun)* noun``, ``PP = IN|TO + NP``;
- inside an NP the last noun is the head; determiners (det), possessive pronouns
  (nmod:poss), numbers (nummod), adjectives and participles (amod) and earlier nouns
  (compound) attach to it;
- root: the first verb outside a chunk, else the head of the first NP, else the first
  non-punctuation token;
- an NP before the first verb is its nsubj, an NP after a verb the obj of the nearest verb
  before it; an NP right after a conjunction is a conj of the previous NP, in a PP or not
  ("cat and dog", "with a suit and tie"),
  and the conjunction its cc; "X 's Y" makes X an nmod:poss of Y and "'s" a case of X; other
  verbless NPs attach to the root (dep);
- a PP's preposition attaches (prep) to the nearest verb or noun before it, its NP head to
  the preposition (pobj), like spaCy's English models;
- other verbs: conj after a conjunction, acl right after a noun, else dep of the root;
  adverbs: advmod of the nearest verb; modals/"to"/particles: aux of the next verb;
  punctuation: punct of the root; anything else: dep of the root.

Penn Treebank tags are mapped to Universal POS; lemmas are the lower-cased words.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import attrs

from grefine_kit.errors import MissingDependencyError
from grefine_kit.parsers.tree import MAX_PARSE_CHARS, build_tree
from grefine_kit.types import PromptTree, Token

__all__ = ["CHUNK_GRAMMAR", "NltkParser", "penn_to_upos", "split_sentences", "tokenize_spans"]

CHUNK_GRAMMAR = r"""
NP: {<DT|PDT|PRP\$|WP\$|CD>*<JJ.*|VBN|CD|NN.*>*<NN.*>}
PP: {<IN|TO><NP>}
"""

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

_TAGGER_CACHE: dict[str, Any] = {}
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


def _default_tagger() -> Any:
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


def _chunk(tags: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Units ``(label, token indices)`` with label NP, PP or "" (a lone token)."""
    import nltk

    # sanitise tags so odd tagger output cannot break the chunk-string syntax
    safe = [re.sub(r"[^A-Za-z$]", "", t) or "X" for t in tags]
    tree = nltk.RegexpParser(CHUNK_GRAMMAR).parse([(str(i), t) for i, t in enumerate(safe)])
    units: list[tuple[str, list[int]]] = []
    for node in tree:
        if isinstance(node, nltk.Tree):
            units.append((str(node.label()), [int(w) for w, _ in node.leaves()]))
        else:
            units.append(("", [int(node[0])]))
    return units


def _heads_for_sentence(tags: Sequence[str]) -> list[tuple[int, str]]:
    """``(head, dep)`` per token of one sentence (head -1 = root), by the module's rules."""
    n = len(tags)
    out: list[tuple[int, str]] = [(-1, "")] * n
    units = _chunk(tags)
    is_verb = [t.startswith("VB") for t in tags]
    np_head: dict[int, int] = {}  # token -> head of its NP
    np_heads: list[int] = []
    in_chunk = [False] * n
    for label, idx in units:
        if label:
            for i in idx:
                in_chunk[i] = True
        nouns = [i for i in idx if tags[i].startswith("NN")] if label else []
        if nouns:
            head = nouns[-1]
            np_heads.append(head)
            for i in idx:
                if tags[i] not in ("IN", "TO"):
                    np_head[i] = head
    verbs = [i for i in range(n) if is_verb[i] and not in_chunk[i]]
    # "X 's Y": X is a possessor and never the root
    possessors = {
        units[u][1][-1]
        for u in range(len(units) - 2)
        if units[u][0] == "NP" and tags[units[u + 1][1][0]] == "POS" and units[u + 2][0] == "NP"
    }
    heads_ok = [h for h in np_heads if h not in possessors] or np_heads
    content = [i for i in range(n) if any(c.isalnum() for c in tags[i]) and tags[i] not in ("SYM",)]
    root = verbs[0] if verbs else (heads_ok[0] if heads_ok else (content[0] if content else 0))

    def prev_anchor(i: int) -> int:
        cands = [j for j in range(i) if (j in verbs or j in np_heads)]
        return cands[-1] if cands else root

    def nearest_verb(i: int, before: bool | None = None) -> int:
        cands = [v for v in verbs if (before is None or (v < i) == before) and v != i]
        return min(cands, key=lambda v: (abs(v - i), v)) if cands else root

    def set_head(i: int, h: int, dep: str) -> None:
        out[i] = (-1, "ROOT") if i == root else ((h if h != i else root), dep)

    prev_np: int | None = None
    for u, (label, idx) in enumerate(units):
        first = idx[0]
        if label == "NP" or (label == "PP" and len(idx) > 1):
            head = np_head.get(idx[-1], idx[-1])
            for i in idx:  # NP-internal attachments
                if i == head or tags[i] in ("IN", "TO"):
                    continue
                t = tags[i]
                dep = (
                    "det"
                    if t in ("DT", "PDT")
                    else "nmod:poss"
                    if t in ("PRP$", "WP$")
                    else "nummod"
                    if t == "CD"
                    else "compound"
                    if t.startswith("NN")
                    else "amod"
                )
                set_head(i, head, dep)
            if label == "PP":
                prep = first
                anchor = prev_anchor(prep)
                if anchor == head or prep == root:
                    set_head(prep, head, "case")
                else:
                    set_head(prep, anchor, "prep")
                set_head(head, prep, "pobj")
                prev_np = head
            else:
                nxt = units[u + 1] if u + 1 < len(units) else None
                nxt2 = units[u + 2] if u + 2 < len(units) else None
                before_cc = first > 0 and tags[first - 1] == "CC"
                if nxt and nxt2 and tags[nxt[1][0]] == "POS" and nxt2[0] == "NP":
                    possessed = np_head.get(nxt2[1][-1], nxt2[1][-1])
                    set_head(head, possessed, "nmod:poss")
                elif before_cc and prev_np is not None:
                    set_head(head, prev_np, "conj")
                elif verbs and head < verbs[0]:
                    set_head(head, verbs[0], "nsubj")
                elif verbs:
                    set_head(head, nearest_verb(head, before=True), "obj")
                else:
                    set_head(head, root, "dep")
                prev_np = head
            continue
        i = first
        t = tags[i]
        nxt_head = None
        if u + 1 < len(units):
            nl, nidx = units[u + 1]
            nxt_head = np_head.get(nidx[-1], nidx[-1]) if nl else nidx[0]
        if t == "CC":
            set_head(i, nxt_head if nxt_head is not None else root, "cc")
        elif t == "POS":
            set_head(i, i - 1 if i > 0 else root, "case")
        elif is_verb[i]:
            if i > 0 and tags[i - 1] == "CC":
                set_head(i, nearest_verb(i, before=True), "conj")
            elif i > 0 and (i - 1) in np_heads:
                set_head(i, i - 1, "acl")
            else:
                set_head(i, root, "dep")
        elif t.startswith("RB"):
            set_head(i, nearest_verb(i), "advmod")
        elif t in ("MD", "TO", "RP"):
            later = [v for v in verbs if v > i]
            set_head(i, later[0] if later else root, "aux")
        elif penn_to_upos(t) == "PUNCT":
            set_head(i, root, "punct")
        elif t.startswith("JJ"):
            set_head(i, root if verbs else (prev_np if prev_np is not None else root), "amod")
        elif t in ("PRP", "EX") and verbs and i < verbs[0]:
            set_head(i, verbs[0], "nsubj")
        else:
            set_head(i, root, "dep")
    out[root] = (-1, "ROOT")
    return out


@attrs.frozen
class NltkParser:
    """Parse prompts with NLTK: Treebank tokenizer, POS tagger, chunk grammar, head rules.

    Options:
        tagger: any object with ``tag(words) -> [(word, penn_tag), ...]`` (e.g. a trained
            ``nltk.tag.PerceptronTagger``). None (default) loads NLTK's averaged perceptron
            tagger, whose data comes from ``nltk.download('averaged_perceptron_tagger_eng')``.
    """

    tagger: object | None = attrs.field(default=None, eq=False, repr=False)

    def _tagger(self) -> Any:
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
            tags = [str(tag) for _, tag in tagged]
            offset = len(raw)
            for (a, b), tag, (head, dep) in zip(spans, tags, _heads_for_sentence(tags), strict=True):
                raw.append(
                    Token(
                        text=body[a:b],
                        start=a,
                        end=b,
                        pos=penn_to_upos(tag),
                        head=head + offset if head != -1 else -1,
                        dep=dep,
                        lemma=body[a:b].lower(),
                    )
                )
        return build_tree(text, raw, parser="nltk")
