"""Outputs-unchanged guard (issue 21): refining and scoring a small fixed set must give the same files.

Two tiny generated images (a prompt each) are refined with the ``tiny`` and ``demo`` recipes and
scored with their indicators, through the CLI in process. Every output is compared with the
fixtures under ``tests/data/outputs-unchanged/``:

- PNG files: byte for byte;
- records (``*.report.json``, ``reports.jsonl``, ``results.jsonl``): equal after dropping what
  depends on the run and not on the computation (timings, ``seconds*``, the input's mtime, library
  versions, the absolute input path), with floats compared to a relative 1e-6;
- NPY maps whose bytes differ: values within 1e-6 (AQ-Map's maps and scores can differ in their
  last float32 bits depending on what the process encoded before: ~4e-8 in the full suite).

A refactor that changes no behaviour keeps this test green. A deliberate change of outputs
regenerates the fixtures, reviewed in the same commit::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python tests/test_outputs_unchanged.py

The fixtures were made on CPU with one torch thread (tests/conftest.py sets it); another CPU
architecture may round a float differently, which this test reports as a changed file.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).parent / "data" / "outputs-unchanged"

# (name, CLI arguments after the command); each run writes into <out>/<name>.
RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("refine-tiny", ("refine", "--recipe", "tiny", "--maps")),
    ("refine-demo", ("refine", "--recipe", "demo", "--maps")),
    ("score-tiny-pq", ("score", "--recipe", "tiny", "--indicator", "pq-map", "--format", "json")),
    ("score-tiny-aq", ("score", "--recipe", "tiny", "--indicator", "aq-map", "--format", "json")),
    ("score-demo-piqe", ("score", "--recipe", "demo", "--indicator", "piqe-map", "--format", "json")),
)
RUN_DEPENDENT = frozenset({"timings", "seconds", "seconds_total", "mtime_ns", "versions"})
RECORD_SUFFIXES = (".json", ".jsonl")
BYTE_SUFFIXES = (".png", ".npy")


def make_inputs(folder: Path) -> Path:
    """Write the fixed input set into ``folder`` and return its manifest (id, image, prompt)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:48, 0:64]
    house = np.stack([xx * 4, yy * 5, np.full((48, 64), 90)], -1).astype(np.uint8)
    house[10:26, 20:40] = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)  # a planted defect
    Image.fromarray(house).save(folder / "house.png")
    box = np.zeros((40, 56, 3), np.uint8)
    box[..., 2] = 200
    box[8:30, 10:30] = (220, 30, 30)
    Image.fromarray(box).save(folder / "box.png")
    manifest = folder / "items.csv"
    manifest.write_text(
        "id,image,prompt\n"
        "house.png,house.png,a red house with a blue door\n"
        "box.png,box.png,a red box on a blue wall\n",
        encoding="utf-8",
    )
    return manifest


def produce(out: Path) -> None:
    """Run every entry of :data:`RUNS` on the fixed inputs; outputs land in ``out/<run name>``."""
    from click.testing import CliRunner

    from grefine_kit.cli import cli

    manifest = make_inputs(out / "inputs")
    for name, args in RUNS:
        command = [*args, "--manifest", str(manifest), "--out", str(out / name), "--log-format", "off"]
        result = CliRunner().invoke(cli, command)
        if result.exit_code != 0:
            raise AssertionError(f"{name}: exit {result.exit_code}\n{result.output}")


def normalized(value: Any) -> Any:
    """A record without its run-dependent fields; absolute input paths reduced to the file name."""
    if isinstance(value, dict):
        return {
            key: Path(item).name if key == "file" and isinstance(item, str) else normalized(item)
            for key, item in value.items()
            if key not in RUN_DEPENDENT
        }
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return value


