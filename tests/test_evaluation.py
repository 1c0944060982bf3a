"""Indicators as IQA models: correlation coefficients, MOS files and `grefine evaluate`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.errors import UserError
from grefine_kit.evaluation import evaluate, krcc, plcc, read_mos_csv, srcc
from grefine_kit.evaluation.correlation import rankdata


def test_rankdata_averages_ties():
    assert rankdata(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == [4.0, 1.0, 2.5, 2.5]


def test_coefficients_on_hand_checked_cases():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert srcc(x, [v**3 for v in x]) == pytest.approx(1.0)  # monotone, not linear
    assert plcc(x, [v**3 for v in x]) < 0.99
    assert srcc(x, x[::-1]) == pytest.approx(-1.0)
    assert krcc(x, x[::-1]) == pytest.approx(-1.0)
    # one swapped pair out of 10: tau = (9 - 1) / 10
    assert krcc([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]) == pytest.approx(0.8)
    assert math.isnan(srcc([1, 1, 1], [1, 2, 3]))


def test_coefficients_match_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 8, 60).astype(float)  # many ties
    mos = pred + rng.normal(0, 2, 60)
    assert srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-12)
    assert plcc(pred, mos) == pytest.approx(stats.pearsonr(pred, mos).statistic, abs=1e-12)
    assert krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos).statistic, abs=1e-12)


def test_logistic_plcc_straightens_a_sigmoid_relation():
    pytest.importorskip("scipy")
    pred = np.linspace(-6, 6, 40)
    mos = 1 / (1 + np.exp(-pred)) * 4 + 1
    assert plcc(pred, mos, fit="logistic") == pytest.approx(1.0, abs=1e-4)
    assert plcc(pred, mos) < 0.97


@pytest.mark.parametrize(
    ("pred", "mos", "message"),
    [
        ([1, 2], [1, 2], "at least 3"),
        ([1, 2, 3], [1, 2], "differ in length"),
        ([1, 2, float("nan")], [1, 2, 3], "finite"),
    ],
)
def test_bad_inputs_are_user_errors(pred, mos, message):
    with pytest.raises(UserError, match=message):
        srcc(pred, mos)


def test_read_mos_csv_aliases_root_and_errors(tmp_path: Path):
    path = tmp_path / "db.csv"
    path.write_text("Name,MOS_quality,Prompt\na.png,3.5,a cat\nsub/b.png,1,\n\n")
    rows = read_mos_csv(path)
    assert [(r.image, r.mos, r.prompt) for r in rows] == [
        (tmp_path / "a.png", 3.5, "a cat"),
        (tmp_path / "sub" / "b.png", 1.0, None),
    ]
    assert read_mos_csv(path, root="/data")[0].image == Path("/data/a.png")
    path.write_text("image,mos\na.png,good\n")
    with pytest.raises(UserError, match="line 2: MOS 'good' is not a number"):
        read_mos_csv(path)
    path.write_text("image,rating\na.png,1\n")
    with pytest.raises(UserError, match="needs an image column"):
        read_mos_csv(path)


def _rated_folder(tmp_path: Path) -> Path:
    rows = ["image,mos"]
    for i, level in enumerate((30, 90, 150, 210)):
        Image.fromarray(np.full((12, 16, 3), level, np.uint8)).save(tmp_path / f"img{i}.png")
        rows.append(f"img{i}.png,{1 + i * 0.5}")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    rows.append("broken.png,2.0")
    (tmp_path / "db.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "db.csv"


def test_evaluate_with_a_plugin_indicator(with_plugins, tmp_path: Path):
    from grefine_kit.registry import get_registry

    csv_path = _rated_folder(tmp_path)
    indicator = get_registry().create("indicator", "brightness", {})
    result = evaluate(read_mos_csv(csv_path), indicator, tmp_path / "out", progress=False)
    assert (result.n_rated, result.n_scored, result.n_failed) == (5, 4, 1)
    assert result.srcc == pytest.approx(1.0) and result.krcc == pytest.approx(1.0)
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert saved["srcc"] == pytest.approx(1.0) and saved["n_failed"] == 1


def test_cli_evaluate_on_the_tiny_backbone(tmp_path: Path):
    csv_path = _rated_folder(tmp_path)
    result = CliRunner().invoke(
        cli, ["evaluate", str(csv_path), "--recipe", "tiny", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1, result.output  # the broken image failed, the rest were scored
    assert "SRCC" in result.stdout and "4/5 images" in result.stdout
    saved = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    assert saved["indicator"] == "pq-map" and -1.0 <= saved["srcc"] <= 1.0
