"""The batch scoring runner (grefine_kit.runner.score) with small deterministic test indicators."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from PIL import Image

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.images.loading import ENV_MAX_PIXELS
from grefine_kit.indicators.base import Indicator
from grefine_kit.runner.score import HEAD_COLUMNS, TAIL_COLUMNS, flatten_details, output_stems, score_files
from grefine_kit.runs.inputs import expand_inputs
from grefine_kit.types import QualityMap


class Brightness:
    """Test double: map = luminance / 255 (bright = good), score = its mean.

    Records the batch sizes it was called with. ``fail_width``: raise on any batch holding an
    image of that width (a model blowing up on one odd input).
    """

    needs_prompt = False
    name = "brightness"

    def __init__(self, fail_width: int | None = None) -> None:
        self.fail_width = fail_width
        self.calls: list[int] = []

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        self.calls.append(len(images))
        if any(im.width == self.fail_width for im in images):
            raise RuntimeError("kernel too small for this input")
        out = []
        for im in images:
            q = np.asarray(im.convert("L"), np.float32) / 255.0
            mean = float(q.mean())
            details = {
                "factors": {"overall": mean, "technical": 1.0 - float(q.std())},
                "luma_max": float(q.max()),
            }
            out.append(QualityMap(map=q, score=mean, indicator=self.name, details=details))
        return out


class PromptLength:
    """Test double needing a prompt: constant map, score = min(1, len(prompt) / 100)."""

    needs_prompt = True
    name = "prompt-length"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        assert prompts is not None and len(prompts) == len(images)
        return [
            QualityMap(
                map=np.full((im.height, im.width), 0.5), score=min(1.0, len(p) / 100), indicator=self.name
            )
            for im, p in zip(images, prompts, strict=True)
        ]


def test_doubles_follow_the_protocol() -> None:
    assert isinstance(Brightness(), Indicator) and isinstance(PromptLength(), Indicator)


def save_png(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, compress_level=1)
    return path


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """corrupt.png, deep16.png (16-bit grey 32896 -> 128), rgba.png (transparent -> white),
    small.png (17x9), zbig.png (4000x3000)."""
    monkeypatch.delenv(ENV_MAX_PIXELS, raising=False)
    d = tmp_path / "in"
    d.mkdir()
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage, not a real PNG")
    save_png(d / "deep16.png", Image.fromarray(np.full((20, 30), 32896, np.uint16)))
    save_png(d / "rgba.png", Image.new("RGBA", (24, 16), (0, 0, 0, 0)))
    save_png(d / "small.png", Image.fromarray(np.tile(np.arange(17, dtype=np.uint8) * 15, (9, 1))))
    save_png(d / "zbig.png", Image.new("RGB", (4000, 3000), (51, 51, 51)))
    (d / "readme.txt").write_text("not an image, not picked up by the folder expansion")
    return d


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_folder_run_writes_one_row_per_file_and_overlays(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    indicator = Brightness()
    summary = score_files(expand_inputs([str(folder)]), indicator, out, fmt="csv", batch_size=2)

    assert (summary.n_ok, summary.n_failed, summary.n_total, summary.exit_code) == (4, 1, 5, 1)
    assert summary.results_path == out / "results.csv"
    rows = read_csv(summary.results_path)
    assert [Path(r["file"]).name for r in rows] == [
        "corrupt.png",
        "deep16.png",
        "rgba.png",
        "small.png",
        "zbig.png",
    ]
    # the first row was an error: the header still gained the factor columns (file rewritten once)
    header = list(rows[0])
    assert header[: len(HEAD_COLUMNS)] == list(HEAD_COLUMNS) and header[-len(TAIL_COLUMNS) :] == list(
        TAIL_COLUMNS
    )
    assert {"overall", "technical", "luma_max"} <= set(header)

    bad = rows[0]
    assert (
        bad["status"] == "error"
        and "corrupt.png" in bad["error"]
        and bad["score"] == ""
        and bad["heatmap"] == ""
    )
    by_name = {Path(r["file"]).name: r for r in rows[1:]}
    expected = {"deep16.png": 128 / 255, "rgba.png": 1.0, "zbig.png": 51 / 255}
    for name, score in expected.items():
        assert by_name[name]["status"] == "ok" and by_name[name]["error"] == ""
        assert float(by_name[name]["score"]) == pytest.approx(score, abs=1e-4)
        assert float(by_name[name]["overall"]) == pytest.approx(score, abs=1e-4)
    assert float(by_name["small.png"]["technical"]) < 1.0  # a gradient has spread

    sizes = {"deep16.png": (30, 20), "rgba.png": (24, 16), "small.png": (17, 9), "zbig.png": (4000, 3000)}
    for name, (w, h) in sizes.items():
        row = by_name[name]
        assert (int(row["width"]), int(row["height"])) == (w, h)
        stem = Path(name).stem
        assert row["heatmap"] == f"{stem}.heatmap.png" and row["map"] == f"{stem}.map.npy"
        with Image.open(out / row["heatmap"]) as overlay:
            assert overlay.size == (w, h) and overlay.mode == "RGB"
        assert np.load(out / row["map"]).shape == (h, w)
    assert not (out / "corrupt.heatmap.png").exists()
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == [
        f"{Path(n).stem}.heatmap.png" for n in sorted(sizes)
    ]
    assert indicator.calls == [1, 2, 1]  # batches of 2 files, minus the corrupt one


def test_too_big_image_is_an_error_row(folder: Path, tmp_path: Path) -> None:
    summary = score_files(expand_inputs([str(folder)]), Brightness(), tmp_path / "out", max_pixels=1_000_000)
    rows = {Path(r["file"]).name: r for r in read_csv(summary.results_path)}
    assert rows["zbig.png"]["status"] == "error" and "limit" in rows["zbig.png"]["error"]
    assert (summary.n_ok, summary.n_failed) == (3, 2)


def test_env_limit_and_bad_env(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MAX_PIXELS, "200")  # 17x9 = 153 fits, 24x16 = 384 does not
    summary = score_files([folder / "small.png", folder / "rgba.png"], Brightness(), tmp_path / "a")
    assert (summary.n_ok, summary.n_failed) == (1, 1)
    monkeypatch.setenv(ENV_MAX_PIXELS, "many")
    with pytest.raises(UserError, match=ENV_MAX_PIXELS):
        score_files([folder / "small.png"], Brightness(), tmp_path / "b")


def test_batch_failure_falls_back_to_single_images(folder: Path, tmp_path: Path) -> None:
    indicator = Brightness(fail_width=17)
    files = [folder / "deep16.png", folder / "small.png", folder / "rgba.png"]
    summary = score_files(files, indicator, tmp_path / "out", batch_size=8)
    rows = read_csv(summary.results_path)
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[1]["error"] == "RuntimeError: kernel too small for this input"
    assert indicator.calls == [3, 1, 1, 1]
    assert not (tmp_path / "out" / "small.heatmap.png").exists()


def test_json_lines_output(folder: Path, tmp_path: Path) -> None:
    summary = score_files(expand_inputs([str(folder)]), Brightness(), tmp_path / "out", fmt="json")
    assert summary.results_path.name == "results.jsonl"
    records = [json.loads(line) for line in summary.results_path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 5
    bad, good = records[0], records[1]
    assert bad["status"] == "error" and bad["score"] is None and "corrupt.png" in bad["error"]
    assert "details" not in bad
    assert good["status"] == "ok" and good["error"] is None and good["indicator"] == "brightness"
    assert good["details"]["factors"]["overall"] == pytest.approx(good["score"])
    assert (good["width"], good["height"], good["heatmap"]) == (30, 20, "deep16.heatmap.png")


def test_prompts_mapping_and_missing_prompt(folder: Path, tmp_path: Path) -> None:
    files = [folder / "small.png", folder / "rgba.png"]
    summary = score_files(files, PromptLength(), tmp_path / "a", prompts={"small.png": "x" * 40})
    rows = read_csv(summary.results_path)
    assert rows[0]["status"] == "ok" and float(rows[0]["score"]) == pytest.approx(0.4)
    assert rows[0]["prompt"] == "x" * 40
    assert rows[1]["status"] == "error"
    assert "needs a prompt" in rows[1]["error"] and "rgba.png" in rows[1]["error"]

    summary = score_files(files, PromptLength(), tmp_path / "b", prompts="y" * 10)
    assert [float(r["score"]) for r in read_csv(summary.results_path)] == [pytest.approx(0.1)] * 2

    # no prompt at all: every image would fail alike, so it is one setup error up front
    with pytest.raises(UserError, match="needs a prompt: give --prompt"):
        score_files(files, PromptLength(), tmp_path / "c", prompts=None)
    assert not (tmp_path / "c").exists()


class WrongSize(Brightness):
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        return [QualityMap(map=np.ones((3, 3)), score=1.0) for _ in images]


def test_a_map_of_the_wrong_size_is_an_error_row(folder: Path, tmp_path: Path) -> None:
    summary = score_files([folder / "small.png"], WrongSize(), tmp_path / "out")
    row = read_csv(summary.results_path)[0]
    assert row["status"] == "error" and "3x3 map for a 17x9 image" in row["error"]


class NoWeights(Brightness):
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        raise MissingDependencyError("weights for 'pq-map' are not installed")


def test_setup_errors_stop_the_run(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError):
        score_files([folder / "small.png", folder / "rgba.png"], NoWeights(), tmp_path / "out")
    assert read_csv(tmp_path / "out" / "results.csv") == []  # header only, file intact


class Crash(BaseException):
    pass


class CrashOnSecondBatch(Brightness):
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        if self.calls:
            raise Crash()
        return super().score(images, prompts)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_crash_keeps_finished_batches(folder: Path, tmp_path: Path, fmt: Literal["csv", "json"]) -> None:
    files = [folder / "deep16.png", folder / "rgba.png", folder / "small.png"]
    with pytest.raises(Crash):
        score_files(files, CrashOnSecondBatch(), tmp_path / "out", fmt=fmt, batch_size=2)
    path = tmp_path / "out" / ("results.csv" if fmt == "csv" else "results.jsonl")
    if fmt == "csv":
        names = [Path(r["file"]).name for r in read_csv(path)]
    else:
        names = [Path(json.loads(line)["file"]).name for line in path.read_text().splitlines()]
    assert names == ["deep16.png", "rgba.png"]


def test_stem_clashes_get_stable_distinct_names(tmp_path: Path) -> None:
    files = [
        tmp_path / "a" / "cat.png",
        tmp_path / "b" / "cat.png",
        tmp_path / "c" / "Cat.jpg",
        tmp_path / "dog.png",
    ]
    for i, f in enumerate(files):
        save_png(f, Image.new("RGB", (4 + i, 4), (10 * i, 0, 0)))
    stems = output_stems(files)
    assert len({s.casefold() for s in stems}) == 4 and stems[3] == "dog"
    assert all(s.lower().startswith("cat-") for s in stems[:3])
    assert output_stems(files[::-1]) == stems[::-1]  # names depend on the path, not the order

    summary = score_files(files, Brightness(), tmp_path / "out")
    rows = read_csv(summary.results_path)
    assert [r["heatmap"] for r in rows] == [f"{s}.heatmap.png" for s in stems]
    for row in rows:
        with Image.open(tmp_path / "out" / row["heatmap"]) as im:
            assert im.size == (int(row["width"]), int(row["height"]))


def test_no_maps_and_argument_errors(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = score_files([folder / "small.png"], Brightness(), out, save_maps=False, progress=False)
    # no map files: only the results view, the record log and the (hidden) lock
    assert summary.exit_code == 0 and sorted(p.name for p in out.iterdir()) == [
        ".grefine.lock",
        "reports.jsonl",
        "results.csv",
    ]
    assert read_csv(summary.results_path)[0]["heatmap"] == ""
    for kwargs in ({"fmt": "xml"}, {"batch_size": 0}):
        with pytest.raises(UserError):
            score_files([folder / "small.png"], Brightness(), out, **kwargs)
    with pytest.raises(UserError, match="no images"):
        score_files([], Brightness(), out)


def test_flatten_details() -> None:
    details = {
        "factors": {"overall": 0.5, "technical": {"score": 0.25, "raw": [1, 2]}},
        "file": "clash",
        "note": "hi",
        "alignment": {"prompt_score": 0.7, "phrases": [{"text": "a cat"}]},
        "phrases": [1, 2, 3],
    }
    flat = flatten_details(details)
    assert flat == {
        "overall": 0.5,
        "technical": 0.25,
        "details.file": "clash",
        "note": "hi",
        "alignment.prompt_score": 0.7,
    }
