"""The paper-literal options: Algorithm 1's ancestor rule, parser mode 'reference', eq. 6's product
and printed cases, eq. 10's denoising-step rule."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from grefine_kit.indicators.alignment_rules import decide_alignment, defect_map
from grefine_kit.indicators.aq_map import AQMap
from grefine_kit.stages.steps import schedule_for, steps_that_run
from grefine_kit.types import Phrase, PromptTree, Token

TINY = {"model": "grefine-tiny", "weights": "random", "device": "cpu"}


def _chase_tree() -> PromptTree:
    # "A dog chases a ball": chases is the root, dog its subject, ball its object
    words = [("A", "DET", 1, "det"), ("dog", "NOUN", 2, "nsubj"), ("chases", "VERB", -1, "ROOT"),
             ("a", "DET", 4, "det"), ("ball", "NOUN", 2, "dobj")]  # fmt: skip
    tokens, at = [], 0
    for text, pos, head, dep in words:
        tokens.append(Token(text=text, start=at, end=at + len(text), pos=pos, head=head, dep=dep))
        at += len(text) + 1
    return PromptTree(text="A dog chases a ball", tokens=tokens)


def test_algorithm_1_literal_rule_differs_on_a_verb_rooted_prompt():
    from grefine_kit.parsers.tree import extract_phrases

    tree = _chase_tree()
    ours = extract_phrases(tree)
    literal = extract_phrases(tree, ancestor_rule="noun-ancestor")
    assert [p.noun_text for p in ours] == ["dog", "ball"] == [p.noun_text for p in literal]
    assert [p.ancestor for p in ours] == [0, 0]  # ball -> dog (the phrase holding 'chases')
    assert [p.ancestor for p in literal] == [0, 1]  # ball -> ball (no noun above it)
    with pytest.raises(ValueError, match="ancestor_rule"):
        extract_phrases(tree, ancestor_rule="nearest")


def test_parser_mode_reference_groups_at_noun_chunks():
    pytest.importorskip("spacy")
    aq = AQMap(**TINY, parser_mode="reference")
    _tree, phrases = aq.analyse("A dog chases a ball")
    got = [(p.text, p.noun_text, p.ancestor) for p in phrases]
    assert got == [("A dog chases", "dog", 0), ("ball", "ball", 1)]
    img = Image.fromarray(np.full((32, 48, 3), 120, np.uint8))
    (result,) = aq.score([img], ["A dog chases a ball"])
    assert [p.text for p in result.report.phrases] == ["A dog chases", "ball"]
    ours = AQMap(**TINY).analyse("A dog chases a ball")[1]
    assert [p.text for p in ours] == ["dog chases", "ball"]


def test_reference_modes_need_spacy():
    with pytest.raises(ValueError, match="parser = 'spacy'"):
        AQMap(**TINY, parser="rules", parser_mode="reference")
    with pytest.raises(ValueError, match="parser = 'spacy'"):
        AQMap(**TINY, parser="rules", reference_compat=True)


def test_eq6_product_and_union():
    a = np.array([[1.0, 0.5], [0.0, 1.0]], np.float32)
    b = np.array([[0.5, 0.5], [1.0, 1.0]], np.float32)
    maps = [a, b]
    both = ["adjective", "adjective"]
    np.testing.assert_allclose(defect_map(both, [0, 0], maps, (2, 2)), np.maximum(a, b))
    np.testing.assert_allclose(defect_map(both, [0, 0], maps, (2, 2), rule="product"), a * b)
    assert not defect_map([None, None], [0, 0], maps, (2, 2), rule="product").any()  # no defect, no map
    # a noun defect of phrase 1 is drawn on its ancestor 0 (text) or on itself (eq. 6 as printed)
    np.testing.assert_allclose(defect_map([None, "noun"], [0, 0], maps, (2, 2)), a)
    np.testing.assert_allclose(defect_map([None, "noun"], [0, 0], maps, (2, 2), cases="printed"), b)
    phrases = [Phrase(text="x", noun=0, noun_text="x", tokens=[0], ancestor=0),
               Phrase(text="y", noun=1, noun_text="y", tokens=[1], ancestor=0)]  # fmt: skip
    d = decide_alignment("x y", phrases, [0.9, 0.9], [0.9, 0.9], maps, 0.9, (2, 2), defect_rule="product")
    assert not d.defect_map.any() and d.map.min() == 1.0


@pytest.mark.parametrize("strength", [0.05, 0.3, 1 / 3, 0.5, 0.77, 0.95, 1.0])
@pytest.mark.parametrize("n", [1, 2, 10, 25])
def test_denoising_step_rule_runs_exactly_n(strength: float, n: int):
    length = schedule_for(n, strength)
    assert steps_that_run(length, strength) == n
    assert steps_that_run(length - 1, strength) < n  # the shortest such schedule
    assert schedule_for(0, strength) == 0 == schedule_for(n, 0.0)
