"""``grefine benchmark``: marking rules in the summary, dataset input, the end-to-end run on the
``tiny`` recipe, resuming, the ablation layout. Controlled metrics (a test plugin) return
known numbers so that every mark can be checked."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit import hookimpl
from grefine_kit.benchmark import ORIGINAL, BenchmarkResult, Dataset, Item, load_dataset, summarise
from grefine_kit.benchmark.render import chart_png, format_value, to_html, to_markdown
from grefine_kit.benchmark.run import RecipeRow, ablation_variants
from grefine_kit.cli import cli
from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.metrics.base import MetricInfo
from grefine_kit.recipes.recipe import Recipe
from grefine_kit.stages.base import StageResult
from grefine_kit.testing import sample_images

NAN = float("nan")


# -- a test plugin: controlled metrics and model-free stages ---------------------------------


def pixel_key(image: Image.Image) -> str:
    return hashlib.sha1(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


@attrs.define
class Brightness:
    """Mean luminance in [0, 1]: a real, cheap metric (higher = better for this test)."""

    name: ClassVar[str] = "test-bright"
    lower_better: ClassVar[bool] = False
    needs_prompt: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def score(self, images, prompts=None):
        return [float(np.asarray(im.convert("L"), np.float32).mean() / 255) for im in images]


@attrs.define
class Lookup:
    """Known numbers per image content: ``TABLE[table][pixel_key]``; an unknown image raises
    (the benchmark records NaN for that image only)."""

    table: str = "up"
    lower_better: bool = False
    TABLE: ClassVar[dict[str, dict[str, float]]] = {}
    needs_prompt: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    @property
    def name(self) -> str:
        return f"lookup-{self.table}"

    def score(self, images, prompts=None):
        return [self.TABLE[self.table][pixel_key(im)] for im in images]


class MissingWeights(Brightness):
    """A metric whose weights are not on this machine."""

    def score(self, images, prompts=None):
        raise MissingDependencyError("weights for test-missing are not here")


@attrs.define
class Shift:
    """A model-free stage: adds ``amount`` to every pixel (global) or inside the mask (masked)."""

    amount: int = 30
    role: str = "global"

    def run(self, request):
        a = np.asarray(request.image, np.int16) + self.amount
        out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
        return StageResult(image=out, steps_run=request.steps)


def masked_shift(**options):
    return Shift(role="masked", **options)


FAST_FULL = """
name = "test-full"
[indicators.perceptual]
part = "pq-map"
model = "grefine-tiny"
weights = "random"
device = "cpu"
[indicators.alignment]
part = "aq-map"
model = "grefine-tiny"
weights = "random"
device = "cpu"
parser = "rules"
templates = "none"
[combiner]
part = "g-refine"
[stage1]
part = "test-fill"
amount = -20
[stage2]
part = "test-shift"
amount = 10
[refiner]
iterations = 4
"""

SHIFT_ONLY = """
name = "test-shift"
[stage2]
part = "test-shift"
amount = 40
[refiner]
iterations = 4
split = 0.0
"""


@pytest.fixture
def plugin(register_plugin, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "full.toml").write_text(FAST_FULL)
    (recipes / "shift.toml").write_text(SHIFT_ONLY)

    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register("test-bright", Brightness, lower_better=False, score_range=(0.0, 1.0))
            register("test-lookup", Lookup, summary="known numbers")
            register("test-missing", MissingWeights)

        @hookimpl
        def register_stages(self, register):
            register("test-shift", Shift)
            register("test-fill", masked_shift)

        @hookimpl
        def register_recipes(self, register):
            register("test-full", recipes / "full.toml")
            register("test-shift", recipes / "shift.toml")

    Lookup.TABLE.clear()
    registry = register_plugin(Plugin(), name="benchmark-test-plugin")
    assert not registry.failures, registry.failures
    return registry


@pytest.fixture
def dataset_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(sample_images([(64, 48), (48, 64), (64, 64), (40, 56)])):
        image.save(folder / f"im{i}.png")
    with (tmp_path / "prompts.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "prompt"])
        for i in range(4):
            writer.writerow([f"im{i}.png", f"a red square number {i}"])
    return folder


def _invoke(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def _json(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _cell(summary: dict, row: str, metric: str) -> dict:
    return next(r for r in summary["rows"] if r["name"] == row)["cells"][metric]


# -- end to end on the tiny recipe -----------------------------------------------------------


def test_benchmark_tiny_end_to_end_then_resume_with_controlled_metrics(plugin, dataset_dir, tmp_path):
    out = tmp_path / "bench"
    common = [str(dataset_dir), "--prompts", str(tmp_path / "prompts.csv"), "--recipe", "tiny"]
    common += ["--recipe", "test-shift", "--out", str(out)]
    first = _invoke("benchmark", *common, "--metric", "test-bright")
    assert first.exit_code == 0, first.output
    for name in ("scores.csv", "summary.md", "summary.html", "summary.json", "chart.png"):
        assert (out / name).is_file(), name
    for recipe in ("tiny", "test-shift"):
        assert sorted(p.name for p in (out / recipe).glob("im*.png")) == [f"im{i}.png" for i in range(4)]
    summary = _json(out)
    assert summary["config"]["refined"]["tiny"] == {"ok": 4, "failed": 0, "skipped": 0}
    # +40 on every pixel is brighter: better on this higher-is-better metric, 4 wins of 4
    shift = _cell(summary, "test-shift", "test-bright")
    assert shift["outcome"] == "better" and shift["wins"] == 4 and not shift["negative"]
    with (out / "scores.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4 and {r["row"] for r in rows} == {ORIGINAL, "tiny", "test-shift"}
    assert Image.open(out / "chart.png").format == "PNG"

    # known numbers per image: the originals 0.5, tiny 0.6, test-shift 0.4 ("up", higher better)
    # and the same numbers for a lower-is-better column ("down"); "tie": test-shift equals the original
    up, tie = {}, {}
    for i in range(4):
        up[pixel_key(Image.open(dataset_dir / f"im{i}.png"))] = 0.5
        up[pixel_key(Image.open(out / "tiny" / f"im{i}.png"))] = 0.6
        up[pixel_key(Image.open(out / "test-shift" / f"im{i}.png"))] = 0.4
        tie[pixel_key(Image.open(dataset_dir / f"im{i}.png"))] = 0.5
        tie[pixel_key(Image.open(out / "tiny" / f"im{i}.png"))] = 0.8 if i else 0.1
        tie[pixel_key(Image.open(out / "test-shift" / f"im{i}.png"))] = 0.5
    Lookup.TABLE.update(up=up, down=dict(up), tie=tie)
    del Lookup.TABLE["tie"][pixel_key(Image.open(out / "tiny" / "im3.png"))]  # one NaN
    options = tmp_path / "metrics.toml"
    options.write_text(
        '[up]\nmetric = "test-lookup"\ntable = "up"\n'
        '[down]\nmetric = "test-lookup"\ntable = "down"\nlower_better = true\n'
        '[tie]\nmetric = "test-lookup"\ntable = "tie"\n'
    )
    second = _invoke("benchmark", *common, "--metric-options", str(options))
    assert second.exit_code == 1, second.output  # one score is n/a
    summary = _json(out)
    assert summary["config"]["refined"]["tiny"] == {"ok": 0, "failed": 0, "skipped": 4}  # resumed
    assert [m["name"] for m in summary["metrics"]] == ["up", "down", "tie"]
    assert summary["metrics"][1]["lower_better"] is True
    # worse on one recipe -> negative optimisation there and only there
    assert _cell(summary, "test-shift", "up")["negative"] and not _cell(summary, "tiny", "up")["negative"]
    assert (
        _cell(summary, "tiny", "up")["mark"] == "best"
        and _cell(summary, "test-shift", "up")["mark"] == "second"
    )
    # direction: lower is better flips it
    assert _cell(summary, "tiny", "down")["negative"] and not _cell(summary, "test-shift", "down")["negative"]
    assert _cell(summary, "test-shift", "down")["mark"] == "best"
    # tie: equal to the original is not worse; NaN image: mean over the other 3, not a win
    assert _cell(summary, "test-shift", "tie")["outcome"] == "tie"
    assert not _cell(summary, "test-shift", "tie")["negative"]
    tiny_tie = _cell(summary, "tiny", "tie")
    assert tiny_tie["n"] == 3 and math.isclose(tiny_tie["mean"], (0.1 + 0.8 + 0.8) / 3)
    assert (tiny_tie["wins"], tiny_tie["losses"], tiny_tie["ties"]) == (2, 1, 0)
    rows = {r["name"]: r for r in summary["rows"]}
    assert rows["test-shift"]["negative_optimisations"] == 1 and rows["tiny"]["negative_optimisations"] == 1
    assert summary["config"]["errors"]["tiny"]  # the failed lookup is reported
    md = (out / "summary.md").read_text()
    print(md)
    assert "| test-shift | <u>0.4000</u> ▼ | **0.4000** | <u>0.5000</u> | 1 | 33% |" in md
    html = (out / "summary.html").read_text()
    assert '<td class="second negative">0.4000 ▼</td>' in html

    # a third run reuses every cached score: the lookup table is gone, yet nothing changes
    # (only the failed image, never cached, is tried again and fails again)
    before = {r["name"]: r["cells"] for r in summary["rows"]}
    Lookup.TABLE.clear()
    third = _invoke("benchmark", *common, "--metric-options", str(options))
    assert third.exit_code == 1, third.output
    again = _json(out)
    assert again["config"]["scores_reused"] == 3 * 3 * 4 - 1
    assert {r["name"]: r["cells"] for r in again["rows"]} == before


def test_benchmark_progress_per_step_and_image(plugin, dataset_dir, tmp_path):
    """Off a terminal the default prints each step and one line per image, refined or scored;
    jsonl puts step and item events, and nothing else, on stdout; cached scores count as done."""
    out = tmp_path / "bench"
    common = [str(dataset_dir), "--recipe", "test-shift", "--out", str(out)]
    first = CliRunner().invoke(cli, ["benchmark", *common, "--metric", "test-bright"])
    assert first.exit_code == 0, first.output
    lines = first.stderr.splitlines()
    scored = [f"score [{i}/4] {dataset_dir / f'im{i - 1}.png'}: ok" for i in range(1, 5)]
    refined = [f"refine [{i}/4] {dataset_dir / f'im{i - 1}.png'}: ok" for i in range(1, 5)]
    rescored = [f"score [{i}/4] {out / 'test-shift' / f'im{i - 1}.png'}: ok" for i in range(1, 5)]
    expected = [
        "original: scoring 4 image(s) with 1 metric(s)",
        "score: 4 item(s) to do; loading models",
        *scored,
        f"[1/1] test-shift: refining into {out / 'test-shift'}",
        "refine: 4 item(s) to do; loading models",
        *refined,
        "[1/1] test-shift: scoring 4 image(s) with 1 metric(s)",
        "score: 4 item(s) to do",  # the metrics loaded with the originals
        *rescored,
    ]
    assert [line.split(" (")[0] for line in lines[: len(expected)]] == expected, first.stderr
    assert "| Recipe |" in first.stdout

    # a second column that fails on every image: error items; test-bright's scores are cached
    options = tmp_path / "metrics.toml"
    options.write_text('[nums]\nmetric = "test-lookup"\ntable = "none"\n')
    args = [*common, "--metric", "test-bright", "--metric", "nums", "--metric-options", str(options)]
    second = CliRunner().invoke(cli, ["benchmark", *args, "--log-format", "jsonl"])
    assert second.exit_code == 1, second.output  # the nums cells are n/a
    events = [json.loads(line) for line in second.stdout.splitlines()]  # JSON lines only
    kinds = [(e["event"], e.get("kind") or e.get("step")) for e in events]
    score_run = [("start", "score"), *[("item", "score")] * 4, ("end", "score")]
    assert kinds == [
        ("step", "score"),
        *score_run,
        ("step", "refine"),
        ("start", "refine"),
        ("end", "refine"),  # all 4 already refined
        ("step", "score"),
        *score_run,
    ]
    assert [(e["row"], e["index"], e["rows"]) for e in events if e["event"] == "step"] == [
        (ORIGINAL, 0, 1),
        ("test-shift", 1, 1),
        ("test-shift", 1, 1),
    ]
    items = [e for e in events if e["event"] == "item"]
    assert all(e["status"] == "error" and "nums on image" in e["error"] for e in items)
    assert [e["done"] for e in items] == [1, 2, 3, 4] * 2

    # every score of the one column is cached now: nothing to do, 4 already done
    third = CliRunner().invoke(cli, ["benchmark", *common, "--metric", "test-bright", "--log-format", "text"])
    assert third.exit_code == 0, third.output
    assert third.stderr.splitlines().count("score: 0 item(s) to do, 4 already done") == 2, third.stderr
    assert "score [" not in third.stderr
    off = CliRunner().invoke(cli, ["benchmark", *common, "--metric", "test-bright", "--log-format", "off"])
    assert off.exit_code == 0 and not any(
        x.startswith(("score", "refine", "[")) for x in off.stderr.splitlines()
    )


def test_an_unreadable_output_is_one_error_naming_it_once(tmp_path):
    """A recipe that failed on an image wrote no output: its cells are NaN, with one message
    that names the file once (the loader's message already does)."""
    from grefine_kit.benchmark.cache import ScoreCache
    from grefine_kit.benchmark.scoring import MetricSpec, score_row

    good, missing = tmp_path / "good.png", tmp_path / "gone.png"
    sample_images([(32, 32)])[0].save(good)
    built = [(MetricSpec("bright", "test-bright"), Brightness())]
    cache = ScoreCache(tmp_path / "cache.jsonl")
    values, errors, reused = score_row(
        "r", [good, missing], ["a", "b"], ["", ""], built, cache, "off", lambda i, im: None
    )
    assert math.isfinite(values["bright"][0]) and math.isnan(values["bright"][1])
    assert errors == [f"{missing}: does not exist"] and reused == 0


def test_benchmark_refines_through_the_engine_given(register_plugin, plugin, dataset_dir, tmp_path):
    """--engine runs the refining: a non-local engine gets work it can pickle (each recipe's
    spec) and the same outputs and scores come out; a bad engine option fails before any work."""
    import pickle

    from grefine_kit.engines.local import LocalEngine

    seen: list[bool] = []
    batches: list[int] = []

    class Pickling(LocalEngine):
        def run(self, work, tasks, *, batch_size, on_start=None):
            seen.append(work.portable)
            batches.append(batch_size)
            copy = pickle.loads(pickle.dumps(work))  # what another process receives
            return super().run(copy, pickle.loads(pickle.dumps(list(tasks))), batch_size=batch_size)

    class Engines:
        @hookimpl
        def register_engines(self, register):
            register("test-pickling", Pickling)

    register_plugin(Engines(), name="benchmark-test-engines")
    args = ["benchmark", str(dataset_dir), "--recipe", "test-shift", "--recipe", "test-full"]
    args += ["--prompt", "a red square", "--metric", "test-bright", "--log-format", "off"]
    local = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "local")])
    engine = ["--engine", "test-pickling", "--batch-size", "3"]
    other = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "other"), *engine])
    assert local.exit_code == 0 and other.exit_code == 0, other.output
    assert seen == [True, True]  # one portable work per recipe
    assert batches == [3, 3]  # --batch-size reaches the engine (outputs do not depend on it)
    for recipe in ("test-shift", "test-full"):
        for i in range(4):
            a = np.asarray(Image.open(tmp_path / "local" / recipe / f"im{i}.png"))
            assert np.array_equal(a, np.asarray(Image.open(tmp_path / "other" / recipe / f"im{i}.png")))
    means = [{r["name"]: r["cells"] for r in _json(tmp_path / d)["rows"]} for d in ("local", "other")]
    assert means[0] == means[1]
    bad = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "bad"), "--workers", "2"])
    assert bad.exit_code == 2 and "the local engine runs one worker" in bad.output
    assert not (tmp_path / "bad").exists()  # refused before the output folder was made
    address = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "bad"), "--address", "auto"])
    assert address.exit_code == 2 and "--address needs a cluster engine" in address.output


