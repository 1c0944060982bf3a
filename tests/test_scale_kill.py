"""SIGKILL at random moments: a batched refine or score run killed anywhere, then rerun, ends
with every item recorded ok exactly once, every PNG/NPY/JSON whole, nothing finished redone,
and the same bytes as a run never interrupted.

Unlike tests/test_faults.py (kills at named write boundaries), the kill here comes from the
parent after a random delay drawn over the length of a clean run (seeded, so a failure can be
replayed). The tiny models are built once and each trial forks a child that runs the batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from grefine_kit.testing.run_files import check_files_whole

PROMPT = "a red house with a blue door"
N_IMAGES = {"refine": 6, "score": 40}  # scoring is ~100x faster: more images, room for kills
TRIALS = 5


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import torch

    from grefine_kit.api import build_indicator
    from grefine_kit.recipes.recipe import Recipe

    inputs = tmp_path_factory.mktemp("kill-inputs")
    rng = np.random.default_rng(11)
    for kind, n in N_IMAGES.items():
        for i in range(n):
            sub = inputs / kind / ("x" if i % 2 else "y")
            sub.mkdir(parents=True, exist_ok=True)
            pixels = (rng.random((24, 32 + 4 * (i % 6), 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(sub / f"im{i}.png")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # no OpenMP pool to inherit across fork; equal numbers in every process
    state: dict[str, Any] = {
        "inputs": inputs,
        "refiner": Recipe.load("tiny").build(),
        "indicator": build_indicator("pq-map", recipe="tiny"),
    }
    for kind in ("refine", "score"):
        clean = tmp_path_factory.mktemp(f"clean-{kind}")
        _run(kind, state, clean)  # also loads the models: the forked children start warm
        started = time.perf_counter()
        _run(kind, state, tmp_path_factory.mktemp(f"timed-{kind}"))
        state[f"{kind}-seconds"] = time.perf_counter() - started
        state[f"{kind}-clean"] = clean
    yield state
    torch.set_num_threads(threads)


def _files(state: dict[str, Any], kind: str) -> list[Path]:
    return sorted((Path(state["inputs"]) / kind).rglob("*.png"))


def _run(kind: str, state: dict[str, Any], out: Path) -> Any:
    from grefine_kit.runner.refine import refine_files
    from grefine_kit.runner.score import score_files

    if kind == "refine":
        return refine_files(
            _files(state, kind),
            state["refiner"],
            out,
            prompts=PROMPT,
            save_maps=True,
            progress=False,
            batch_size=2,
        )
    return score_files(_files(state, kind), state["indicator"], out, batch_size=2, progress=False)


def _kill_after(kind: str, state: dict[str, Any], out: Path, delay: float) -> bool:
    """Fork a child running ``kind`` into ``out``; SIGKILL it after ``delay`` s. True when the
    kill came before the child finished."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            _run(kind, state, out)
            code = 0
        finally:
            os._exit(code)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


@pytest.mark.parametrize("kind", ["refine", "score"])
def test_random_kills_then_rerun_end_with_every_item_once(
    kind: str, setup: dict[str, Any], tmp_path: Path
) -> None:
    rng = np.random.default_rng(2026)
    total = setup[f"{kind}-seconds"]
    clean: Path = setup[f"{kind}-clean"]
    killed = 0
    for trial in range(TRIALS):
        out = tmp_path / f"trial{trial}"
        # the fork's own start-up comes first: spread the kills over the whole run
        delay = float(rng.uniform(0.0, total * 1.2))
        killed += _kill_after(kind, setup, out, delay)
        log = out / "reports.jsonl"
        whole_lines = log.read_bytes().split(b"\n")[:-1] if log.exists() else []
        finished = {json.loads(x)["id"] for x in whole_lines if json.loads(x)["status"] == "ok"}

        summary = _run(kind, setup, out)
        assert summary.n_failed == 0, f"trial {trial} (kill at {delay:.2f} s)"
        assert summary.n_skipped == len(finished), f"finished work redone (trial {trial}, {delay:.2f} s)"
        records = [json.loads(x) for x in log.read_text().splitlines()]
        ok = Counter(r["id"] for r in records if r["status"] == "ok")
        assert sorted(ok) == sorted(
            json.loads(x)["id"] for x in (clean / "reports.jsonl").read_text().splitlines()
        )
        assert set(ok.values()) == {1}, f"an item recorded ok twice: {ok}"
        check_files_whole(out)
        for p in clean.iterdir():
            if p.suffix in (".png", ".npy"):
                assert _sha(out / p.name) == _sha(p), f"{p.name} differs from the clean run (trial {trial})"
        if kind == "score":
            assert (out / "results.csv").read_text() == (clean / "results.csv").read_text()
    assert killed >= 2, "too few kills landed inside a run: the test did not test much"
