"""Parser-independent tree building, phrase grouping and Algorithm 1 (docs/design.md 6.3).

- ``build_tree`` turns any parser's raw tokens (heads indexing the same list, ``-1`` for a
  root, possibly several roots) into a valid ``PromptTree``: whitespace tokens are dropped,
  broken heads and cycles are repaired, and sentence roots are joined under the first root
  with dep ``"parataxis"``. Every parser ends with it, so a parser can never emit a tree
  that ``PromptTree`` rejects.
- ``extract_phrases`` groups tokens around their nouns and finds each phrase's ancestor.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Sequence

from grefine_kit.parsers.stopwords import STOPWORDS, is_stopword
from grefine_kit.types import Phrase, PromptTree, Token

__all__ = [
    "ANCESTOR_RULES",
    "MAX_PARSE_CHARS",
    "NOUN_POS",
    "build_tree",
    "extract_phrases",
    "is_punctuation",
    "phrase_text",
]

#: Parsers parse at most this many characters of a prompt (the rest is ignored, never an error).
MAX_PARSE_CHARS = 10_000

NOUN_POS = frozenset({"NOUN", "PROPN"})
#: how ``extract_phrases`` picks a phrase's ancestor at a phrase boundary head -> child:
#: "phrase-head" (ours: the phrase holding the head; the first such edge breadth-first wins) or
#: "noun-ancestor" (Algorithm 1 as printed, and the released script: the phrase of the child's
#: first NOUN/PROPN ancestor, none = itself; a later boundary edge overwrites an earlier one)
ANCESTOR_RULES = ("phrase-head", "noun-ancestor")
_COMPOUND_DEPS = frozenset({"compound", "flat"})
_GLUE = frozenset("-\u2010\u2011'\u2019")  # intra-word hyphens/apostrophes kept in phrase texts


def is_punctuation(text: str) -> bool:
    """True for a non-empty token made only of punctuation, math signs or modifier symbols
    (Unicode P*, Sm, Sk: "!", "--", "``", "<"); emoji, currency signs and letters are not."""
    s = text.strip()
    return bool(s) and all(
        unicodedata.category(c)[0] == "P" or unicodedata.category(c) in ("Sm", "Sk") for c in s
    )


def build_tree(text: str, tokens: Sequence[Token], parser: str = "") -> PromptTree:
    """A valid ``PromptTree`` from raw parser tokens.

    ``tokens[i].head`` indexes ``tokens`` (``-1`` = a sentence root). Whitespace-only tokens are
    removed and their children re-attached to the removed token's head; heads out of range or
    pointing at themselves become roots; a cycle is cut at its first token in text order; all
    roots after the first are attached to the first with dep ``"parataxis"``.
    """
    n = len(tokens)
    heads = [t.head if 0 <= t.head < n and t.head != i else -1 for i, t in enumerate(tokens)]
    keep = [bool(t.text.strip()) for t in tokens]

    def kept_head(i: int) -> int:
        h, seen = heads[i], {i}
        while h != -1 and not keep[h] and h not in seen:
            seen.add(h)
            h = heads[h]
        return -1 if h in seen else h

    new_heads = [kept_head(i) if keep[i] else -1 for i in range(n)]
    # cut cycles: walk up from each token; a revisited token closes a cycle
    for i in range(n):
        if not keep[i]:
            continue
        path: list[int] = []
        on_path: set[int] = set()
        j = i
        while j != -1 and j not in on_path:
            on_path.add(j)
            path.append(j)
            j = new_heads[j]
        if j != -1:  # cycle: cut at the earliest (text order) token of the cycle
            cycle = path[path.index(j) :]
            new_heads[min(cycle)] = -1

    index = {old: new for new, old in enumerate(i for i in range(n) if keep[i])}
    roots = [i for i in range(n) if keep[i] and new_heads[i] == -1]
    first_root = roots[0] if roots else -1
    out: list[Token] = []
    for i, t in enumerate(tokens):
        if not keep[i]:
            continue
        h, dep = new_heads[i], t.dep
        if h == -1 and i != first_root:
            h, dep = first_root, "parataxis"
        out.append(
            Token(
                text=t.text,
                start=t.start,
                end=t.end,
                pos=t.pos,
                head=index[h] if h != -1 else -1,
                dep=dep,
                lemma=t.lemma,
            )
        )
    # cast: mypy's attrs plugin cannot type the tuple converter of PromptTree.tokens
    return PromptTree(text=text, tokens=out, parser=parser)


def _base_dep(dep: str) -> str:
    return dep.split(":", 1)[0].lower()


def _compound_centre(tree: PromptTree, i: int) -> int | None:
    """The noun that noun ``i`` is a compound/flat part of (following chains), or None."""
    toks = tree.tokens
    j, seen = i, set()
    while (
        toks[j].pos in NOUN_POS
        and _base_dep(toks[j].dep) in _COMPOUND_DEPS
        and toks[j].head != -1
        and toks[toks[j].head].pos in NOUN_POS
        and j not in seen
    ):
        seen.add(j)
        j = toks[j].head
    return None if j == i else j


def _distances(adj: list[list[int]], src: int) -> list[int]:
    dist = [-1] * len(adj)
    dist[src] = 0
    q = deque([src])
    while q:
        u = q.popleft()
        for v in adj[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                q.append(v)
    return dist


def phrase_text(tree: PromptTree, indices: Sequence[int], stopwords: frozenset[str] = STOPWORDS) -> str:
    """The phrase's tokens in text order without stopwords and lone punctuation.

    Tokens written together in the prompt (no gap: "T-shirt" split as T, -, shirt) are glued
    back without a space, and a hyphen/apostrophe glued on both sides to kept tokens stays.
    """
    toks = tree.tokens
    order = sorted(indices)
    kept = [i for i in order if not is_stopword(toks[i].text, stopwords) and not is_punctuation(toks[i].text)]
    kept_set = set(kept)
    # glue punctuation such as the "-" in "T-shirt" when both neighbours are kept and adjacent
    for k in range(1, len(order) - 1):
        a, p, b = order[k - 1], order[k], order[k + 1]
        if (
            toks[p].text in _GLUE
            and a in kept_set
            and b in kept_set
            and toks[a].end == toks[p].start
            and toks[p].end == toks[b].start
        ):
            kept_set.add(p)
    kept = [i for i in order if i in kept_set]
    parts: list[str] = []
    prev: int | None = None
    for i in kept:
        glued = prev is not None and i == prev + 1 and toks[prev].end == toks[i].start
        if glued:
            parts[-1] += toks[i].text
        else:
            parts.append(toks[i].text)
        prev = i
    return " ".join(parts)


def extract_phrases(
    tree: PromptTree, stopwords: frozenset[str] = STOPWORDS, ancestor_rule: str = "phrase-head"
) -> list[Phrase]:
    """Group the tree's tokens into noun phrases and link each to its ancestor (docs/design.md 6.3).

    Centres are the nouns (NOUN/PROPN, not lone punctuation) that are not a ``compound``/``flat``
    part of another noun; such parts join the noun they modify. Every other token joins the
    centre nearest to it by tree path length; a tie goes to the nearest tied centre before it in
    the text, else the nearest after it. The ancestor (Algorithm 1, read as the parent in the
    tree of phrases contracted to nodes) is found breadth-first from the root: the first edge
    from a token in phrase Q to a child in phrase P != Q makes Q the ancestor of P. The root's
    phrase is its own ancestor. ``ancestor_rule = "noun-ancestor"`` reads Algorithm 1 literally
    instead: at each such edge (breadth-first, later edges overwriting earlier ones) P gets the
    phrase of the child's first NOUN/PROPN ancestor token, and keeps itself when there is none
    ("A dog chases a ball": ours ball -> dog, literal ball -> ball).

    Returns phrases ordered by their noun's position in the text; ``Phrase.ancestor`` indexes
    this list. A prompt without nouns gives ``[]``.
    """
    if ancestor_rule not in ANCESTOR_RULES:
        raise ValueError(f"ancestor_rule must be one of {ANCESTOR_RULES}; got {ancestor_rule!r}")
    toks = tree.tokens
    n = len(toks)
    if n == 0:
        return []
    compound_of: dict[int, int] = {}
    centres: list[int] = []
    for i, t in enumerate(toks):
        if t.pos not in NOUN_POS or is_punctuation(t.text):
            continue
        c = _compound_centre(tree, i)
        if c is None:
            centres.append(i)
        else:
            compound_of[i] = c
    if not centres:
        return []
    # a compound chain may end on a noun that is lone punctuation (odd parses): make it a centre
    for c in set(compound_of.values()) - set(centres):
        centres.append(c)
    centres.sort()

    adj: list[list[int]] = [[] for _ in range(n)]
    for i, t in enumerate(toks):
        if t.head != -1:
            adj[i].append(t.head)
            adj[t.head].append(i)
    dist = {c: _distances(adj, c) for c in centres}

    owner = [-1] * n
    for i in range(n):
        if i in dist:
            owner[i] = i
        elif i in compound_of:
            owner[i] = compound_of[i]
        else:
            best = min(dist[c][i] for c in centres)
            tied = [c for c in centres if dist[c][i] == best]
            before = [c for c in tied if c < i]
            owner[i] = max(before) if before else min(tied)

    slot = {c: k for k, c in enumerate(centres)}
    members: list[list[int]] = [[] for _ in centres]
    for i in range(n):
        members[slot[owner[i]]].append(i)

    root = tree.root
    assert root is not None  # n > 0 and PromptTree guarantees one root
    ancestor: list[int | None] = [None] * len(centres)
    root_phrase = slot[owner[root]]
    ancestor[root_phrase] = root_phrase
    queue = deque([root])
    children: list[list[int]] = [[] for _ in range(n)]
    for i, t in enumerate(toks):
        if t.head != -1:
            children[t.head].append(i)
    while queue:
        obj = queue.popleft()
        for child in children[obj]:
            queue.append(child)
            p, q = slot[owner[child]], slot[owner[obj]]
            if p == q:
                continue
            if ancestor_rule == "phrase-head":
                if ancestor[p] is None:
                    ancestor[p] = q
                continue
            j = obj  # the child's ancestors, nearest first
            while j != -1 and not (toks[j].pos in NOUN_POS and not is_punctuation(toks[j].text)):
                j = toks[j].head
            ancestor[p] = slot[owner[j]] if j != -1 else p

    phrases = []
    for k, c in enumerate(centres):
        anc = ancestor[k]
        text = phrase_text(tree, members[k], stopwords) or toks[c].text
        phrases.append(
            Phrase(
                text=text,
                noun=c,
                noun_text=toks[c].text,
                tokens=members[k],
                ancestor=k if anc is None else anc,
            )
        )
    return phrases
