"""Progress per item: records reach reports.jsonl as each image is done, not per batch; a
non-terminal run prints one line per item; --log-format jsonl gives JSON events on stdout."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.progress import RunProgress, active_progress, log_mode
from grefine_kit.refiner.refiner import RefineResult
from grefine_kit.runner.refine import refine_files
from grefine_kit.runner.refine_work import SingleImageRefiner
from grefine_kit.types import Mask


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(mode: str, durations: list[float], skipped: int = 0, total: int = 4) -> tuple[str, str]:
    out, err, clock = io.StringIO(), io.StringIO(), Clock()
    report = RunProgress("refine", total, mode=mode, out=out, err=err, clock=clock)
    report.planned(skipped)
    clock.now += 30.0  # loading the workers: not counted in any rate
    report.started()
    for i, seconds in enumerate(durations):
        clock.now += seconds
        status = "error" if i == 1 else "ok"
        report.item({"id": f"i{i}", "file": f"i{i}.png", "status": status, "error": "boom"})
    report.close()
    return out.getvalue(), err.getvalue()


def test_text_lines_one_per_item_with_a_sane_eta() -> None:
    out, err = _run("text", [20.0, 2.0, 2.0, 2.0])
    lines = err.splitlines()
    assert out == ""
    assert lines[0] == "refine: 4 item(s) to do; loading models"
    # the first item pays for loading (30 s) and lazily loaded models: no ETA from it alone
    assert lines[1] == "refine [1/4] i0.png: ok (50.0 s)"
    # from the second item on: the rate since the first item (2 s an item, 2 items left)
    assert lines[2] == "refine [2/4] i1.png: error: boom (2.0 s, ETA 0:04)"
    assert lines[3] == "refine [3/4] i2.png: ok (2.0 s, ETA 0:02)"
    assert lines[4] == "refine [4/4] i3.png: ok (2.0 s)"
    assert len(lines) == 5


def test_skipped_items_count_as_done_but_not_in_the_rate() -> None:
    _, err = _run("text", [5.0, 1.0], skipped=2)
    lines = err.splitlines()
    assert lines[0] == "refine: 2 item(s) to do, 2 already done; loading models"
    assert lines[1] == "refine [3/4] i0.png: ok (35.0 s)"
    assert lines[2] == "refine [4/4] i1.png: error: boom (1.0 s)"


def test_jsonl_events_on_stdout_only() -> None:
    out, err = _run("jsonl", [3.0, 1.0, 1.0])
    assert err == ""
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["start", "item", "item", "item", "end"]
    assert events[0] == {"event": "start", "kind": "refine", "total": 4, "skipped": 0, "todo": 4}
    assert [e["done"] for e in events[1:4]] == [1, 2, 3]
    assert events[1]["eta_s"] is None and events[2]["eta_s"] == 2.0
    assert events[2]["status"] == "error" and events[2]["error"] == "boom"
    assert events[1]["seconds"] == 33.0 and events[2]["seconds"] == 1.0
    assert (events[-1]["ok"], events[-1]["failed"], events[-1]["seconds"]) == (2, 1, 35.0)


@pytest.mark.parametrize("mode", ["bar", "off", True, False])
def test_quiet_modes_print_nothing_off_a_terminal(mode: Any) -> None:
    assert _run(mode, [1.0, 1.0]) == ("", "")


def test_auto_off_a_terminal_is_text_lines() -> None:
    _, err = _run("auto", [1.0])
    assert "refine [1/4] i0.png: ok (31.0 s)" in err.splitlines()


def test_a_bar_on_a_terminal_counts_skipped_items_and_steps() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    report = RunProgress("score", 3, mode="auto", err=err)
    report.planned(1)
    report.started()
    with report.active():
        assert active_progress() is report
        report.step(3, 10)  # the hook for progress inside an item
        report.item({"id": "a", "status": "ok"})
    assert active_progress() is None
    report.close()
    text = err.getvalue()
    assert "2/3" in text and "step=3/10" in text
    assert "score [" not in text  # a bar, not text lines


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown progress mode"):
        RunProgress("score", 1, mode="xml")
    assert [log_mode(m) for m in (True, False, "text", "jsonl")] == ["bar", "off", "text", "jsonl"]
    with pytest.raises(ValueError, match="unknown progress mode 'xml'"):
        log_mode("xml")


def test_planned_says_models_load_only_where_they_do() -> None:
    err = io.StringIO()
    RunProgress("score", 3, mode="text", err=err).planned(1)
    RunProgress("score", 3, mode="text", err=err).planned(1, loading=False)
    RunProgress("score", 3, mode="text", err=err).planned(3)
    assert err.getvalue().splitlines() == [
        "score: 2 item(s) to do, 1 already done; loading models",
        "score: 2 item(s) to do, 1 already done",
        "score: 0 item(s) to do, 3 already done",
    ]


class StreamingRefiner(SingleImageRefiner):
    """refine_many yields lazily; before each result after the first it notes how many records
    the run folder's log already holds (per-item appending shows there)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.seen: list[int] = []

    def refine_many(self, items: list[tuple[Any, ...]], batch_size: int) -> Iterator[RefineResult]:
        for k, (image, *_rest) in enumerate(items):
            if k:
                self.seen.append(len(self.log.read_text().splitlines()) if self.log.exists() else 0)
            empty = np.zeros((image.height, image.width), np.float32)
            report = {"timings": {"refine": 0.25}}
            yield RefineResult(image=image, mask=Mask(binary=empty, soft=empty), report=report)


def _images(tmp_path: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(path)
        paths.append(path)
    return paths


def test_refine_appends_each_record_as_its_image_is_done(tmp_path: Path) -> None:
    paths = _images(tmp_path, 4)
    out = tmp_path / "out"
    refiner = StreamingRefiner(out / "reports.jsonl")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        summary = refine_files(paths, refiner, out, prompts="p", batch_size=4, progress="text")
    assert summary.n_ok == 4
    # one batch of 4: the 1st record was in the log before the 2nd image came out, and so on
    assert refiner.seen == [1, 2, 3]
    records = [json.loads(x) for x in (out / "reports.jsonl").read_text().splitlines()]
    assert all(r["seconds_total"] >= 0.25 for r in records)  # load + refine (0.25) + write
    assert [line.split(":")[0] for line in err.getvalue().splitlines()[1:]] == [
        f"refine [{i}/4] {p}" for i, p in enumerate(paths, 1)
    ]


def _piqe_images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_cli_score_jsonl_and_text_lines(tmp_path: Path) -> None:
    from grefine_kit.cli import cli

    folder = _piqe_images(tmp_path)
    args = ["score", str(folder), "--indicator", "piqe-map", "--no-maps"]
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a"), "--log-format", "jsonl"])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]  # stdout: JSON lines only
    assert [e["event"] for e in events] == ["start", "item", "item", "item", "end"]
    assert all(isinstance(e["score"], float) for e in events[1:4])
    # the default (auto) off a terminal: one line per item on stderr, the table on stdout
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("score [")]
    assert len(lines) == 3 and all(": ok (" in line for line in lines), res.stderr
    assert "p0.png" in res.stdout and "{" not in res.stdout
