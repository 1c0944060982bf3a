"""Run safety, round 3 (issue 20): crashes and misleading results, one test per item
(numbered as in the issue: 5, 7, 9, 10, 11, 12). Each failed before its fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from grefine_kit.errors import RecipeError, SetupError, UserError
from grefine_kit.runs.manifest import read_manifest


def cli(*args: str) -> Any:
    from grefine_kit.cli import cli as group

    return CliRunner().invoke(group, list(args))


def one_line_error(result: Any) -> str:
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, err, result.exception)
    lines = [line for line in err.strip().splitlines() if line.startswith("grefine: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def png(path: Path, value: int = 90, size: tuple[int, int] = (16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 30)).save(path)
    return path


# --- 5. a NUL byte in a manifest cell -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.csv", 'id,image,prompt\nok,a.png,a cat\nx,"a\x00.png",a cat\n'),
        ("m.jsonl", '{"image": "a.png"}\n{"image": "a\\u0000.png"}\n'),
        ("ids.jsonl", '{"image": "a.png"}\n{"id": "b\\u0000", "image": "b.png"}\n'),
    ],
)
def test_5_a_nul_byte_in_a_manifest_cell_is_one_line_naming_the_line(
    name: str, text: str, tmp_path: Path
) -> None:
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(UserError, match=r"line (2|3): .*NUL byte"):
        read_manifest(manifest)
    png(tmp_path / "a.png")
    line = one_line_error(
        cli("score", "--manifest", str(manifest), "--indicator", "piqe-map", "--out", str(tmp_path / "o"))
    )
    assert "NUL byte" in line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# --- 7. --set device= / dtype= on score ---------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ["--set", "device=cpu"],
        ["--set", "dtype=float32"],
        ["--set", "indicators.perceptual.device=cpu"],
        ["--device", "cpu", "--set", "device=cpu"],
    ],
)
def test_7_score_takes_device_and_dtype_through_set(extra: list[str], tmp_path: Path) -> None:
    a = png(tmp_path / "a.png")
    result = cli("score", str(a), "--recipe", "tiny", "--out", str(tmp_path / "o"), *extra)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert (tmp_path / "o" / "results.csv").is_file()


def test_7_set_device_against_another_device_flag_is_one_line(tmp_path: Path) -> None:
    a = png(tmp_path / "a.png")
    line = one_line_error(
        cli(
            "score",
            str(a),
            "--recipe",
            "tiny",
            "--device",
            "cpu",
            "--set",
            "device=cuda",
            "--out",
            str(tmp_path / "o"),
        )
    )
    assert "--set device" in line and "--device" in line


def test_7_the_portable_spec_of_other_engines_takes_them_too() -> None:
    from grefine_kit.cli.override_options import Overrides, indicator_spec

    overrides = Overrides(set_items=("device=cpu", "dtype=float32"))
    spec = indicator_spec("pq-map", recipe="tiny", device=None, dtype=None, overrides=overrides)
    assert (spec.device, spec.dtype, dict(spec.options)) == ("cpu", "float32", {})


# --- 9. a bare name is the registered recipe; option values are not paths by accident -----------


def test_9_option_values_named_like_neighbouring_folders_stay_values(tmp_path: Path) -> None:
    from grefine_kit.recipes.recipe import Recipe

    for name in ("tiny", "random", "grefine-tiny", "rules"):
        (tmp_path / name).mkdir()
    copy = tmp_path / "mine.toml"
    shutil.copy(Path(__file__).parents[1] / "grefine_kit" / "recipes" / "tiny.toml", copy)
    recipe = Recipe.load(copy)
    assert recipe.part("stage1").options["model"] == "tiny"
    assert recipe.part("perceptual").options["model"] == "grefine-tiny"
    assert recipe.part("perceptual").options["weights"] == "random"
    recipe.validate()
    recipe.build_part(recipe.part("stage1"))
    # what looks like a path still is one
    (tmp_path / "ckpt").mkdir()
    copy.write_text(copy.read_text().replace('model = "tiny"', 'model = "./ckpt"', 1))
    assert Recipe.load(copy).part("stage1").options["model"] == str(tmp_path / "ckpt")


def test_9_a_bare_name_means_the_registered_recipe_whatever_the_cwd_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grefine_kit.recipes.recipe import Recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "tiny").write_text("not a recipe\n")
    assert Recipe.load("demo").source == "builtin:demo"
    assert Recipe.load("tiny").source == "builtin:tiny"
    # a file is named by something that looks like a path (or ends in .toml)
    (tmp_path / "mine").write_text('name = "mine"\n[indicators.perceptual]\npart = "piqe-map"\n')
    assert Recipe.load("./mine").name == "mine"
    with pytest.raises(RecipeError, match=r"unknown recipe 'mine'.*\./mine"):
        Recipe.load("mine")
    a = png(tmp_path / "a.png")
    result = cli("score", str(a), "--recipe", "tiny", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.stderr


# --- 10. a torn last line of the score cache ------------------------------------------------------


def test_10_a_torn_cache_line_is_not_glued_to_the_next_record(tmp_path: Path) -> None:
    from grefine_kit.benchmark.cache import CACHE_NAME, ScoreCache

    img = png(tmp_path / "x.png")
    path = tmp_path / CACHE_NAME
    path.write_text('{"metric": "m#1", "row": "r", "id": "old", "sta')  # a crash mid-write
    ScoreCache(path).put_many([("m#1", "r", "x", img, 0.25)])
    again = ScoreCache(path)
    assert again.get("m#1", "r", "x", img) == 0.25
    ScoreCache(path).put_many([("m#1", "r", "y", img, 0.5)])
    assert ScoreCache(path).get("m#1", "r", "y", img) == 0.5
    assert path.read_text().endswith("\n")


# --- 11. pickled .bin weights in a diffusers folder -----------------------------------------------


@pytest.fixture(scope="module")
def pickled_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny diffusers folders whose text encoder / UNet weights are pickles holding a non-tensor."""
    import torch
    from safetensors.torch import load_file

    from grefine_kit.testing.tiny_diffusers import save_tiny_pipeline

    root = tmp_path_factory.mktemp("pickled")
    clean = save_tiny_pipeline(root / "clean", task="img2img")
    out = {}
    for which in ("text_encoder_2", "unet"):
        folder = Path(shutil.copytree(clean, root / which))
        sub = folder / which
        weights = next(sub.glob("*.safetensors"))
        state: dict[str, Any] = dict(load_file(str(weights)))
        state["evil"] = Path("x")  # weights_only=True refuses to build it
        name = "pytorch_model.bin" if which == "text_encoder_2" else "diffusion_pytorch_model.bin"
        torch.save(state, sub / name)
        weights.unlink()
        out[which] = folder
    return out


