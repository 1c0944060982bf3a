"""Parser-independent tree building, phrase grouping and Algorithm 1 on hand-built trees."""

from __future__ import annotations

import random

import pytest

from grefine_kit.parsers.stopwords import STOPWORDS, is_stopword
from grefine_kit.parsers.tree import build_tree, extract_phrases, is_punctuation, phrase_text
from grefine_kit.types import PromptTree, Token


def make(text: str, spec: list[tuple[str, str, int, str]]) -> PromptTree:
    """Tokens ``(word, upos, head, dep)`` located left to right in ``text``; head -1 = root."""
    toks, pos = [], 0
    for word, upos, head, dep in spec:
        start = text.index(word, pos)
        pos = start + len(word)
        toks.append(Token(text=word, start=start, end=pos, pos=upos, head=head, dep=dep, lemma=word.lower()))
    return build_tree(text, toks, parser="hand")


FIG5 = "Mr. Beans wearing sun glasses with blue doctor suit and stripe tie"
# spaCy en_core_web_sm 3.8's parse, as recorded in docs/design.md 6.3
FIG5_SPACY = [
    ("Mr.", "PROPN", 1, "compound"),
    ("Beans", "PROPN", 2, "nsubj"),
    ("wearing", "VERB", -1, "ROOT"),
    ("sun", "NOUN", 4, "compound"),
    ("glasses", "NOUN", 2, "dobj"),
    ("with", "ADP", 2, "prep"),
    ("blue", "ADJ", 7, "amod"),
    ("doctor", "NOUN", 8, "compound"),
    ("suit", "NOUN", 5, "pobj"),
    ("and", "CCONJ", 8, "cc"),
    ("stripe", "ADJ", 11, "amod"),
    ("tie", "NOUN", 2, "dobj"),
]


def test_figure5_phrases_nouns_and_ancestors() -> None:
    phrases = extract_phrases(make(FIG5, FIG5_SPACY))
    assert [p.text for p in phrases] == ["Mr. Beans wearing", "sun glasses", "blue doctor suit", "stripe tie"]
    assert [p.noun_text for p in phrases] == ["Beans", "glasses", "suit", "tie"]
    assert [p.ancestor for p in phrases] == [0, 0, 0, 0]  # root phrase is its own ancestor
    # "with" and "and" belong to the suit phrase (nearest centre) but are stopwords in its text
    assert phrases[2].tokens == (5, 6, 7, 8, 9)
    assert sorted(i for p in phrases for i in p.tokens) == list(range(12))


def test_ancestor_chain_follows_the_phrase_tree() -> None:
    # "a cat on a mat near a door": mat <- cat, door <- mat (nested PPs, spaCy style)
    text = "a cat on a mat near a door"
    tree = make(
        text,
        [
            ("a", "DET", 1, "det"),
            ("cat", "NOUN", -1, "ROOT"),
            ("on", "ADP", 1, "prep"),
            ("a", "DET", 4, "det"),
            ("mat", "NOUN", 2, "pobj"),
            ("near", "ADP", 4, "prep"),
            ("a", "DET", 7, "det"),
            ("door", "NOUN", 5, "pobj"),
        ],
    )
    phrases = extract_phrases(tree)
    assert [p.noun_text for p in phrases] == ["cat", "mat", "door"]
    assert [p.ancestor for p in phrases] == [0, 0, 1]
    assert [p.text for p in phrases] == ["cat", "mat", "door"]


def test_tie_goes_to_the_nearest_centre_before_then_after() -> None:
    # "dog runs cat": "runs" is 1 step from both nouns -> the one before it (dog)
    tree = make(
        "dog runs cat", [("dog", "NOUN", 1, "nsubj"), ("runs", "VERB", -1, "ROOT"), ("cat", "NOUN", 1, "obj")]
    )
    assert [p.tokens for p in extract_phrases(tree)] == [(0, 1), (2,)]
    # "runs dog cat": no centre before "runs" -> the nearest after it (dog)
    tree = make(
        "runs dog cat", [("runs", "VERB", -1, "ROOT"), ("dog", "NOUN", 0, "obj"), ("cat", "NOUN", 0, "obj")]
    )
    assert [p.tokens for p in extract_phrases(tree)] == [(0, 1), (2,)]
    # nearest before wins over a farther one before: "cat dog runs big" with runs->{cat, dog}
    tree = make(
        "cat dog runs big",
        [
            ("cat", "NOUN", 2, "nsubj"),
            ("dog", "NOUN", 2, "obj"),
            ("runs", "VERB", -1, "ROOT"),
            ("big", "ADJ", 2, "advmod"),
        ],
    )
    assert [p.noun_text for p in extract_phrases(tree)] == ["cat", "dog"]
    assert extract_phrases(tree)[1].tokens == (1, 2, 3)


def test_compound_chains_and_flat_join_their_noun() -> None:
    text = "New York city hall"
    tree = make(
        text,
        [
            ("New", "PROPN", 1, "compound"),
            ("York", "PROPN", 2, "compound"),
            ("city", "NOUN", 3, "compound"),
            ("hall", "NOUN", -1, "ROOT"),
        ],
    )
    (phrase,) = extract_phrases(tree)
    assert phrase.text == "New York city hall" and phrase.noun_text == "hall"
    # UD "flat": the name's first word is the head
    tree = make(
        "John Smith smiles",
        [("John", "PROPN", 2, "nsubj"), ("Smith", "PROPN", 0, "flat"), ("smiles", "VERB", -1, "root")],
    )
    (phrase,) = extract_phrases(tree)
    assert phrase.noun_text == "John" and phrase.text == "John Smith smiles"


