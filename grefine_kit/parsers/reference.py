"""The released AQ-Map script's prompt analysis (parser mode ``reference``), re-derived from reading it.

Q-Future/Q-Refine ``AQ-Map.py`` (commit 1bbf1e2) splits a prompt for alignment scoring as follows;
``analyse_reference`` does the same on a spaCy pipeline (the script uses ``en_core_web_sm``):

1. **parts**: the noun chunks of the spaCy doc, found left to right in the prompt with
   ``str.find`` from the end of the previous chunk; part k runs from the start of chunk k
   (the first part from the prompt's start) to the start of chunk k + 1, the last part to the
   end; each part is stripped. Zero or one chunk: the whole (unstripped) prompt is one part.
2. **filtered_parts**: each part split at single spaces, dropping the words that are in NLTK's
   English stopword list (case-sensitive: "A" stays) and the words that are a *substring* of
   ``string.punctuation`` (so the empty word and "," go, "cat," stays), rejoined with spaces.
3. **noun_parts**: per filtered part, the last word whose part-of-speech is NOUN or PROPN, ""
   if none. The POS of a word is looked up by its text in a table of the doc's tokens (a text
   seen twice keeps the POS of its last occurrence).
4. **phrase_to_parent**: every filtered part is its own parent; then, breadth-first from the
   first sentence's root, every dependency edge head -> child whose two tokens lie in different
   parts (each token's part is looked up by its text in the parts re-tokenised one by one, the
   last part holding a text wins) gives the child's part the part of the child's first
   NOUN/PROPN ancestor (by the same POS table); a later edge overwrites an earlier one.

Where the script crashes, this module goes on with a stated rule and records a note:

- a filtered word that is no token text ("cat," of "A cat, a dog"; the script: ``KeyError``) is
  looked up again with leading/trailing punctuation stripped, and the *stripped* word is the
  noun if it is a NOUN/PROPN; a word still unknown (the empty filtered part) is not a noun;
- a token whose text no re-tokenised part holds (the script: ``KeyError``) belongs to the part
  whose character span holds the token;
- an empty prompt (the script: ``IndexError`` on the missing first sentence) gives one part "".
"""

from __future__ import annotations

import string
from collections import deque
from typing import Any

import attrs

__all__ = [
    "NLTK_ENGLISH_STOPWORDS",
    "ReferenceAnalysis",
    "analyse_reference",
    "filter_reference_parts",
    "partition_at_chunks",
]

#: NLTK's English stopword list (the 179 words of nltk_data's ``stopwords/english`` the script
#: loads with ``stopwords.words('english')``); lower case, compared case-sensitively as there.
NLTK_ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
he him his himself she she's her hers herself it it's its itself they them their theirs themselves
what which who whom this that that'll these those am is are was were be been being have has had
having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don don't should should've
now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn
shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split()  # noqa: SIM905 (a word list reads better as text)
)

_NOUNS = ("NOUN", "PROPN")


@attrs.frozen
class ReferenceAnalysis:
    """The script's analysis of one prompt, named as the script names it.

    ``parts``, ``filtered_parts`` and ``noun_parts`` are parallel lists; ``phrase_to_parent``
    maps a filtered part to its parent's filtered part. ``spans`` are the parts' ``(start, end)``
    character offsets in the prompt; ``notes`` say where the script would have crashed and what
    was done instead (empty when the script runs as is).
    """

    parts: tuple[str, ...]
    filtered_parts: tuple[str, ...]
    noun_parts: tuple[str, ...]
    phrase_to_parent: dict[str, str]
    spans: tuple[tuple[int, int], ...]
    notes: tuple[str, ...] = ()


def _stripped_span(text: str, start: int, end: int) -> tuple[int, int]:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    return start + lead, start + lead + len(piece.strip())


def partition_at_chunks(
    sentence: str, chunks: list[str], starts: list[int] | None = None
) -> tuple[list[str], list[tuple[int, int]]]:
    """Step 1: ``(parts, spans)``. ``starts`` (the chunks' own offsets) is used only where
    ``str.find`` misses a chunk (the script asserts there)."""
    if len(chunks) <= 1:
        return [sentence], [(0, len(sentence))]
    cuts: list[int] = []
    begin = 0
    for k, chunk in enumerate(chunks):
        found = sentence.find(chunk, begin)
        if found == -1:
            found = starts[k] if starts is not None else begin
        cuts.append(found)
        if k < len(chunks) - 1:
            begin = found + len(chunk)
    bounds = [0, *cuts[1:], len(sentence)]
    spans = [_stripped_span(sentence, bounds[k], bounds[k + 1]) for k in range(len(chunks))]
    return [sentence[a:b] for a, b in spans], spans


def filter_reference_parts(parts: list[str]) -> list[str]:
    """Step 2: drop NLTK stopwords (case-sensitive) and substrings of ``string.punctuation``."""
    stop, punct = NLTK_ENGLISH_STOPWORDS, string.punctuation
    return [" ".join(w for w in part.split(" ") if w not in stop and w not in punct) for part in parts]


def _noun_of(filtered: str, pos_of: dict[str, str], notes: list[str]) -> str:
    noun = ""
    for word in filtered.split(" "):
        pos = pos_of.get(word)
        if pos is None:
            bare = word.strip(string.punctuation)
            pos = pos_of.get(bare)
            notes.append(
                f"word {word!r} of filtered part {filtered!r} is no token (the script raises KeyError): "
                + (f"looked up as {bare!r} ({pos})" if pos is not None else "not a noun")
            )
            word = bare
        if pos in _NOUNS:
            noun = word
    return noun


def analyse_reference(nlp: Any, prompt: str) -> ReferenceAnalysis:
    """Steps 1-4 on ``prompt`` with the spaCy pipeline ``nlp`` (see the module docstring)."""
    doc = nlp(prompt)
    chunks = list(doc.noun_chunks)
    notes: list[str] = []
    parts, spans = partition_at_chunks(prompt, [c.text for c in chunks], [c.start_char for c in chunks])
    filtered = filter_reference_parts(parts)
    pos_of = {t.text: t.pos_ for t in doc}
    nouns = [_noun_of(f, pos_of, notes) for f in filtered]

    parent = {f: f for f in filtered}
    word_part: dict[str, str] = {}
    for part, f in zip(parts, filtered, strict=True):
        for tok in nlp(part.strip()):
            word_part[tok.text] = f

    def part_of(token: Any) -> str:
        if token.text in word_part:
            return word_part[token.text]
        k = next((k for k, (a, b) in enumerate(spans) if a <= token.idx < max(b, a + 1)), len(spans) - 1)
        notes.append(
            f"token {token.text!r} is in no re-tokenised part (the script raises KeyError): "
            f"taken as part {filtered[k]!r} by its position"
        )
        return filtered[k]

    sentences = list(doc.sents)
    if not sentences:
        notes.append("no sentence (the script raises IndexError): no parents")
    else:
        queue = deque([sentences[0].root])
        while queue:
            node = queue.popleft()
            part_of(node)  # the script looks the node up (and crashes on an unknown text) here
            for child in node.children:
                queue.append(child)
                if part_of(node) == part_of(child):
                    continue
                for anc in child.ancestors:
                    if pos_of.get(anc.text) in _NOUNS:
                        parent[part_of(child)] = part_of(anc)
                        break
    return ReferenceAnalysis(
        parts=tuple(parts),
        filtered_parts=tuple(filtered),
        noun_parts=tuple(nouns),
        phrase_to_parent=parent,
        spans=tuple(spans),
        notes=tuple(dict.fromkeys(notes)),
    )