@pytest.mark.parametrize("which", ["text_encoder_2", "unet"])
def test_11_a_pickled_checkpoint_is_one_exit_2_line_without_torch_advice(
    which: str, pickled_folders: dict[str, Path], tmp_path: Path
) -> None:
    from grefine_kit.stages.loading import clear_cache, load_pipeline

    clear_cache()
    with pytest.raises(SetupError) as info:
        load_pipeline(str(pickled_folders[which]), "img2img", device="cpu", dtype="float32")
    message = str(info.value)
    assert "refused" in message and "weights_only" not in message and "\n" not in message
    assert len(message) < 400

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "pickled"\n[indicators.perceptual]\npart = "piqe-map"\n[combiner]\npart = "perceptual"\n'
        f'[stage2]\npart = "img2img"\nmodel = "{pickled_folders[which]}"\nresolution = 32\ndevice = "cpu"\n'
    )
    files = [png(tmp_path / "in" / f"{i}.png", 40 * i) for i in range(2)]
    result = cli(
        "refine", *map(str, files), "--prompt", "a cat", "--recipe", str(recipe), "--out", str(tmp_path / "o")
    )
    line = one_line_error(result)
    assert "refused" in line and "weights_only" not in result.stderr


# --- 12. the small ones -----------------------------------------------------------------------------


