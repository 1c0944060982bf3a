from __future__ import annotations

import json

import numpy as np
import pytest

from grefine_kit.types import AlignmentReport, Mask, PhraseReport, PromptTree, QualityMap, Token


def test_quality_map_validates_and_is_read_only():
    qmap = QualityMap(
        map=np.full((3, 5), 0.25), score=0.7, indicator="x", details={"factors": {"a": np.float32(0.5)}}
    )
    assert qmap.map.dtype == np.float32 and qmap.size == (5, 3)
    with pytest.raises(ValueError):
        qmap.map[0, 0] = 1.0
    assert json.loads(json.dumps(qmap.to_json())) == {
        "indicator": "x",
        "score": 0.7,
        "details": {"factors": {"a": 0.5}},
    }


@pytest.mark.parametrize(
    "bad_map",
    [np.zeros(4), np.zeros((2, 2, 3)), np.full((2, 2), 1.5), np.full((2, 2), np.nan), np.zeros((0, 3))],
)
def test_quality_map_rejects_bad_maps(bad_map):
    with pytest.raises(ValueError):
        QualityMap(map=bad_map, score=0.5)


@pytest.mark.parametrize("bad_score", [-0.1, 1.2, float("nan")])
def test_quality_map_rejects_bad_scores(bad_score):
    with pytest.raises(ValueError):
        QualityMap(map=np.zeros((2, 2)), score=bad_score)


def test_mask_area_and_shape_check():
    binary = np.zeros((4, 4))
    binary[:2] = 1
    assert Mask(binary=binary, soft=binary).area == 0.5
    with pytest.raises(ValueError, match="differ in shape"):
        Mask(binary=binary, soft=np.zeros((4, 5)))


def test_prompt_tree_checks_structure():
    a = Token("red", 0, 3, "ADJ", 1, "amod")
    b = Token("cat", 4, 7, "NOUN", -1, "ROOT")
    tree = PromptTree("red cat", (a, b))
    assert tree.root == 1 and tree.children(1) == [0]
    assert PromptTree("", ()).root is None
    with pytest.raises(ValueError, match="exactly one root"):
        PromptTree("red cat", (Token("red", 0, 3, "ADJ", -1), b))
    with pytest.raises(ValueError, match="cycle"):
        PromptTree("a b c", (Token("a", 0, 1, "X", 1), Token("b", 2, 3, "X", 0), Token("c", 4, 5, "X", -1)))


def test_alignment_report_to_json_round_trips_through_json():
    report = AlignmentReport(
        prompt="a red cat",
        prompt_score=0.6,
        phrases=(PhraseReport("red cat", "cat", "red cat", 0.4, 0.5, "adjective"),),
        emphasis=(("red cat", 0.1),),
    )
    qmap = QualityMap(map=np.ones((2, 2)), score=0.6, details={"report": report})
    data = json.loads(json.dumps(qmap.to_json()))
    assert data["details"]["report"]["phrases"][0]["defect"] == "adjective"
    assert data["details"]["report"]["emphasis"] == [["red cat", 0.1]]