def test_ablation_layout_reproduces_table_8(plugin, dataset_dir, tmp_path):
    out = tmp_path / "ablation"
    result = _invoke(
        "benchmark", str(dataset_dir), "--prompt", "a red square", "--recipe", "test-full", "--ablation",
        "--metric", "test-bright", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = _json(out)
    assert summary["ablation"] is True
    facts = [(r["name"], r["indicators"], r["stages"]) for r in summary["rows"][1:]]
    assert facts == [
        ("test-full", "PQ+AQ", "1,2"),
        ("test-full-alignment", "AQ", "1,2"),
        ("test-full-perceptual", "PQ", "1,2"),
        ("test-full-stage1", "PQ+AQ", "1"),
    ]
    lines = (out / "summary.md").read_text().splitlines()
    assert lines[0].startswith("| Indicator | Stage | test-bright ↑ |")
    assert lines[2].startswith("| PQ+AQ (test-full) | 1,2 |") and lines[6].startswith("| Original images |")
    # stage 1 darkens (-20 in the mask), stage 2 brightens (+10 everywhere): stage-1-only is darkest
    means = {r["name"]: r["cells"]["test-bright"]["mean"] for r in summary["rows"]}
    assert means["test-full-stage1"] < means["test-full"]
    # --no-resume refines and scores everything again
    again = _invoke(
        "benchmark", str(dataset_dir), "--prompt", "a red square", "--recipe", "test-full", "--ablation",
        "--metric", "test-bright", "--out", str(out), "--no-resume",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    config = _json(out)["config"]
    assert config["scores_reused"] == 0
    assert config["refined"]["test-full-stage1"] == {"ok": 4, "failed": 0, "skipped": 0}


def test_manifest_through_the_cli(plugin, dataset_dir, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,image,prompt\nfirst,images/im2.png,a cat\nsecond,images/im0.png,a dog\n")
    out = tmp_path / "m"
    args = [
        "--manifest",
        str(manifest),
        "--recipe",
        "test-shift",
        "--metric",
        "test-bright",
        "--out",
        str(out),
    ]
    result = _invoke("benchmark", *args)
    assert result.exit_code == 0, result.output
    with (out / "scores.csv").open() as f:
        rows = [(r["id"], r["row"]) for r in csv.DictReader(f)]
    assert rows == [
        ("first", ORIGINAL),
        ("second", ORIGINAL),
        ("first", "test-shift"),
        ("second", "test-shift"),
    ]
    assert sorted(p.name for p in (out / "test-shift").glob("*.png")) == ["im0.png", "im2.png"]


def test_ablation_needs_a_full_recipe():
    with pytest.raises(UserError, match="both indicators and both stages"):
        ablation_variants(Recipe.load("img2img-baseline"))
    variants = ablation_variants(Recipe.load("g-refine"))
    assert [RecipeRow(v).indicators for v in variants] == ["PQ+AQ", "AQ", "PQ", "PQ+AQ"]


# -- marking in the summary (no refining) ----------------------------------------------------


def _result(scores, metrics, tolerance=1e-6):
    n = len(next(iter(next(iter(scores.values())).values())))
    items = tuple(Item(f"i{k}", Path(f"i{k}.png"), "p") for k in range(n))
    rows = tuple(RecipeRow(Recipe(name=name)) for name in scores if name != ORIGINAL)
    return BenchmarkResult(
        dataset=Dataset(items), rows=rows, metrics=tuple(metrics), scores=scores, errors={},
        refine_counts={}, out_dir=Path("."), tolerance=tolerance,
    )  # fmt: skip


def test_summary_marks_direction_ties_and_nan():
    metrics = [MetricInfo("q"), MetricInfo("brisque", lower_better=True)]
    scores = {
        ORIGINAL: {"q": [0.5, 0.5], "brisque": [20.0, 20.0]},
        "a": {"q": [0.7, 0.7], "brisque": [25.0, 25.0]},  # q better, brisque worse
        "b": {"q": [0.7, 0.7], "brisque": [10.0, NAN]},  # ties a on q; one brisque missing
        "c": {"q": [NAN, NAN], "brisque": [20.0, 20.0]},  # no q at all; brisque equal = not worse
    }
    summary = summarise(_result(scores, metrics))
    by = {r.name: r for r in summary.rows}
    assert [by[n].cells[0].mark for n in "abc"] == ["best", "best", ""]  # tie shares best; NaN never
    assert math.isnan(by["c"].cells[0].mean) and not by["c"].cells[0].negative
    assert [by[n].cells[1].mark for n in "abc"] == ["", "best", "second"]
    assert by["a"].cells[1].negative and not by["c"].cells[1].negative
    assert [by[n].negatives for n in "abc"] == [1, 0, 0]
    assert by["b"].cells[1].n == 1 and by["b"].cells[1].pairs == 1
    assert by["a"].win_rate == 0.5  # 2 wins (q) + 2 losses (brisque)
    assert math.isclose(by["b"].cells[1].change, 50.0)  # 20 -> 10 on lower-better: +50 %
    md = to_markdown(summary)
    assert "| c | n/a | <u>20.000</u> | 0 |" in md and "Licence" not in md
    licensed = [MetricInfo("q"), MetricInfo("brisque", lower_better=True, licence="non-commercial only")]
    assert "Licence: non-commercial only." in to_markdown(summarise(_result(scores, licensed)))
    assert "<td>n/a</td>" in to_html(summary)


def test_tolerance_decides_ties():
    metrics = [MetricInfo("q")]
    scores = {ORIGINAL: {"q": [0.5]}, "a": {"q": [0.49]}}
    assert summarise(_result(scores, metrics)).rows[1].cells[0].negative
    assert not summarise(_result(scores, metrics, tolerance=0.05)).rows[1].cells[0].negative


def test_format_and_chart(tmp_path):
    assert [format_value(v) for v in (0.69114, 66.3371, 117.2, NAN)] == ["0.6911", "66.337", "117.20", "n/a"]
    metrics = [MetricInfo("q"), MetricInfo("b", lower_better=True)]
    scores = {ORIGINAL: {"q": [0.5], "b": [20.0]}, "a": {"q": [0.6], "b": [30.0]}}
    path = chart_png(summarise(_result(scores, metrics)), tmp_path / "c.png")
    image = Image.open(path).convert("RGB")
    colours = {c for _, c in image.getcolors(1 << 16)}
    assert (0x27, 0xAE, 0x60) in colours and (0xC0, 0x39, 0x2B) in colours  # a better and a worse bar


# -- input errors ----------------------------------------------------------------------------


def test_manifest_dataset(tmp_path, dataset_dir):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,image,prompt\na,images/im0.png,a cat\nb,images/im1.png,a dog\n")
    data = load_dataset(manifest=manifest)
    assert [(i.id, i.path.name, i.prompt) for i in data.items] == [
        ("a", "im0.png", "a cat"),
        ("b", "im1.png", "a dog"),
    ]
    manifest.write_text("id,image,prompt\na,images/im0.png,a cat\na,images/im1.png,a dog\n")
    with pytest.raises(UserError, match="appears twice"):
        load_dataset(manifest=manifest)
    manifest.write_text("id,file\na,images/im0.png\n")
    with pytest.raises(UserError, match="needs columns image and prompt"):
        load_dataset(manifest=manifest)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "test-bright"], "exactly one of --prompt TEXT or --prompts CSV"),
        (["--prompt", "x", "--metric", "no-such-metric"], "unknown metric 'no-such-metric'"),
        (
            ["--prompt", "x", "--metric", "test-bright", "--recipe", "img2img-baseline", "--ablation"],
            "both indicators",
        ),
        (["--manifest", "nope.csv", "--metric", "test-bright"], "give a manifest, or images"),
        (["--prompt", "x", "--metric-options", "missing.toml"], "metric options file not found"),
        (["--prompt", "x", "--metric", "test-missing", "--recipe", "test-shift"], "weights for test-missing"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(plugin, dataset_dir, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["benchmark", str(dataset_dir), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("o/*/*.png"))  # nothing refined before the error


def test_out_inside_the_image_folder_is_refused(plugin, dataset_dir):
    args = [
        "benchmark",
        str(dataset_dir),
        "--prompt",
        "x",
        "--metric",
        "test-bright",
        "--out",
        str(dataset_dir),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "holds the benchmark's input images" in result.output


def test_score_cache_keys_on_file_metric_and_options(tmp_path):
    import os

    from grefine_kit.benchmark.cache import ScoreCache, metric_key

    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    cache = ScoreCache(tmp_path / "c.jsonl")
    key = metric_key("m", {"x": 1})
    assert key != metric_key("m", {"x": 2}) and key == metric_key("m", {"x": 1})
    cache.put_many([(key, "row", "a", image, 0.25), (key, "row", "b", image, NAN)])
    with (tmp_path / "c.jsonl").open("a") as f:
        f.write('{"metric": "m#torn", "row"')  # a crash mid-write
    fresh = ScoreCache(tmp_path / "c.jsonl")
    assert fresh.get(key, "row", "a", image) == 0.25
    assert fresh.get(key, "row", "b", image) is None  # NaN is never cached
    assert fresh.get(key, "other-row", "a", image) is None
    assert ScoreCache(tmp_path / "c.jsonl", enabled=False).get(key, "row", "a", image) is None
    os.utime(image, ns=(0, 10**9))  # the image was refined again
    assert fresh.get(key, "row", "a", image) is None


def test_prompts_are_needed_only_when_a_recipe_or_metric_reads_them(dataset_dir, tmp_path):
    """`restore` and `restore-global` with `piqe` read no prompt: a folder is benchmarked as it
    is; a recipe or a metric that reads prompts still stops with one line before any work."""
    from grefine_kit.benchmark.run import reads_prompts
    from grefine_kit.benchmark.scoring import MetricSpec

    piqe, clipscore = MetricSpec(label="piqe", name="piqe"), MetricSpec(label="clipscore", name="clipscore")
    assert not reads_prompts(["restore", "restore-global"], [piqe])
    assert reads_prompts(["restore"], [piqe, clipscore]) and reads_prompts(["tiny"], [piqe])
    out = tmp_path / "o"
    args = ["benchmark", str(dataset_dir), "--recipe", "restore", "--recipe", "restore-global"]
    result = CliRunner().invoke(cli, [*args, "--metric", "piqe", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "scores.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 3 and {r["prompt"] for r in rows} == {""} and all(r["piqe"] for r in rows)
    for extra in (["--metric", "clipscore"], ["--recipe", "tiny", "--metric", "piqe"]):
        result = CliRunner().invoke(cli, [*args[:2], *extra, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and "read prompts" in result.output, result.output
    assert not (tmp_path / "x").exists()
