"""Fault injection: a run SIGKILLed at each write boundary, then rerun, ends with every item
done exactly once, every file whole and no input touched.

The kill comes from the runner's own fault points (``GREFINE_FAULT=point:count``), in a real
child process: the tiny models are built once in this process and each case forks a child that
runs the batch and kills itself at the named point (building the models per process would cost
~15 s a case). One case goes through the real ``grefine`` command in a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from grefine_kit.runs import faults
from grefine_kit.runs.faults import ENV_FAULT
from grefine_kit.testing.run_files import check_files_whole

PROMPT = "a red house with a blue door"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fault-inputs")
    rng = np.random.default_rng(7)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def parts(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The tiny refiner and PQ-Map, warmed up (models built) before any fork, and a clean run's
    outputs to compare with."""
    import torch

    from grefine_kit.api import build_indicator
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runner.refine import refine_files

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # no OpenMP pool to inherit across fork; equal numbers in every process
    refiner = Recipe.load("tiny").build()
    indicator = build_indicator("pq-map", recipe="tiny")
    clean = tmp_path_factory.mktemp("clean")
    summary = refine_files(sorted(inputs.glob("*.png")), refiner, clean, prompts=PROMPT, save_maps=True)
    assert summary.n_ok == 3
    yield {"refiner": refiner, "indicator": indicator, "clean": clean}
    torch.set_num_threads(threads)


def _run(kind: str, parts: dict[str, Any], inputs: Path, out: Path) -> Any:
    from grefine_kit.runner.refine import refine_files
    from grefine_kit.runner.score import score_files

    files = sorted(inputs.glob("*.png"))
    if kind == "refine":
        return refine_files(files, parts["refiner"], out, prompts=PROMPT, save_maps=True, progress=False)
    return score_files(files, parts["indicator"], out, batch_size=1, progress=False)


def _killed_child(kind: str, fault: str, parts: dict[str, Any], inputs: Path, out: Path) -> int:
    """Fork a child that runs ``kind`` with ``GREFINE_FAULT=fault``; its wait status."""
    pid = os.fork()
    if pid == 0:  # the child: run until the fault point kills it
        code = 3
        try:
            import torch

            torch.set_num_threads(1)
            os.environ[ENV_FAULT] = fault
            faults._passes.clear()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            _run(kind, parts, inputs, out)
            code = 4  # the fault point was never reached
        finally:
            os._exit(code)
    deadline = time.monotonic() + 90
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the child of {kind} {fault} hung")
        time.sleep(0.02)


REFINE_FAULTS = [
    "before-item:2",  # between items
    "mid-output-write:2",  # half of the first item's mask written
    "after-output-write:2",  # second item's outputs written, no record yet
    "between-record-and-log:1",  # report.json written, log line not
    "mid-log-line:2",  # half of the second log line written and synced
]
SCORE_FAULTS = [
    "before-item:2",
    "mid-output-write:3",
    "after-output-write:1",
    "between-record-and-log:2",
    "mid-log-line:2",
    "after-log-line:3",
]


@pytest.mark.parametrize(
    ("kind", "fault"), [("refine", f) for f in REFINE_FAULTS] + [("score", f) for f in SCORE_FAULTS]
)
def test_kill_then_rerun_does_every_item_exactly_once(
    kind: str, fault: str, parts: dict[str, Any], inputs: Path, tmp_path: Path
) -> None:
    before = {p.name: _sha(p) for p in inputs.iterdir()}
    out = tmp_path / "out"
    status = _killed_child(kind, fault, parts, inputs, out)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"status {status}"

    log = out / "reports.jsonl"
    finished_before = Counter(
        json.loads(line)["id"]
        for line in (log.read_bytes().decode().splitlines(keepends=True) if log.exists() else [])
        if line.endswith("\n") and json.loads(line)["status"] == "ok"
    )
    summary = _run(kind, parts, inputs, out)
    assert summary.n_failed == 0
    assert summary.n_skipped == len(finished_before)  # nothing finished is redone

    records = [json.loads(line) for line in log.read_text().splitlines()]
    ok = Counter(r["id"] for r in records if r["status"] == "ok")
    assert ok == Counter({"a.png": 1, "b.png": 1, "c.png": 1}), records
    check_files_whole(out)
    assert {p.name: _sha(p) for p in inputs.iterdir()} == before  # no input touched
    if kind == "refine":  # a resumed run makes exactly what an uninterrupted one does
        for name in ("a", "b", "c"):
            assert _sha(out / f"{name}.png") == _sha(parts["clean"] / f"{name}.png")
            assert _sha(out / f"{name}.pq.map.npy") == _sha(parts["clean"] / f"{name}.pq.map.npy")
    else:
        import csv

        with (out / "results.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert [(Path(r["file"]).name, r["status"]) for r in rows] == [
            ("a.png", "ok"),
            ("b.png", "ok"),
            ("c.png", "ok"),
        ]


def test_the_cli_honours_the_fault_hook_and_resumes(
    inputs: Path, parts: dict[str, Any], tmp_path: Path
) -> None:
    """The real command in a fresh interpreter: killed mid log line, rerun, whole results."""
    out = tmp_path / "scored"
    cmd = [
        sys.executable,
        "-m",
        "grefine_kit.cli",
        "score",
        str(inputs),
        "--recipe",
        "tiny",
        "--out",
        str(out),
    ]
    cmd += ["--batch-size", "1"]
    env = {**os.environ, ENV_FAULT: "mid-log-line:2"}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert not (out / "reports.jsonl").read_bytes().endswith(b"\n")  # the half line is there
    # the rerun in process (the models are warm here): the same command line
    from click.testing import CliRunner

    from grefine_kit.cli import cli

    second = CliRunner().invoke(cli, cmd[3:])
    assert second.exit_code == 0, second.output
    assert "dropped a partial last line" in second.stderr and "1 already done" in second.stderr
    ids = [json.loads(line)["id"] for line in (out / "reports.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["a.png", "b.png", "c.png"]
    check_files_whole(out)
