"""Fault injection on every user path a run reads or writes (issue 20, "done when"): links
planted in ``--out`` (at every file the run writes, its lock, its log, a stale temp name, a
sub-folder), special files, over-long names and NUL bytes, through ``score``, ``refine``,
``evaluate``, ``benchmark`` and ``report`` with the ``tiny`` recipe. Each case checks that
nothing outside ``--out`` changed, that every other item still has its record, and that each
problem is one clear line (exit 2) or that item's one-line error (exit 1), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.cli import cli
from grefine_kit.runs.layout import OutputNames

LONG = "l" * 230 + ".png"  # fits the disk, but its outputs would not without shortening
NAMES = ["a.png", "z.png", LONG]
TINY = ["--recipe", "tiny"]


def _snapshot(root: Path, skip: Path) -> dict[str, Any]:
    """Everything under ``root`` except ``skip``: kind, link target or content hash."""
    seen: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == skip or skip in here.parents:
            continue
        for name in dirs + files:
            p = here / name
            if p == skip:
                continue
            if p.is_symlink():
                seen[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                seen[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            elif p.is_dir():
                seen[str(p)] = ("dir",)
            else:
                seen[str(p)] = ("other",)
    return seen


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # a run writing to the working folder would show too
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, name in enumerate(NAMES):
        Image.new("RGB", (32, 24), (40 + 80 * i, 90, 160 - 50 * i)).save(inputs / name)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("precious\n")
    (tmp_path / "prompts.csv").write_text("image,prompt\n" + "".join(f"{n},a red house\n" for n in NAMES))
    return tmp_path


def _plant(out: Path, names: list[str], home: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        (out / name).symlink_to(home / "outside" / "victim.txt")


def _stems() -> list[str]:
    from grefine_kit.runs.layout import output_stem

    return [output_stem(n, Path(n)) for n in NAMES]


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    err = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        err += f"\nTraceback: {result.exception!r}"
    return result.exit_code, err


def _records(out: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for line in (out / "reports.jsonl").read_text().splitlines():
        rec = json.loads(line)
        found[rec["id"]] = rec
    return found


def _one_line(code: int, err: str, *words: str) -> None:
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("grefine: error:")]
    assert len(lines) == 1, err
    assert all(w in lines[0] for w in words), err


def _all_recorded(code: int, err: str, out: Path, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    assert code == (1 if failing else 0) and "Traceback" not in err, err
    records = _records(out)
    assert set(NAMES) <= set(records), sorted(records)
    for item_id, rec in records.items():
        if item_id in failing:
            assert rec["status"] == "error" and "\n" not in rec["error"], rec
        elif item_id in NAMES:
            assert rec["status"] == "ok", rec


def _outputs(stem: str, refine: bool) -> list[str]:
    names = OutputNames(stem)
    if refine:
        return [
            names.image,
            names.report,
            names.mask,
            *(f(r) for r in ("pq", "aq") for f in (names.heatmap, names.raw_map)),
        ]
    return [names.heatmap(), names.raw_map()]


Case = Callable[[Path, Path], None]


def score_with_links_everywhere(home: Path, out: Path) -> None:
    planted = [n for s in _stems() for n in _outputs(s, refine=False)]
    _plant(out, [*planted, "results.csv", "report.html", ".a.heatmap.png.123-abcd1234.tmp"], home)
    _all_recorded(*_invoke("score", str(home / "in"), *TINY, "--out", str(out)), out)
    code, err = _invoke("report", str(out))
    assert code == 0, err
    assert not any((out / n).is_symlink() for n in planted)


def refine_with_links_everywhere(home: Path, out: Path) -> None:
    _plant(out, [n for s in _stems() for n in _outputs(s, refine=True)], home)
    args = ["refine", str(home / "in"), *TINY, "--prompt", "a red house", "--maps", "--out", str(out)]
    _all_recorded(*_invoke(*args), out)


def linked_lock(home: Path, out: Path) -> None:
    _plant(out, [".grefine.lock"], home)
    _one_line(*_invoke("score", str(home / "in"), *TINY, "--out", str(out)), ".grefine.lock", "link")


def linked_log(home: Path, out: Path) -> None:
    _plant(out, ["reports.jsonl"], home)
    args = ["refine", str(home / "in"), *TINY, "--prompt", "a house", "--out", str(out)]
    _one_line(*_invoke(*args), "reports.jsonl", "link")


def dangling_log_link(home: Path, out: Path) -> None:
    out.mkdir()
    (out / "reports.jsonl").symlink_to(home / "outside" / "new.jsonl")  # O_CREAT would make it
    _one_line(*_invoke("score", str(home / "in"), *TINY, "--out", str(out)), "reports.jsonl")
    assert not (home / "outside" / "new.jsonl").exists()


def fifo_log(home: Path, out: Path) -> None:
    out.mkdir()
    os.mkfifo(out / "reports.jsonl")
    _one_line(*_invoke("score", str(home / "in"), *TINY, "--out", str(out)), "reports.jsonl", "regular")


def evaluate_with_links(home: Path, out: Path) -> None:
    (home / "mos.csv").write_text("".join(f"{n},{i}\n" for i, n in enumerate(["image,mos", *NAMES])))
    stems = _stems()
    _plant(
        out, ["evaluation.json", "results.csv", *(n for s in stems for n in _outputs(s, refine=False))], home
    )
    args = ["evaluate", str(home / "mos.csv"), "--root", str(home / "in"), *TINY, "--maps", "--out", str(out)]
    _all_recorded(*_invoke(*args), out)


def benchmark_with_links(home: Path, out: Path) -> None:
    args = ["benchmark", str(home / "in"), "--prompts", str(home / "prompts.csv"), *TINY, "--metric", "piqe"]
    _plant(out, ["score-cache.jsonl"], home)
    _one_line(*_invoke(*args, "--out", str(out)), "score-cache.jsonl", "link")
    other = home / "bench2"
    other.mkdir()
    (other / "tiny").symlink_to(home / "outside")  # a recipe's sub-folder
    _one_line(*_invoke(*args, "--out", str(other)), "tiny", "link")


def long_paths(home: Path, out: Path) -> None:
    too_long = "n" * 300
    image = str(home / "in")
    _one_line(*_invoke("score", image, *TINY, "--out", str(home / too_long)), "too long")
    _one_line(*_invoke("score", image, *TINY, "--prompts", str(home / too_long), "--out", str(out)))
    _one_line(*_invoke("score", image, "--recipe", str(home / f"{too_long}.toml"), "--out", str(out)))
    _one_line(*_invoke("score", *TINY, "--manifest", str(home / f"{too_long}.csv"), "--out", str(out)))
    _one_line(*_invoke("report", str(home / too_long)))
    # a manifest row naming a file too long for the disk: that item's error, the others done
    rows = [f"{Path(n).stem},in/{n},a house" for n in NAMES]
    (home / "m.csv").write_text("\n".join(["id,image,prompt", *rows, f"long,in/{too_long}.png,a cow"]) + "\n")
    code, err = _invoke("score", *TINY, "--manifest", str(home / "m.csv"), "--out", str(out))
    assert code == 1 and "Traceback" not in err, err
    records = _records(out)
    assert [records[Path(n).stem]["status"] for n in NAMES] == ["ok"] * 3
    assert records["long"]["status"] == "error" and "\n" not in records["long"]["error"]
    _one_line(*_invoke("report", str(out), "--out", str(home / f"{too_long}.html")), "too long")


def nul_bytes(home: Path, out: Path) -> None:
    (home / "p.csv").write_text("image,prompt\na\0.png,a cat\nz.png,a dog\n" + f"{LONG},a cow\n")
    args = ["refine", str(home / "in"), *TINY, "--prompts", str(home / "p.csv"), "--out", str(out)]
    _all_recorded(*_invoke(*args), out, failing={"a.png"})  # no prompt for a.png: its error only
    (home / "r.toml").write_text('name = "x\0y"\n')
    _one_line(*_invoke("score", str(home / "in"), "--recipe", str(home / "r.toml"), "--out", str(out)))
    # a hand-edited log with NUL bytes in its fields: the rerun and the report go on
    with (out / "reports.jsonl").open("a") as fh:
        fh.write(json.dumps({"id": "x\0.png", "file": "a\0b", "output": "x\0.png", "status": "ok"}) + "\n")
    code, err = _invoke("report", str(out))
    assert code == 0, err
    (home / "mos.csv").write_text("image,mos\na\0.png,1\nz.png,2\n" + f"{LONG},3\n")
    args = ["evaluate", str(home / "mos.csv"), "--root", str(home / "in"), *TINY, "--out", str(home / "ev")]
    code, err = _invoke(*args)
    assert code in (0, 1, 2) and "Traceback" not in err, err


CASES: list[Case] = [
    score_with_links_everywhere,
    refine_with_links_everywhere,
    linked_lock,
    linked_log,
    dangling_log_link,
    fifo_log,
    evaluate_with_links,
    benchmark_with_links,
    long_paths,
    nul_bytes,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_nothing_outside_out_changes(home: Path, case: Case) -> None:
    out = home / "out"
    before = _snapshot(home, out)
    case(home, out)
    after = _snapshot(home, out)
    changed = {
        k: (before.get(k), after.get(k))
        for k in before.keys() | after.keys()
        if before.get(k) != after.get(k)
    }
    # the only new things outside --out: files a case itself made (named here), never a victim's change
    allowed = {str(home / n) for n in ("p.csv", "r.toml", "mos.csv", "m.csv", "bench2", "ev")}
    assert all(k in allowed or any(k.startswith(a + os.sep) for a in allowed) for k in changed), changed
    assert (home / "outside" / "victim.txt").read_text() == "precious\n"
    assert sorted(os.listdir(home / "outside")) == ["victim.txt"]


def test_a_nul_byte_in_a_manifest_cell_is_one_line(home: Path) -> None:
    (home / "m.csv").write_text("id,image,prompt\na,in/a\0.png,a cat\nz,in/z.png,a dog\n")
    code, err = _invoke("score", *TINY, "--manifest", str(home / "m.csv"), "--out", str(home / "out"))
    assert code in (1, 2) and "Traceback" not in err, err
