"""The head-finding engine shared by the ``rules`` and ``nltk`` parsers: words + UPOS -> heads.

Neither parser has a statistical dependency model, so both derive heads from the same rules over
noun chunks (the rules are listed in ``rule_parser``'s module docstring and docs/parsers.md):
chunk = det/poss/num* (adj|adv|num|noun)* noun with its last noun the head; a root; ``pobj``,
``poss``, ``conj``/``dobj``, ``acl``, ``prep`` attachments read the way spaCy's English models
parse the paper's Figure 5. The parsers differ only in how they tokenise and tag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["POSSESSIVE_PRONOUNS", "find_heads"]

#: possessive pronouns: they open a chunk like a determiner (``det``/``poss`` of its head)
POSSESSIVE_PRONOUNS = frozenset("my your his her its our their whose".split())  # noqa: SIM905
_PRE = frozenset({"DET", "POSS", "NUM"})
_POSSESSIVE = POSSESSIVE_PRONOUNS


def _verb_above_pobj(
    noun: int, out: list[tuple[int, str]], tags: Sequence[str], obj_of: Mapping[int, int]
) -> int | None:
    """The verb when ``noun`` is the object of a preposition attached to a verb that already has a
    direct object, else None. A conjunct after such a PP is read as the verb's next object, as
    spaCy parses the paper's Figure 5 ("wearing sun glasses with blue doctor suit and stripe tie":
    tie -> dobj -> wearing)."""
    prep, dep = out[noun]
    if dep != "pobj" or prep < 0:
        return None
    verb, prep_dep = out[prep]
    if prep_dep != "prep" or verb < 0 or tags[verb] != "VERB" or verb not in obj_of.values():
        return None
    return verb


def find_heads(words: Sequence[str], tags: Sequence[str]) -> list[tuple[int, str]]:
    """``(head, dep)`` per word of one sentence (head ``-1`` for the sentence root), from the
    words and their Universal POS tags (see the module docstring)."""
    n = len(tags)
    lows = [w.lower().replace("\u2019", "'") for w in words]
    out: list[tuple[int, str]] = [(-1, "dep")] * n
    chunk_of = list(range(n))  # token -> its chunk head (itself outside chunks)
    starts: dict[int, int] = {}  # chunk head -> first token of its chunk
    i = 0
    while i < n:
        j = i
        while j < n and (tags[j] in _PRE or lows[j] in _POSSESSIVE):
            j += 1
        while j < n and tags[j] in ("ADJ", "ADV", "NUM", "NOUN", "PROPN"):
            j += 1
        nouns = [k for k in range(i, j) if tags[k] in ("NOUN", "PROPN")]
        if tags[i] == "PRON" and (lows[i] not in _POSSESSIVE or not nouns):  # a pronoun is its own chunk
            nouns = [i]
        if not nouns:  # no chunk can start inside [i, j) either
            i = max(j, i + 1)
            continue
        head = nouns[-1]
        starts[head] = i
        for k in range(i, head + 1):
            chunk_of[k] = head
        i = head + 1
    possessor = {
        h: chunk_of[h + 2]
        for h in starts
        if h + 2 < n and lows[h + 1] == "'s" and chunk_of[h + 2] in starts and chunk_of[h + 2] != h
    }

    def after_adp(h: int) -> bool:
        return starts[h] > 0 and tags[starts[h] - 1] == "ADP"

    content = [k for k in range(n) if tags[k] not in ("PUNCT", "SYM")]
    heads = [h for h in starts if not after_adp(h) and h not in possessor] or list(starts)
    verbs = [k for k in range(n) if tags[k] == "VERB"]
    root = content[0] if content and tags[content[0]] == "VERB" else (heads or verbs or content or [0])[0]

    def attach(k: int, h: int, dep: str) -> None:
        if k != root:
            out[k] = (h if h != k else root, dep)

    last_noun = last_verb = last_anchor = last_subject = None
    obj_of: dict[int, int] = {}
    first_conj: dict[int, int] = {}
    for k in range(n):
        t, prev = tags[k], (tags[k - 1] if k > 0 else None)
        if chunk_of[k] != k:  # chunk-internal
            h = chunk_of[k]
            if tags[k] == "ADV":
                attach(k, k + 1, "advmod")
            else:
                dep = {"DET": "det", "NUM": "nummod", "ADJ": "amod", "PRON": "poss"}.get(t, "compound")
                attach(k, h, dep)
        elif k in starts:  # a chunk head
            s = starts[k]
            before = lows[s - 1] if s > 0 else ""
            if after_adp(k):
                attach(k, s - 1, "pobj")
            elif k in possessor:
                attach(k, possessor[k], "poss")
            elif before in ("and", "or", ",", "&") and last_noun is not None:
                first = first_conj.get(last_noun, last_noun)
                verb = _verb_above_pobj(first, out, tags, obj_of)
                if verb is not None:  # "wearing glasses with a suit and a tie": a second object
                    attach(k, verb, "dobj")
                    obj_of[k] = verb
                    if tags[s - 1] == "CCONJ":
                        out[s - 1] = (last_noun, "cc")
                else:
                    first_conj[k] = first
                    attach(k, first, "conj")
            elif last_anchor is not None and last_anchor == last_verb:
                attach(k, last_verb, "dobj")
                obj_of[k] = last_verb
            else:
                attach(k, root, "dep")
            if k not in possessor:
                last_noun = last_anchor = k
                # "a photo of an astronaut holding": the noun after "of" is what a verb describes
                if out[k][1] not in ("pobj", "dobj") or (out[k][1] == "pobj" and before == "of"):
                    last_subject = k
        elif t == "VERB":
            if prev == "CCONJ" and last_verb is not None:
                attach(k, last_verb, "conj")
            elif (
                last_noun is not None
            ):  # describes the last chunk that is no object ("a woman in red holding")
                attach(k, last_subject if last_subject is not None else last_noun, "acl")
            else:
                attach(k, root, "dep")
            last_verb = last_anchor = k
        elif t == "ADP":
            if prev == "ADP":
                attach(k, k - 1, "prep")
            elif last_anchor is not None and lows[k] != "of" and last_anchor in obj_of:
                attach(k, obj_of[last_anchor], "prep")
            else:
                attach(k, last_anchor if last_anchor is not None else root, "prep")
        elif t == "CCONJ":
            nxt = next((m for m in range(k + 1, n) if tags[m] not in ("PUNCT", "CCONJ")), None)
            attach(k, chunk_of[nxt] if nxt is not None else root, "cc")
        elif t in ("AUX", "PART") and lows[k] != "'s":
            fallback = last_noun if last_noun is not None else root
            dep = "neg" if lows[k] in ("not", "n't") else "aux"
            attach(k, k + 1 if k + 1 < n and tags[k + 1] == "VERB" else fallback, dep)
        elif lows[k] == "'s":
            attach(k, k - 1 if k > 0 else root, "case")
        elif t == "ADV":
            nxt_ok = k + 1 < n and tags[k + 1] in ("ADJ", "VERB", "ADV")
            attach(k, k + 1 if nxt_ok else (last_verb if last_verb is not None else root), "advmod")
        elif t == "ADJ":
            attach(k, last_noun if last_noun is not None else root, "amod")
        else:
            attach(k, root, "punct" if t == "PUNCT" else "dep")
    out[root] = (-1, "ROOT")
    return out
