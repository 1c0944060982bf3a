"""The refine batch runner keeps finished work: per-image errors go on, missing weights stop cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grefine_kit.errors import MissingDependencyError
from grefine_kit.refiner.refiner import RefineResult
from grefine_kit.runner.refine import refine_files
from grefine_kit.runner.refine_work import SingleImageRefiner
from grefine_kit.types import Mask


class FlakyRefiner(SingleImageRefiner):
    """A test double for Refiner: inverts the image; raises what it is told to per file name."""

    def __init__(self, failures: dict[str, Exception]):
        self.failures = failures
        self.calls: list[str] = []

    def refine(self, image: Image.Image, prompt: str, image_id: str = "image") -> RefineResult:
        self.calls.append(image_id)
        if image_id in self.failures:
            raise self.failures[image_id]
        empty = np.zeros((image.height, image.width), np.float32)
        inverted = Image.fromarray(255 - np.asarray(image))
        return RefineResult(
            image=inverted, mask=Mask(binary=empty, soft=empty), report={"prompt_seen": prompt}
        )


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((8, 12, 3), 40 * i, np.uint8)).save(path)
        paths.append(path)
    return paths


def test_a_failing_image_is_recorded_and_the_run_goes_on(images: list[Path], tmp_path: Path):
    refiner = FlakyRefiner({"img1.png": RuntimeError("CUDA out of memory")})
    summary = refine_files(images, refiner, tmp_path / "out", prompts="p", progress=False)
    assert (summary.n_ok, summary.n_failed, summary.exit_code) == (2, 1, 1)
    lines = [json.loads(x) for x in (tmp_path / "out" / "reports.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["ok", "error", "ok"]
    assert "CUDA out of memory" in lines[1]["error"]
    out = np.asarray(Image.open(tmp_path / "out" / "img2.png"))
    assert (out == 255 - 80).all()
    # resume: only the failed image is tried again
    refiner.failures.clear()
    again = refine_files(images, refiner, tmp_path / "out", prompts="p", progress=False)
    assert (again.n_ok, again.n_skipped) == (1, 2)
    assert refiner.calls[-1] == "img1.png"


def test_missing_weights_stop_the_run_but_keep_done_work(images: list[Path], tmp_path: Path):
    refiner = FlakyRefiner({"img1.png": MissingDependencyError("weights X are not available")})
    with pytest.raises(MissingDependencyError):
        refine_files(images, refiner, tmp_path / "out", prompts="p", progress=False)
    assert refiner.calls == ["img0.png", "img1.png"]  # img2 never tried
    assert (tmp_path / "out" / "img0.png").exists()
    lines = (tmp_path / "out" / "reports.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["status"] == "ok"


def test_prompts_come_from_the_csv_mapping(images: list[Path], tmp_path: Path):
    refiner = FlakyRefiner({})
    summary = refine_files(
        images, refiner, tmp_path / "out", prompts={"img0.png": "zero", "img2": "two"}, progress=False
    )
    assert (summary.n_ok, summary.n_failed) == (2, 1)
    report = json.loads((tmp_path / "out" / "img1.report.json").read_text())
    assert report["status"] == "error" and "no prompt" in report["error"]
    assert json.loads((tmp_path / "out" / "img2.report.json").read_text())["prompt_seen"] == "two"