def test_possessive_noun_is_its_own_phrase() -> None:
    tree = make(
        "dog's bone",
        [("dog", "NOUN", 2, "nmod:poss"), ("'s", "PART", 0, "case"), ("bone", "NOUN", -1, "ROOT")],
    )
    phrases = extract_phrases(tree)
    assert [(p.text, p.ancestor) for p in phrases] == [("dog", 1), ("bone", 1)]


def test_no_noun_and_empty_give_no_phrases() -> None:
    assert (
        extract_phrases(
            make("running quickly", [("running", "VERB", -1, "ROOT"), ("quickly", "ADV", 0, "advmod")])
        )
        == []
    )
    assert extract_phrases(build_tree("", [])) == []
    # a noun tagged on pure punctuation is not a centre
    assert extract_phrases(make("!!", [("!", "NOUN", -1, "ROOT"), ("!", "PUNCT", 0, "punct")])) == []


def test_phrase_text_drops_stopwords_and_punctuation_but_glues_words() -> None:
    text = "a T-shirt, with the cat's face"
    tree = make(
        text,
        [
            ("a", "DET", 3, "det"),
            ("T", "NOUN", 3, "compound"),
            ("-", "PUNCT", 3, "punct"),
            ("shirt", "NOUN", -1, "ROOT"),
            (",", "PUNCT", 3, "punct"),
            ("with", "ADP", 3, "prep"),
            ("the", "DET", 7, "det"),
            ("cat", "NOUN", 9, "poss"),
            ("'s", "PART", 7, "case"),
            ("face", "NOUN", 5, "pobj"),
        ],
    )
    assert phrase_text(tree, range(len(tree.tokens))) == "T-shirt cat face"
    assert phrase_text(tree, [0, 5, 6]) == ""
    phrases = extract_phrases(tree)
    assert [p.text for p in phrases] == ["T-shirt", "cat", "face"]


def test_stopwords() -> None:
    assert is_stopword("The") and is_stopword("’s") and is_stopword("with")
    for word in ("two", "red", "no", "not", "without", "left", "top", "cat"):
        assert not is_stopword(word), word
    assert "one" not in STOPWORDS  # a count matters for alignment
    assert (
        is_punctuation("!!") and is_punctuation("—") and not is_punctuation("🍮") and not is_punctuation("a-")
    )


def test_build_tree_repairs_raw_parser_output() -> None:
    text = "a cat.  a dog"
    raw = [
        Token("a", 0, 1, "DET", 1, "det"),
        Token("cat", 2, 5, "NOUN", -1, "ROOT"),
        Token(".", 5, 6, "PUNCT", 1, "punct"),
        Token("  ", 6, 8, "SPACE", 5, "dep"),  # whitespace token that is someone's head
        Token("a", 8, 9, "DET", 3, "det"),  # attached to the whitespace token
        Token("dog", 10, 13, "NOUN", -1, "ROOT"),
    ]
    tree = build_tree(text, raw)
    assert [t.text for t in tree.tokens] == ["a", "cat", ".", "a", "dog"]
    assert tree.tokens[4].head == 1 and tree.tokens[4].dep == "parataxis"  # second sentence root joined
    assert tree.tokens[3].head == 4  # re-attached to the whitespace token's head (dog)
    # a cycle and an out-of-range head are repaired into one valid tree
    cyc = [Token("x", 0, 1, "NOUN", 1), Token("y", 2, 3, "NOUN", 0), Token("z", 4, 5, "NOUN", 99)]
    tree = build_tree("x y z", cyc)
    assert tree.root == 0 and tree.tokens[2].head == 0 and tree.tokens[1].head == 0


def test_random_trees_give_a_consistent_phrase_forest() -> None:
    rng = random.Random(0)
    tags = ["NOUN", "PROPN", "VERB", "ADJ", "ADP", "DET", "PUNCT", "CCONJ"]
    deps = ["compound", "flat", "amod", "nsubj", "obj", "dep", "compound:prt"]
    for _ in range(300):
        n = rng.randint(1, 14)
        perm = list(range(n))
        rng.shuffle(perm)
        heads = [-1] * n
        for k in range(1, n):  # random tree: each node's head comes earlier in a random order
            heads[perm[k]] = perm[rng.randrange(k)]
        words = [f"w{i}" for i in range(n)]
        text = " ".join(words)
        starts = [sum(len(w) + 1 for w in words[:i]) for i in range(n)]
        toks = [
            Token(w, s, s + len(w), rng.choice(tags), heads[i], rng.choice(deps))
            for i, (w, s) in enumerate(zip(words, starts, strict=True))
        ]
        tree = build_tree(text, toks)
        phrases = extract_phrases(tree)
        nouns = [i for i, t in enumerate(tree.tokens) if t.pos in ("NOUN", "PROPN")]
        assert bool(phrases) == bool(nouns)
        if not phrases:
            continue
        covered = sorted(i for p in phrases for i in p.tokens)
        assert covered == list(range(n)), "every token in exactly one phrase"
        roots = [k for k, p in enumerate(phrases) if p.ancestor == k]
        assert len(roots) == 1 and tree.root in phrases[roots[0]].tokens
        for k in range(len(phrases)):  # every ancestor chain ends at the root phrase, no cycles
            seen, j = set(), k
            while phrases[j].ancestor != j:
                assert j not in seen
                seen.add(j)
                j = phrases[j].ancestor
            assert j == roots[0]
        assert all(p.text for p in phrases)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_trees(n: int) -> None:
    toks = [Token("cat", 0, 3, "NOUN", -1, "ROOT")][:n]
    phrases = extract_phrases(build_tree("cat"[: 3 * n], toks))
    assert [(p.text, p.ancestor) for p in phrases] == [("cat", 0)][:n]