def read_records(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        rows.sort(key=lambda row: json.dumps(normalized(row), sort_keys=True))  # engine order may vary
        return [normalized(row) for row in rows]
    return [normalized(json.loads(text))]


def differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected`` (floats to a relative 1e-6)."""
    if isinstance(expected, float) and isinstance(actual, float):
        close = math.isclose(expected, actual, rel_tol=1e-6, abs_tol=1e-9)
        return [] if close else [f"{where}: {expected!r} != {actual!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return [f"{where}: keys {sorted(expected)} != {sorted(actual)}"]
        return [d for key in expected for d in differences(expected[key], actual[key], f"{where}.{key}")]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(expected)} items != {len(actual)}"]
        pairs = enumerate(zip(expected, actual, strict=True))
        return [d for i, (e, a) in pairs for d in differences(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: {expected!r} != {actual!r}"]


def outputs(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in BYTE_SUFFIXES + RECORD_SUFFIXES
    )


def npy_difference(where: str, want: Path, got: Path) -> list[str]:
    """A float map whose bytes differ: the same shape and dtype, and every value within 1e-6
    (AQ-Map's maps can differ in their last float32 bits depending on what the process encoded
    before; a real change of behaviour moves them far more)."""
    a, b = np.load(want), np.load(got)
    if a.shape != b.shape or a.dtype != b.dtype:
        return [f"{where}: bytes differ ({a.dtype}{a.shape} != {b.dtype}{b.shape})"]
    worst = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
    return [] if worst <= 1e-6 else [f"{where}: bytes differ (max |diff| {worst:.3g})"]


def compare(expected_root: Path, actual_root: Path) -> list[str]:
    problems: list[str] = []
    for name, _ in RUNS:
        expected, actual = expected_root / name, actual_root / name
        if outputs(expected) != outputs(actual):
            problems.append(f"{name}: files {outputs(expected)} != {outputs(actual)}")
            continue
        for rel in outputs(expected):
            want, got = expected / rel, actual / rel
            if want.suffix == ".npy" and want.read_bytes() != got.read_bytes():
                problems += npy_difference(f"{name}/{rel}", want, got)
            elif want.suffix in BYTE_SUFFIXES:
                if want.read_bytes() != got.read_bytes():
                    problems.append(f"{name}/{rel}: bytes differ")
            else:
                problems += [f"{name}/{rel}{d}" for d in differences(read_records(want), read_records(got))]
    return problems


def test_outputs_are_unchanged(tmp_path: Path) -> None:
    assert FIXTURES.is_dir(), "no fixtures: run `python tests/test_outputs_unchanged.py` to make them"
    produce(tmp_path)
    problems = compare(FIXTURES, tmp_path)
    assert not problems, "outputs changed:\n" + "\n".join(problems[:40])


def test_the_guard_sees_a_changed_output(tmp_path: Path) -> None:
    """The comparison is not blind: a one-byte change of a map and a changed score both show."""
    copy = tmp_path / "copy"
    shutil.copytree(FIXTURES, copy)
    assert compare(FIXTURES, copy) == []
    npy = next((copy / "refine-tiny").glob("*.npy"))
    data = bytearray(npy.read_bytes())
    data[-1] ^= 1
    npy.write_bytes(bytes(data))
    record = next((copy / "score-tiny-aq").glob("results.jsonl"))
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    rows[0]["score"] += 1e-4
    record.write_text("".join(json.dumps(row) + "\n" for row in rows))
    problems = compare(FIXTURES, copy)
    assert any(npy.name in p and "bytes differ" in p for p in problems), problems
    assert any("results.jsonl" in p and ".score" in p for p in problems), problems


def regenerate() -> None:
    """Rewrite the fixtures from the code as it is now (a deliberate change of outputs)."""
    import torch

    torch.set_num_threads(1)  # as in the tests (tests/conftest.py)
    with tempfile.TemporaryDirectory() as tmp:
        produce(Path(tmp))
        shutil.rmtree(FIXTURES, ignore_errors=True)
        for name, _ in RUNS:
            for rel in outputs(Path(tmp) / name):
                target = FIXTURES / name / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / name / rel, target)
    print(f"fixtures rewritten under {FIXTURES}")


if __name__ == "__main__":
    if sys.argv[1:]:
        raise SystemExit("usage: python tests/test_outputs_unchanged.py  (rewrites the fixtures)")
    regenerate()
