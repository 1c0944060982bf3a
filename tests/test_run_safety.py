"""Run safety, round 3 (issue 20, items 1-3): output names are a function of the item alone,
no write follows a link planted in ``--out``, and a long file name fails (at most) its own item.
Runners are driven with small deterministic doubles."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.refiner.refiner import RefineResult
from grefine_kit.runner.options import RunOptions
from grefine_kit.runner.refine import refine_files, refine_items
from grefine_kit.runner.refine_work import SingleImageRefiner
from grefine_kit.runner.score import score_files, score_items
from grefine_kit.runs import atomic
from grefine_kit.runs.items import Item
from grefine_kit.types import Mask, QualityMap


def png(path: Path, value: int = 90, size: tuple[int, int] = (12, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 30)).save(path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def latest(out: Path) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for line in (out / "reports.jsonl").read_text().splitlines():
        rec = json.loads(line)
        records[rec["id"]] = rec
    return records


class Painter(SingleImageRefiner):
    """A Refiner double whose picture depends on the prompt: who wrote a file is visible."""

    seed, recipe_hash = 0, "painter"

    def refine(self, image: Image.Image, prompt: str, image_id: str = "image") -> RefineResult:
        value = hashlib.sha1(prompt.encode()).digest()[0]
        picture = Image.new("RGB", image.size, (value, 255 - value, 7))
        empty = np.zeros((image.height, image.width), np.float32)
        return RefineResult(
            image=picture, mask=Mask(binary=empty, soft=empty), report={"prompt_seen": prompt}
        )


class PromptShade:
    """An indicator double whose map depends on the prompt."""

    needs_prompt = True
    name = "shade"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        assert prompts is not None
        out = []
        for image, prompt in zip(images, prompts, strict=True):
            value = hashlib.sha1(prompt.encode()).digest()[0] / 255
            out.append(QualityMap(map=np.full((image.height, image.width), value, np.float32), score=value))
        return out


# --- 1. names are a function of the item alone --------------------------------------------


def test_1_names_do_not_depend_on_row_order_or_other_rows(tmp_path: Path) -> None:
    x = png(tmp_path / "in" / "x.png")
    a, b = Item("a", x, "a red cat"), Item("b", x, "a blue dog")
    out = tmp_path / "out"
    assert refine_items([a, b], Painter(), out, RunOptions(progress=False)).exit_code == 0
    first = latest(out)
    assert first["a"]["output"] != first["b"]["output"]
    b_picture = sha(out / first["b"]["output"])
    # b listed first, a's prompt changed: b is done, a is redone, under its own name
    summary = refine_items([b, Item("a", x, "a green frog")], Painter(), out, RunOptions(progress=False))
    assert summary.n_skipped == 1 and summary.n_ok == 1
    second = latest(out)
    assert second["a"]["output"] == first["a"]["output"] and second["b"] == first["b"]
    assert sha(out / first["b"]["output"]) == b_picture  # b's picture is still b's
    # the same in score: the .npy maps keep to their items
    s_out = tmp_path / "score"
    score_items([a, b], PromptShade(), s_out, RunOptions(save_maps=True, progress=False))
    maps = {k: r["map"] for k, r in latest(s_out).items()}
    b_map = sha(s_out / maps["b"])
    score_items(
        [b, Item("a", x, "a green frog")], PromptShade(), s_out, RunOptions(save_maps=True, progress=False)
    )
    again = latest(s_out)
    assert again["a"]["map"] == maps["a"] != maps["b"] == again["b"]["map"]
    assert sha(s_out / maps["b"]) == b_map


def test_1_a_stem_is_the_same_whatever_else_is_in_the_run(tmp_path: Path) -> None:
    from grefine_kit.runs.layout import output_stem, output_stems

    files = [tmp_path / "cat.png", tmp_path / "cat.jpg", tmp_path / "a" / "cat.png", tmp_path / "dog.png"]
    ids = ["cat.png", "cat.jpg", "a/cat.png", "dog.png"]
    stems = output_stems(files, ids)
    assert stems[0] == "cat" and stems[1] == "cat.jpg" and stems[3] == "dog"
    assert stems[2].startswith("cat-") and len({s.casefold() for s in stems}) == 4
    for i, (f, item_id) in enumerate(zip(files, ids, strict=True)):
        assert output_stem(item_id, f) == stems[i]  # alone, or in any company
        assert output_stems([f], [item_id]) == [stems[i]]
    # a plain name never looks like a hashed one, nor ends in an image type or a reserved tag
    for name in ("cat-0123456789ab.png", "cat.jpg.png", "a.mask.png"):
        assert output_stem(name, tmp_path / name) != Path(name).stem
    with pytest.raises(UserError, match="case-insensitive"):
        output_stems([tmp_path / "Cat.png", tmp_path / "cat.png"], ["Cat.png", "cat.png"])


# --- 2. links planted in --out are never followed ---------------------------------------


def _plant(out: Path, names: Sequence[str], victim_dir: Path) -> dict[Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    victims = {}
    for name in names:
        victim = victim_dir / f"victim-{name.strip('.')}"
        victim.write_text(f"precious {name}\n")
        (out / name).symlink_to(victim)
        victims[victim] = victim.read_text()
    return victims


@pytest.mark.parametrize("name", [".grefine.lock", "reports.jsonl"])
def test_2_a_linked_lock_or_log_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    src = png(tmp_path / "in" / "x.png")
    victims = _plant(tmp_path / "out", [name], tmp_path)
    with pytest.raises(UserError, match="symbolic link") as info:
        score_files([src], PromptShade(), tmp_path / "out", prompts="p", progress=False)
    assert "\n" not in str(info.value)
    assert {v: v.read_text() for v in victims} == victims


def test_2_linked_outputs_are_replaced_never_written_through(tmp_path: Path) -> None:
    src = png(tmp_path / "in" / "x.png")
    names = ["x.png", "x.report.json", "x.heatmap.png", "x.map.npy", "results.csv"]
    victims = _plant(tmp_path / "out", names, tmp_path)
    assert score_files([src], PromptShade(), tmp_path / "out", prompts="p", progress=False).exit_code == 0
    assert refine_files([src], Painter(), tmp_path / "out2", prompts="p", progress=False).exit_code == 0
    victims |= _plant(tmp_path / "out3", ["x.png", "x.report.json"], tmp_path / "in")
    assert refine_files([src], Painter(), tmp_path / "out3", prompts="p", progress=False).exit_code == 0
    assert {v: v.read_text() for v in victims} == victims
    assert not any((tmp_path / "out" / n).is_symlink() for n in ("x.heatmap.png", "x.map.npy", "results.csv"))


# --- 3. one long file name never loses the batch ---------------------------------------


def test_3_a_long_name_is_shortened_and_every_record_kept(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    files = [png(folder / "a.png", 10), png(folder / ("l" * 230 + ".png"), 50), png(folder / "z.png", 90)]
    out = tmp_path / "out"
    summary = score_files(files, PromptShade(), out, prompts="p", batch_size=8, progress=False)
    assert summary.exit_code == 0 and len(latest(out)) == 3
    assert all(len(os.fsencode(p.name)) < 200 for p in out.iterdir())
    r_out = tmp_path / "refined"
    assert refine_files(files, Painter(), r_out, prompts="p", progress=False).exit_code == 0
    assert {r["status"] for r in latest(r_out).values()} == {"ok"} and len(latest(r_out)) == 3
    # a rerun finds them all done under the same names
    assert score_files(files, PromptShade(), out, prompts="p", progress=False).n_skipped == 3


def test_3_a_name_the_disk_refuses_fails_only_its_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    files = [png(folder / "a.png", 10), png(folder / "m.png", 50), png(folder / "z.png", 90)]
    real = atomic.write_bytes

    def refusing(path: Path, data: bytes) -> Path:
        if Path(path).name.startswith("m."):
            raise atomic.write_failure(Path(path), OSError(errno.ENAMETOOLONG, "File name too long"))
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", refusing)
    for run, out in ((score_files, tmp_path / "s"), (refine_files, tmp_path / "r")):
        double: Any = PromptShade() if run is score_files else Painter()
        summary = run(files, double, out, prompts="p", progress=False)
        records = latest(out)
        assert summary.exit_code == 1 and set(records) == {"a.png", "m.png", "z.png"}
        assert records["a.png"]["status"] == records["z.png"]["status"] == "ok"
        assert records["m.png"]["status"] == "error" and "File name too long" in records["m.png"]["error"]
