"""Our metrics against their published implementations' scores (pyiqa's calibration set), and
``grefine metrics check``.

The calibration images are not in this repository (PROVENANCE.md of the set: TID2013 licence):
they are read from ``../shared/data/iqa-calibration`` beside the repository root (CI has them
there) or from ``$GREFINE_CALIBRATION_DIR``; without them the official-score tests skip, saying
so. The command's own tests build tiny calibration folders here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit import hookimpl
from grefine_kit.cli import cli
from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.evaluation.metric_check import (
    KNOWN_TARGETS,
    calibration_targets,
    load_calibration,
    run_target,
)

REPO = Path(__file__).resolve().parents[1]
CALIBRATION = Path(
    os.environ.get("GREFINE_CALIBRATION_DIR") or REPO.parent / "shared" / "data" / "iqa-calibration"
)
#: weight-free metrics that must reproduce the official scores wherever they are installed
OFFLINE = ("piqe", "psnr", "ssim")


@pytest.fixture(scope="module")
def calibration() -> Any:
    if not (CALIBRATION / "results_official.csv").is_file():
        pytest.skip(
            f"calibration set not found at {CALIBRATION} (expected ../shared/data/iqa-calibration beside "
            "the repository, or GREFINE_CALIBRATION_DIR): the official-score checks need it"
        )
    return load_calibration(CALIBRATION)


@pytest.mark.parametrize("target", [t for t in KNOWN_TARGETS if t.name in OFFLINE], ids=lambda t: t.name)
def test_offline_metrics_reproduce_the_official_scores(calibration: Any, target: Any) -> None:
    from grefine_kit.parts.registry import get_registry

    assert target.name in get_registry().names("metric"), f"built-in metric {target.name!r} is not registered"
    result = run_target(target, calibration)
    assert not result.unavailable and not result.error, (result.unavailable, result.error)
    assert len(result.ours) == len(calibration.images) == 5
    diffs = dict(zip(calibration.images, result.diffs, strict=True))
    assert result.reproduced, f"{target.name}: ours - official = {diffs} (tolerance {target.tolerance})"


def test_piqe_official_values_and_counts(calibration: Any) -> None:
    # the five official values (MATLAB piqe), and why each is what it is
    from grefine_kit.images.loading import load_image
    from grefine_kit.indicators.piqe import grey_levels, piqe

    assert calibration.official["piqe"] == (100.0, 21.62, 35.86, 41.15, 76.95)
    results = [piqe(grey_levels(np.asarray(load_image(calibration.dist / n)))) for n in calibration.images]
    assert not results[0].active.any()  # I03 (heavy blur): no active block, the score is 100
    assert results[4].artifact.sum() > 0.9 * results[4].active.sum()  # I19 (JPEG): blocking everywhere
    for result, official in zip(results, calibration.official["piqe"], strict=True):
        assert result.score == pytest.approx(official, abs=0.01)


def test_every_installed_target_runs_or_says_why(calibration: Any) -> None:
    # what `grefine metrics check` runs: each built-in target scores every image; plugin
    # targets either score or come back as unavailable with a reason, never as a crash
    targets = calibration_targets(calibration)
    names = [t.name for t in targets]
    assert "piqe" in names
    for target in targets:
        if target.name.startswith("pyiqa:"):
            continue  # pyiqa's own metrics: slow to import, and they are not ours to check
        result = run_target(target, calibration)
        assert not result.error, (target, result.error)
        assert result.unavailable or len(result.ours) == len(calibration.images), target


# -- the command, on tiny folders --------------------------------------------------------------


def _folder(tmp_path: Path, rows: dict[str, list[float]], *, images: int = 2, ref: bool = True) -> Path:
    root = tmp_path / "calib"
    (root / "dist").mkdir(parents=True)
    if ref:
        (root / "ref").mkdir()
    rng = np.random.default_rng(0)
    names = [f"im{i}.png" for i in range(images)]
    for name in names:
        arr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(arr, "RGB").save(root / "dist" / name)
        if ref:
            Image.fromarray(arr, "RGB").save(root / "ref" / name)
    lines = ["Method," + ",".join(names)] + [
        f"{row}," + ",".join(str(v) for v in vals) for row, vals in rows.items()
    ]
    (root / "results_official.csv").write_text("\n".join(lines) + "\n")
    return root


class _Missing:
    name = "calib-missing"
    lower_better = False
    score_range = (0.0, 1.0)
    needs_prompt = False

    def score(self, images: Any, prompts: Any = None) -> list[float]:
        raise MissingDependencyError("calib-missing weights are not here; fetch them first")


class _Broken(_Missing):
    name = "calib-broken"

    def score(self, images: Any, prompts: Any = None) -> list[float]:
        raise RuntimeError("a bug")


class _Plugin:
    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register("calib-missing", _Missing, lower_better=False, score_range=(0.0, 1.0))
        register("test:calib-broken", _Broken, lower_better=False, score_range=(0.0, 1.0))


def _piqe_values(root: Path) -> list[float]:
    from grefine_kit.parts.registry import create_part

    metric = create_part("metric", "piqe")
    return [metric.score([Image.open(p).convert("RGB")])[0] for p in sorted((root / "dist").iterdir())]


def test_check_prints_ours_vs_official_and_marks_what_cannot_run(
    tmp_path: Path, register_plugin: Any
) -> None:
    register_plugin(_Plugin(), name="calib-test-plugin")
    root = _folder(
        tmp_path, {"piqe": [0.0, 0.0], "calib-missing": [1, 2], "calib_broken": [3, 4], "other": [5, 6]}
    )
    piqe_values = _piqe_values(root)
    args = ["metrics", "check", str(root)]
    for name in ("piqe", "calib-missing", "test:calib-broken"):
        args += ["--metric", name]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "piqe  (official row 'piqe', tolerance 0.1)" in out
    assert f"im0.png             0.0000{piqe_values[0]:>12.4f}{piqe_values[0]:>+11.4f}" in out
    assert "NOT reproduced" in out  # the official values here are made up
    assert "calib-missing  (official row 'calib-missing'): cannot run here: calib-missing weights" in out
    # a plugin prefix (NAME or PREFIX:NAME) and '_' vs '-' still find the row
    assert "test:calib-broken  (official row 'calib_broken')" in out and "error: RuntimeError: a bug" in out
    assert "summary: 1 outside tolerance, 1 cannot run here, 1 failed" in out
    assert "[1/3] piqe ..." in result.stderr and "piqe: im1.png" in result.stderr


def test_check_agrees_with_itself_when_official_is_ours(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"piqe": [0.0, 0.0]})
    values = _piqe_values(root)
    (root / "results_official.csv").write_text(f"Method,im0.png,im1.png\npiqe,{values[0]!r},{values[1]!r}\n")
    result = CliRunner().invoke(cli, ["metrics", "check", str(root), "--metric", "piqe"])
    assert result.exit_code == 0, result.output
    assert "max |diff| 0.0000  reproduced" in result.stdout


def _csv(root: Path, text: str) -> Path:
    (root / "results_official.csv").write_text(text)
    return root


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "nowhere", "not a folder"),
        (lambda root: (root / "results_official.csv").unlink() or root, "no results_official.csv"),
        (
            lambda root: (root / "dist" / "im1.png").unlink() or root,
            "im1.png is in results_official.csv but not",
        ),
        (lambda root: _csv(root, "Method,im0.png\npiqe,x\n"), "not a number"),
        (lambda root: _csv(root, "Method,im0.png\npiqe,1,2\n"), "line 2: 3 cells, the header has 2"),
        (lambda root: _csv(root, "Method\n"), "expected a header"),
    ],
)
def test_bad_folders_are_one_line_and_exit_2(tmp_path: Path, make: Any, message: str) -> None:
    root = make(_folder(tmp_path, {"piqe": [1.0, 2.0]}))
    result = CliRunner().invoke(cli, ["metrics", "check", str(root)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_unknown_metric_is_a_user_error(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"piqe": [1.0, 2.0]})
    result = CliRunner().invoke(cli, ["metrics", "check", str(root), "--metric", "clipscore"])
    assert result.exit_code == 2 and "'clipscore' is not installed or has no row" in result.stderr
    with pytest.raises(UserError, match="no dist/ folder"):
        (root / "dist" / "im0.png").unlink()
        (root / "dist" / "im1.png").unlink()
        (root / "dist").rmdir()
        load_calibration(root)