def test_12_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for i in range(3):
        png(folder / f"{i}.png", 30 + 40 * i)
    out = tmp_path / "o"
    env = {**os.environ, "GREFINE_FAULT": "after-log-line:1:TERM", "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "grefine_kit.cli",
            "score",
            str(folder),
            "--indicator",
            "piqe-map",
            "--batch-size",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert child.returncode == 143, child.stderr
    assert "Traceback" not in child.stderr and "terminated" in child.stderr, child.stderr
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[0].endswith("0.png"), rows  # header + the finished one
    # and the rerun finishes the rest
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "grefine_kit.cli",
            "score",
            str(folder),
            "--indicator",
            "piqe-map",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**env, "GREFINE_FAULT": ""},
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "1 already done" in again.stderr


@pytest.mark.parametrize("where", [["--set", "stage1.device=meta"], ["--device", "meta"]])
def test_12_a_meta_device_is_one_setup_error(where: list[str], tmp_path: Path) -> None:
    files = [png(tmp_path / "in" / f"{i}.png") for i in range(2)]
    result = cli(
        "refine",
        *map(str, files),
        "--prompt",
        "a cat",
        "--recipe",
        "tiny",
        "--out",
        str(tmp_path / "o"),
        *where,
    )
    assert "meta" in one_line_error(result)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"image": ["a.png"]}, "'image' must be text, not a list"),
        ({"image": {"path": "a.png"}}, "'image' must be text, not an object"),
        ({"image": "a.png", "prompt": ["a", "cat"]}, "'prompt' must be text, not a list"),
        ({"image": "a.png", "prompt": {"en": "cat"}}, "'prompt' must be text, not an object"),
        ({"image": "a.png", "id": [1]}, "'id' must be text, not a list"),
        ({"image": True}, "'image' must be text, not a boolean"),
        ({"image": "a.png", "reference": ["r.png"]}, "'reference' must be text, not a list"),
        ({"image": "a.png", "region": "m\x00.png"}, "the 'region' cell holds a NUL byte"),
    ],
)
def test_12_jsonl_lists_and_objects_are_refused_not_stringified(
    row: dict[str, Any], message: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": "ok.png", "prompt": "a dog"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError, match=rf"line 2: {message}"):
        read_manifest(manifest)


def test_12_jsonl_numbers_still_work_as_ids_and_prompts(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": 7, "image": "a.png", "prompt": 3}) + "\n")
    (item,) = read_manifest(manifest)
    assert (item.id, item.prompt) == ("7", "3")


def test_12_a_newline_in_a_file_name_is_escaped_in_the_score_table(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    png(folder / "a\nb.png")
    png(folder / "c\x1b[31m.png", 50)
    (folder / "d\n.png").write_bytes(b"not a png")
    result = cli("score", str(folder), "--indicator", "piqe-map", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5, lines  # header, three rows, the mean
    assert lines[1].startswith("a\\nb.png ") and lines[2].startswith("c\\x1b[31m.png ")
    assert lines[3].startswith("d\\n.png ") and "failed" in lines[3]
    assert "\x1b" not in result.stdout
    failure = [line for line in result.stderr.splitlines() if "1 x" in line]
    assert len(failure) == 1 and ".png: not an image file" in failure[0], result.stderr


def test_12_a_float_for_an_integer_option_reads_well(tmp_path: Path) -> None:
    a = png(tmp_path / "a.png")
    line = one_line_error(
        cli(
            "refine",
            str(a),
            "--prompt",
            "p",
            "--recipe",
            "tiny",
            "--set",
            "refiner.iterations=1e9",
            "--out",
            str(tmp_path / "o"),
        )
    )
    assert "<class" not in line and "must be an integer (got 1000000000.0, a decimal number)" in line, line


def test_12_a_long_prompt_warns_once_per_run(capfd: pytest.CaptureFixture[str]) -> None:
    from grefine_kit.stages import conditioning
    from grefine_kit.stages.conditioning import encode_conditioning
    from grefine_kit.stages.loading import load_pipeline

    conditioning.reset_truncation_warning()
    pipe = load_pipeline("tiny", "inpaint", device="cpu", dtype="float32")
    long_prompt = " ".join(f"word{i % 50}" for i in range(5000))
    capfd.readouterr()
    for _ in range(3):
        encode_conditioning(pipe, long_prompt, [("word1 word2", 0.1)], guidance=True)
    err = capfd.readouterr().err
    assert err.count("grefine: warning:") == 1 and "77" in err, err
    assert len(err) < 400, len(err)
    assert "truncated because CLIP" not in err and "Token indices" not in err
