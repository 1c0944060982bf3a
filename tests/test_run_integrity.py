"""Run integrity: one test per case of the run-integrity issue (numbered as there), plus the
cosmetic ones. Runners are driven with small deterministic doubles; the CLI with ``--recipe tiny``.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.errors import NonFiniteError, RecipeError, RunLockedError, SetupError, UserError
from grefine_kit.refiner.refiner import RefineResult
from grefine_kit.runner.refine import refine_files
from grefine_kit.runner.refine_work import SingleImageRefiner
from grefine_kit.runner.score import score_files
from grefine_kit.runs import RunFolder, atomic
from grefine_kit.types import Mask, QualityMap


def cli(*args: str) -> tuple[int, str]:
    from grefine_kit.cli import cli as group

    result = CliRunner().invoke(group, list(args))
    return result.exit_code, result.stderr


def one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("grefine: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def png(path: Path, value: int = 90, size: tuple[int, int] = (12, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 30)).save(path)
    return path


class Inverter(SingleImageRefiner):
    """A Refiner double: inverts the image; optional NaN maps; records calls; has the
    provenance attributes the runner fingerprints (``seed``, ``recipe_hash``)."""

    def __init__(
        self, seed: int = 0, recipe_hash: str = "r1", nan_for: str = "", fail: Exception | None = None
    ):
        self.seed, self.recipe_hash, self.nan_for, self.fail = seed, recipe_hash, nan_for, fail
        self.calls: list[str] = []

    def refine(self, image: Image.Image, prompt: str, image_id: str = "image") -> RefineResult:
        self.calls.append(image_id)
        if self.fail is not None:
            raise self.fail
        h, w = image.height, image.width
        q = np.full((h, w), np.nan if image_id == self.nan_for else 0.5, np.float32)
        qmap = QualityMap(map=q, score=0.5)
        binary = np.zeros((h, w), np.float32)
        return RefineResult(
            image=Image.fromarray(255 - np.asarray(image)),
            mask=Mask(binary=binary, soft=binary),
            maps={"perceptual": qmap},
            report={"prompt_seen": prompt, "seed_seen": self.seed},
        )


class Brightness:
    needs_prompt = False
    name = "brightness"

    def __init__(self, nan: bool = False, setup_error: bool = False) -> None:
        self.nan, self.setup_error = nan, setup_error
        self.calls = 0

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        self.calls += 1
        if self.setup_error:
            raise SetupError("weights for 'brightness' are broken")
        out = []
        for im in images:
            q = np.asarray(im.convert("L"), np.float32) / 255.0
            if self.nan:
                q = q * np.nan
            out.append(QualityMap(map=q, score=float(q.mean())))
        return out


def log_records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines()]


# --- 1. inputs overwritten ------------------------------------------------------------------


def test_1_an_output_folder_holding_inputs_is_refused(tmp_path: Path) -> None:
    s = tmp_path / "s"
    a = png(s / "a.png")
    before = sha(a)
    with pytest.raises(UserError, match="holds input files"):
        refine_files([a], Inverter(), s, prompts="p", progress=False)
    with pytest.raises(UserError, match="holds input files"):
        refine_files([a], Inverter(), tmp_path, prompts="p", progress=False)  # a parent of s
    assert sha(a) == before and sorted(p.name for p in s.iterdir()) == ["a.png"]
    code, err = cli("score", str(s), "--recipe", "tiny", "--out", str(s))
    one_line_error(code, err)
    assert "holds input files" in err
    # beside the inputs is fine, and a rerun does not take the outputs as inputs
    summary = refine_files([a], Inverter(), s / "refined", prompts="p", progress=False)
    assert summary.n_ok == 1 and sha(a) == before


# --- 2. stale results -----------------------------------------------------------------------


def test_2_stale_records_are_redone_and_say_why(tmp_path: Path) -> None:
    a = png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    refiner = Inverter()
    assert refine_files([a], refiner, out, prompts="p", progress=False).n_ok == 1
    again = refine_files([a], refiner, out, prompts="p", progress=False)
    assert (again.n_skipped, again.n_ok) == (1, 0)

    reasons = []
    prompt, maps = "p", False
    for change in ("prompt", "seed", "recipe", "maps", "input"):  # one change at a time
        if change == "prompt":
            prompt = "another prompt"
        elif change == "seed":
            refiner = Inverter(seed=5)
        elif change == "recipe":
            refiner = Inverter(seed=5, recipe_hash="r2")
        elif change == "maps":
            maps = True
        else:  # another file with the same name
            png(a, value=200)
        summary = refine_files([a], refiner, out, prompts=prompt, save_maps=maps, progress=False)
        assert summary.n_ok == 1 and summary.n_skipped == 0, change
        reasons.append(log_records(out)[-1]["redone"])
    assert reasons == [
        "prompt changed",
        "seed changed",
        "recipe or indicator changed",
        "output options changed",
        "input file changed",
    ]
    report = json.loads((out / "a.report.json").read_text())
    assert report["prompt_seen"] == "another prompt" and report["seed_seen"] == 5
    assert (out / "a.pq.heatmap.png").exists()
    # with maps on record, a run without maps is satisfied; a touched but equal input too
    os.utime(a, ns=(time.time_ns(), time.time_ns()))
    later = refine_files([a], refiner, out, prompts="another prompt", progress=False)
    assert later.n_skipped == 1


# --- 3. score keeps results.csv ------------------------------------------------------------


def test_3_a_rerun_ending_in_a_setup_error_keeps_previous_results(tmp_path: Path) -> None:
    files = [png(tmp_path / "in" / "a.png"), png(tmp_path / "in" / "b.png", 10)]
    out = tmp_path / "out"
    score_files(files, Brightness(), out, progress=False)
    with pytest.raises(SetupError):
        score_files(files, Brightness(setup_error=True), out, resume=False, progress=False)
    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    # and score resumes: nothing is scored again
    indicator = Brightness()
    summary = score_files(files, indicator, out, progress=False)
    assert (summary.n_skipped, summary.n_ok, indicator.calls) == (2, 0, 0)


# --- 4. half-written PNG --------------------------------------------------------------------


class Crash(BaseException):
    pass


def test_4_a_crash_mid_save_never_leaves_a_truncated_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    refine_files([a], Inverter(), out, prompts="p", progress=False)
    old = sha(out / "a.png")

    def die(name: str) -> None:
        if name == "mid-output-write":
            raise Crash()

    monkeypatch.setattr(atomic, "fault_point", die)
    with pytest.raises(Crash):
        refine_files([a], Inverter(), out, prompts="p", resume=False, progress=False)
    monkeypatch.undo()
    assert sha(out / "a.png") == old  # the old file, whole
    with Image.open(out / "a.png") as im:
        im.load()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# --- 5. lost or glued log lines --------------------------------------------------------------


def test_5_a_partial_last_line_is_dropped_and_its_item_redone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [png(tmp_path / "in" / "a.png"), png(tmp_path / "in" / "b.png", 10)]
    out = tmp_path / "out"
    refine_files(files, Inverter(), out, prompts="p", progress=False)
    log = out / "reports.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])  # a kill during b's line
    refiner = Inverter()
    summary = refine_files(files, refiner, out, prompts="p", progress=False)
    assert "dropped a partial last line" in capsys.readouterr().err
    assert (summary.n_skipped, summary.n_ok, refiner.calls) == (1, 1, ["b.png"])
    records = log_records(out)  # every line parses: nothing glued
    assert [r["id"] for r in records] == ["a.png", "b.png"]
    assert records[1]["redone"] == "its log line was cut off by an interrupted run"


def test_5_a_kill_between_report_and_log_line_redoes_the_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import grefine_kit.runner.run as batch

    a = png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    monkeypatch.setattr(
        batch,
        "fault_point",
        lambda n: (_ for _ in ()).throw(Crash()) if n == "between-record-and-log" else None,
    )
    with pytest.raises(Crash):
        refine_files([a], Inverter(), out, prompts="p", progress=False)
    monkeypatch.undo()
    assert (out / "a.report.json").exists() and not (out / "reports.jsonl").exists()
    summary = refine_files([a], Inverter(), out, prompts="p", progress=False)
    assert summary.n_ok == 1 and [r["id"] for r in log_records(out)] == ["a.png"]


# --- 6. name clashes ------------------------------------------------------------------------


def test_6_outputs_of_one_input_never_take_the_name_of_another(tmp_path: Path) -> None:
    files = [png(tmp_path / "in" / n, v) for n, v in (("a.png", 10), ("a.mask.png", 200), ("a.pq.png", 99))]
    out = tmp_path / "out"
    summary = refine_files(files, Inverter(), out, prompts="p", save_maps=True, progress=False)
    assert summary.n_ok == 3
    records = log_records(out)
    produced = [name for r in records for name in r["outputs"]]
    assert len(produced) == len(set(produced))  # no file claimed twice
    by_id = {r["id"]: r for r in records}
    assert by_id["a.png"]["output"] == "a.png" and by_id["a.mask.png"]["output"].startswith("a.mask-")
    # each refined image is the inverse of its own input
    for r in records:
        src = np.asarray(Image.open(tmp_path / "in" / r["id"]))
        assert (np.asarray(Image.open(out / r["output"])) == 255 - src).all()


# --- 7. one run per folder -------------------------------------------------------------------


def test_7_a_second_run_into_a_locked_folder_exits_2_naming_the_holder(tmp_path: Path) -> None:
    a = png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    with RunFolder.open(out, inputs=[a]):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on "):
            score_files([a], Brightness(), out, progress=False)
        code, err = cli("score", str(a), "--recipe", "tiny", "--out", str(out))
        one_line_error(code, err)
        assert "in use by another run" in err
    assert score_files([a], Brightness(), out, progress=False).n_ok == 1  # released


# --- 8. unwritable output / full disk ----------------------------------------------------------


def test_8_a_full_disk_is_one_setup_error_keeping_finished_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [png(tmp_path / "in" / "a.png"), png(tmp_path / "in" / "b.png", 10)]
    out = tmp_path / "out"
    real = atomic._write_all
    n = {"writes": 0}

    def fill_up(fd: int, data: bytes) -> None:
        n["writes"] += 1
        if n["writes"] > 4:  # a's image (2 halves) and report (2 halves) fit
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(atomic, "_write_all", fill_up)
    with pytest.raises(SetupError, match="No space left on device"):
        refine_files(files, Inverter(), out, prompts="p", progress=False)
    monkeypatch.undo()
    assert [r["id"] for r in log_records(out)] == ["a.png"]  # finished work kept
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no 0-byte temp left
    assert refine_files(files, Inverter(), out, prompts="p", progress=False).n_skipped == 1


def test_8_an_unwritable_folder_is_one_exit_2_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import grefine_kit.runs.folder as folder

    a = png(tmp_path / "in" / "a.png")
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith(".grefine.lock"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr(folder.os, "open", read_only)
    code, err = cli("score", str(a), "--recipe", "tiny", "--out", str(tmp_path / "ro"))
    one_line_error(code, err)
    assert "Read-only file system" in err


def test_8_a_short_log_write_on_a_full_disk_leaves_no_half_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grefine_kit.errors import OutputWriteError

    with RunFolder.open(tmp_path / "out") as folder:
        folder.append({"id": "a", "status": "ok"})
        real = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data)[:5]))  # disk fills up
        with pytest.raises(OutputWriteError, match="disk full"):
            folder.append({"id": "b", "status": "ok"})
        monkeypatch.undo()
    assert (tmp_path / "out" / "reports.jsonl").read_text() == '{"id": "a", "status": "ok"}\n'


# --- 9. non-UTF-8 file names -----------------------------------------------------------------


def test_9_a_non_utf8_file_name_is_scored_with_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    png(folder / "good.png")
    odd = os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.png"))
    Image.new("RGB", (9, 7), (1, 2, 3)).save(odd, format="PNG")
    from grefine_kit.runs.inputs import expand_inputs

    summary = score_files(expand_inputs([str(folder)]), Brightness(), tmp_path / "out", progress=False)
    assert (summary.n_ok, summary.n_failed) == (2, 0)
    text = (tmp_path / "out" / "results.csv").read_text("utf-8")
    assert "caf\\xe9.png" in text and "good.png" in text
    assert (
        refine_files(
            expand_inputs([str(folder)]), Inverter(), tmp_path / "r", prompts="p", progress=False
        ).n_ok
        == 2
    )


# --- 10. evaluate with 3 images ----------------------------------------------------------------


def test_10_evaluate_with_three_images_writes_its_json_without_a_logistic_fit(tmp_path: Path) -> None:
    from grefine_kit.evaluation import evaluate
    from grefine_kit.evaluation.mos import MosRow

    rows = [MosRow(png(tmp_path / "in" / f"{i}.png", 40 * i + 10), float(i)) for i in range(3)]
    result = evaluate(rows, Brightness(), tmp_path / "out", progress=False)
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert saved["n_scored"] == 3 and saved["plcc_logistic"] is None
    assert result.srcc == pytest.approx(1.0) and "at least 5" in saved["notes"][0]


# --- 11. deeply nested TOML ----------------------------------------------------------------------


def test_11_a_deeply_nested_recipe_is_a_recipe_error(tmp_path: Path) -> None:
    from grefine_kit.recipes.recipe import Recipe

    deep = 'name = "x"\na = ' + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(RecipeError, match="nested too deeply"):
        Recipe.loads(deep)
    path = tmp_path / "deep.toml"
    path.write_text(deep)
    code, err = cli("recipe", "validate", str(path))
    one_line_error(code, err)


# --- 12. degenerate MOS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "match"), [((0.0, 1.7e308, 3.0), "too large"), ((2.0, 2.0, 2.0), "every MOS is 2")]
)
def test_12_train_pq_refuses_degenerate_mos_up_front(
    tmp_path: Path, values: tuple[float, ...], match: str
) -> None:
    from grefine_kit.evaluation.mos import MosRow
    from grefine_kit.training import train_pq_prompts

    rows = [MosRow(png(tmp_path / "in" / f"{i}.png"), v) for i, v in enumerate(values)]
    with pytest.raises(UserError, match=match):
        train_pq_prompts(rows, object(), tmp_path / "ck", progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / "ck").exists()  # refused before anything was loaded or written


# --- 13. NaN / inf ----------------------------------------------------------------------------


def test_13_non_finite_outputs_fail_their_item(tmp_path: Path) -> None:
    from grefine_kit.stages.diffusion import _to_pil

    with pytest.raises(NonFiniteError, match="non-finite output"):
        _to_pil(np.full((4, 4, 3), np.nan, np.float32), "masked stage")
    assert _to_pil(np.full((4, 4, 3), 0.5, np.float32), "x").getpixel((0, 0)) == (128, 128, 128)

    files = [png(tmp_path / "in" / "a.png"), png(tmp_path / "in" / "b.png", 10)]
    summary = refine_files(files, Inverter(nan_for="a.png"), tmp_path / "r", prompts="p", progress=False)
    assert (summary.n_ok, summary.n_failed) == (1, 1)
    bad = log_records(tmp_path / "r")[0]
    assert bad["status"] == "error" and "finite" in bad["error"]
    assert not (tmp_path / "r" / "a.png").exists()

    scored = score_files(files, Brightness(nan=True), tmp_path / "s", progress=False)
    assert scored.n_failed == 2 and "finite" in log_records(tmp_path / "s")[0]["error"]


class NaNPipe:
    """Stands in for a diffusers pipeline whose numbers overflowed (guidance_scale = 1e308, fp16):
    every output value is NaN. Like diffusers, ``output_type="pil"`` casts to uint8 (NaN -> 0,
    a black picture that looks fine to a PIL check), ``"np"`` returns the floats."""

    def __call__(self, **kwargs: Any) -> Any:
        from types import SimpleNamespace

        w, h = kwargs["image"].size
        values = np.full((1, h, w, 3), np.nan, np.float32)
        if kwargs["output_type"] == "pil":
            with np.errstate(invalid="ignore"):
                return SimpleNamespace(images=[Image.fromarray((values[0] * 255).astype(np.uint8))])
        return SimpleNamespace(images=values)


def test_13_nan_out_of_a_diffusion_stage_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    import grefine_kit.stages.diffusion as diffusion
    from grefine_kit.stages.base import StageRequest

    stage = diffusion.Img2ImgStage(model="tiny", resolution=32, guidance_scale=1e308)
    monkeypatch.setattr(diffusion.Img2ImgStage, "pipeline", lambda self: NaNPipe())
    monkeypatch.setattr(diffusion, "encode_conditioning", lambda *a, **k: {})
    request = StageRequest(
        image=Image.new("RGB", (32, 32)), mask=None, prompt="p", emphasis=(), strength=0.5, steps=4, seed=1
    )
    with pytest.raises(NonFiniteError, match="non-finite output: global stage image"):
        stage.run(request)


# --- 14. broken checkpoints and devices are setup errors ------------------------------------------


def test_14_a_refused_checkpoint_is_one_short_setup_error(tmp_path: Path) -> None:
    import torch

    from grefine_kit.models.loading import load_state_dict_file

    bad = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "extra": Path("x")}, bad)  # a pickled object, not a tensor
    with pytest.raises(SetupError) as info:
        load_state_dict_file(bad)
    message = str(info.value)
    assert (
        "refused" in message and "weights_only" not in message and "\n" not in message and len(message) < 200
    )

    paths = ", ".join(f'"{bad}"' for _ in range(4))
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "broken"\n[indicators.perceptual]\npart = "pq-map"\nmodel = "grefine-tiny"\n'
        f'weights = "random"\ndevice = "cpu"\nprompt_checkpoints = [{paths}]\n'
        '[combiner]\npart = "perceptual"\n'
    )
    folder = tmp_path / "in"
    for i in range(3):
        png(folder / f"{i}.png")
    code, err = cli("score", str(folder), "--recipe", str(recipe), "--out", str(tmp_path / "o"))
    one_line_error(code, err)
    assert "refused" in err


def test_14_a_setup_error_stops_the_refine_run_at_once(tmp_path: Path) -> None:
    files = [png(tmp_path / "in" / f"{i}.png") for i in range(3)]
    refiner = Inverter(fail=SetupError("cannot read checkpoint x.pt: refused"))
    with pytest.raises(SetupError):
        refine_files(files, refiner, tmp_path / "out", prompts="p", progress=False)
    assert refiner.calls == ["0.png"]  # not one error (and one reload) per image


@pytest.mark.parametrize("device", ["cuda:99", "gpu"])
def test_14_a_device_that_does_not_exist_is_one_exit_2_line(tmp_path: Path, device: str) -> None:
    a = png(tmp_path / "in" / "a.png")
    code, err = cli("score", str(a), "--recipe", "tiny", "--device", device, "--out", str(tmp_path / "o"))
    one_line_error(code, err)
    assert device in err


# --- cosmetics ---------------------------------------------------------------------------------


def test_odd_inputs_have_clear_messages(tmp_path: Path) -> None:
    from grefine_kit.runs.inputs import expand_inputs, read_prompts_csv

    with pytest.raises(UserError, match="not a prompts CSV"):
        read_prompts_csv("/dev/zero")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="FIFO"):
        expand_inputs([str(fifo)])
    # given straight to the runners (as a manifest could): an error record, never a hang
    good = png(tmp_path / "good.png")
    scored = score_files([good, fifo], Brightness(), tmp_path / "s", progress=False)
    assert (scored.n_ok, scored.n_failed) == (1, 1)
    assert "not a regular file" in log_records(tmp_path / "s")[1]["error"]
    refined = refine_files([good, fifo], Inverter(), tmp_path / "r", prompts="p", progress=False)
    assert (refined.n_ok, refined.n_failed) == (1, 1)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(UserError, match="symbolic link loop"):
        expand_inputs([str(loop)])
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(65 * 2**20)  # sparse: no disk used
    with pytest.raises(UserError, match="larger than 64 MiB"):
        read_prompts_csv(big)


def test_failures_are_summarised_by_reason(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    png(folder / "good.png")
    for name in ("bad1.png", "bad2.png"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, err = cli("score", str(folder), "--recipe", "tiny", "--out", str(tmp_path / "o"))
    assert code == 1, err
    assert "failed: 2 item(s), by reason:" in err
    assert "  2 x <file>: " in err and "(e.g. " in err


def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import grefine_kit.cli as cli_package

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_package, "_load", interrupted)  # Ctrl-C while the commands import
    with pytest.raises(SystemExit) as info:
        cli_package.main(["--help"])
    assert info.value.code == 130
    monkeypatch.undo()
    # a real process interrupted while it imports torch
    a = png(tmp_path / "a.png")
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grefine_kit.cli",
            "score",
            str(a),
            "--recipe",
            "tiny",
            "--out",
            str(tmp_path / "o"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    # interrupt once torch is loading (inside the command), however slow this machine is
    deadline = time.monotonic() + 60
    while "libtorch" not in Path(f"/proc/{child.pid}/maps").read_text() and time.monotonic() < deadline:
        assert child.poll() is None, "the command ended before torch was imported"
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
