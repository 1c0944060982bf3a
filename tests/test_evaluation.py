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
from grefine_kit.evaluation.mos import choose_mos_column, indicator_kind


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
    with pytest.raises(UserError, match="needs a MOS column"):
        read_mos_csv(path)
    path.write_text("picture,mos\na.png,1\n")
    with pytest.raises(UserError, match="needs an image column"):
        read_mos_csv(path)


def test_mos_column_choice_by_kind_and_explicit():
    agiqa = ["name", "prompt", "adj1", "style", "mos_quality", "std_quality", "mos_align", "std_align"]
    assert choose_mos_column(agiqa, kind="perceptual") == "mos_quality"
    assert choose_mos_column(agiqa, kind="alignment") == "mos_align"
    assert choose_mos_column(agiqa, "MOS_ALIGN", kind="perceptual") == "mos_align"  # explicit wins
    with pytest.raises(UserError, match=r"several MOS columns \(mos_quality, mos_align\)"):
        choose_mos_column(agiqa)
    with pytest.raises(UserError, match="no column 'mos_overall'; MOS-like columns: mos_quality, mos_align"):
        choose_mos_column(agiqa, "mos_overall")
    assert choose_mos_column(["name", "mos"], kind="alignment") == "mos"  # generic: either kind
    assert choose_mos_column(["name", "mos"]) == "mos"
    with pytest.raises(UserError, match="do not rate perceptual quality; pass --mos-column mos_align"):
        choose_mos_column(["name", "mos_align"], kind="perceptual")


def test_indicator_kind():
    from grefine_kit.indicators.aq_map import AQMap
    from grefine_kit.indicators.clip_query import ClipSurgeryQuery
    from grefine_kit.indicators.pq_map import PQMap

    assert indicator_kind(PQMap()) == "perceptual" and indicator_kind(AQMap()) == "alignment"
    assert indicator_kind(ClipSurgeryQuery()) == "alignment"  # needs a prompt: text-image agreement

    class Plain:
        needs_prompt = False

    assert indicator_kind(Plain()) == "perceptual"


def _two_mos_folder(tmp_path: Path) -> Path:
    """An AGIQA-3K-shaped CSV: the two MOS columns rank the images in opposite orders."""
    rows = ["name,prompt,mos_quality,std_quality,mos_align,std_align"]
    for i, level in enumerate((30, 90, 150, 210)):
        Image.fromarray(np.full((24, 32, 3), level, np.uint8)).save(tmp_path / f"img{i}.png")
        rows.append(f"img{i}.png,a red cube on a table,{1 + i * 0.5},0.1,{3 - i * 0.5},0.1")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "data.csv"


@pytest.mark.parametrize(("indicator", "column"), [("aq-map", "mos_align"), ("pq-map", "mos_quality")])
def test_cli_evaluate_picks_the_mos_column_by_kind(tmp_path: Path, indicator: str, column: str):
    import csv

    csv_path = _two_mos_folder(tmp_path)
    out = tmp_path / "o"
    args = ["evaluate", str(csv_path), "--recipe", "tiny", "--indicator", indicator, "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"MOS column: {column} (for a" in result.stdout
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["mos_column"] == column and saved["indicator"] == indicator
    with (out / "results.csv").open() as f:
        scores = {Path(r["file"]).name: float(r["score"]) for r in csv.DictReader(f)}
    with csv_path.open() as f:
        truth = {r["name"]: float(r[column]) for r in csv.DictReader(f)}
    names = sorted(scores)
    expected = srcc([scores[n] for n in names], [truth[n] for n in names])
    assert saved["srcc"] == pytest.approx(expected, abs=1e-12) or (
        math.isnan(expected) and saved["srcc"] is None
    )
    # explicit choice, and a clear refusal of a column that is not there
    forced = CliRunner().invoke(cli, [*args, "--mos-column", "mos_quality"])
    assert forced.exit_code == 0 and "MOS column: mos_quality (as given)" in forced.stdout
    bad = CliRunner().invoke(cli, [*args, "--mos-column", "mos_overall"])
    assert bad.exit_code == 2 and "no column 'mos_overall'" in bad.output and "Traceback" not in bad.output


def test_cli_evaluate_refuses_the_wrong_kind_of_mos(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "db.csv").write_text("name,prompt,mos_align\na.png,a cat,3\n")
    result = CliRunner().invoke(
        cli, ["evaluate", str(tmp_path / "db.csv"), "--recipe", "tiny", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "do not rate perceptual quality" in result.output


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
    from grefine_kit.parts.registry import get_registry

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
    # progress per image off a terminal (auto), the broken image an error line
    lines = [line for line in result.stderr.splitlines() if line.startswith("score [")]
    assert len(lines) == 5 and sum("broken.png: error:" in line for line in lines) == 1, result.stderr
    # jsonl: stdout carries the JSON events only; the result line goes to stderr
    args = ["evaluate", str(csv_path), "--recipe", "tiny", "--log-format", "jsonl"]
    again = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "j")])
    assert again.exit_code == 1, again.output
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert [e["event"] for e in events] == ["start", "item", "item", "item", "item", "item", "end"]
    assert "SRCC" in again.stderr and "MOS column" in again.stderr


def test_logistic_fit_failure_is_never_a_silent_raw_value(monkeypatch):
    """A fit that does not converge raises; evaluate() then reports the raw PLCC as raw."""
    import scipy.optimize

    from grefine_kit.evaluation.correlation import LogisticFitError
    from grefine_kit.evaluation.run import Evaluation

    def no_convergence(*_args, **_kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(scipy.optimize, "curve_fit", no_convergence)
    pred, mos = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2], [1.0, 2.0, 2.5, 4.0, 4.5, 1.5]
    with pytest.raises(LogisticFitError, match="did not converge"):
        plcc(pred, mos, fit="logistic")
    raw = Evaluation("x", 6, 6, 0.9, 0.8, None, 0.7, Path("r.csv"))
    fitted = Evaluation("x", 6, 6, 0.9, 0.8, 0.85, 0.7, Path("r.csv"))
    assert (raw.plcc_kind, raw.plcc_reported) == ("raw", 0.8)
    assert (fitted.plcc_kind, fitted.plcc_reported) == ("fitted", 0.85)
    assert fitted.to_json()["plcc_kind"] == "fitted" and raw.to_json()["plcc_reported"] == 0.8
