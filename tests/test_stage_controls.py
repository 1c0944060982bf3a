"""Per-stage LoRA, scheduler and VAE on tiny random-weight pipelines (CPU, offline), and their
place in the run's fingerprint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grefine_kit.errors import UserError
from grefine_kit.parts.registry import create_part
from grefine_kit.stages.base import StageRequest
from grefine_kit.stages.controls import LoraSpec, parse_loras, stage_file_digests
from grefine_kit.stages.diffusion import Img2ImgStage, InpaintStage
from grefine_kit.stages.loading import clear_cache, load_pipeline
from grefine_kit.stages.schedulers import SAMPLERS, resolve_scheduler
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import Mask

PROMPT = "a red apple on a table"


def request(size: tuple[int, int] = (64, 64), **kw: Any) -> StageRequest:
    image = sample_images([size])[0]
    w, h = size
    binary = np.zeros((h, w), np.float32)
    binary[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
    kw.setdefault("strength", 1.0)
    kw.setdefault("steps", 2)
    return StageRequest(image=image, mask=Mask(binary=binary, soft=binary), prompt=PROMPT, seed=3, **kw)


def pixels(stage: Any, **kw: Any) -> np.ndarray:
    return np.asarray(stage.run(request(**kw)).image)


@pytest.fixture
def fresh_models() -> Iterator[None]:
    """LoRA adapters attach to the (process-wide) tiny modules: start and end with fresh ones."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def lora_file(tmp_path: Path) -> Path:
    from grefine_kit.stages.tiny_models import save_tiny_lora

    pipe = load_pipeline("tiny-sd", "inpaint", device="cpu", dtype="float32")
    return save_tiny_lora(tmp_path / "detail.safetensors", pipe.unet, seed=1)


# -- LoRA ---------------------------------------------------------------------------------------


def test_lora_scale_zero_is_byte_identical_and_nonzero_changes(fresh_models: None, lora_file: Path) -> None:
    pytest.importorskip("peft")
    plain = pixels(InpaintStage(model="tiny-sd"))
    zero = pixels(InpaintStage(model="tiny-sd", lora=[{"path": str(lora_file), "scale": 0.0}]))
    assert np.array_equal(plain, zero)
    one = pixels(InpaintStage(model="tiny-sd", lora=str(lora_file)))
    assert not np.array_equal(plain, one)
    half = pixels(InpaintStage(model="tiny-sd", lora=[[str(lora_file), 0.5]]))
    assert not np.array_equal(one, half)
    # the adapters live on the shared modules; a stage without a LoRA switches them off again
    assert np.array_equal(plain, pixels(InpaintStage(model="tiny-sd")))


def test_two_loras_with_scales(fresh_models: None, lora_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from grefine_kit.stages.tiny_models import save_tiny_lora

    pipe = load_pipeline("tiny-sd", "inpaint", device="cpu", dtype="float32")
    other = save_tiny_lora(tmp_path / "style.safetensors", pipe.unet, seed=2)
    one = pixels(InpaintStage(model="tiny-sd", lora=[str(lora_file)]))
    both_zero_second = pixels(
        InpaintStage(model="tiny-sd", lora=[str(lora_file), {"path": str(other), "scale": 0.0}])
    )
    both = pixels(InpaintStage(model="tiny-sd", lora=[str(lora_file), str(other)]))
    assert np.array_equal(one, both_zero_second)
    assert not np.array_equal(one, both)


@pytest.mark.parametrize("name", ["detail.ckpt", "detail.bin", "detail.pt", "detail.pth", "x.pkl"])
def test_pickle_loras_are_refused_with_one_line(name: str) -> None:
    with pytest.raises(UserError) as info:
        create_part("stage", "inpaint", model="tiny-sd", lora=name)
    text = str(info.value)
    assert "pickle" in text and ".safetensors" in text and "\n" not in text


def test_lora_option_forms_and_bad_entries() -> None:
    assert parse_loras("a.safetensors") == (LoraSpec("a.safetensors", 1.0),)
    assert parse_loras([{"path": "a.safetensors", "scale": 0.5}, ["b.safetensors", 2]]) == (
        LoraSpec("a.safetensors", 0.5),
        LoraSpec("b.safetensors", 2.0),
    )
    for bad in (
        [{"file": "a.safetensors"}],
        [["a.safetensors", "x"]],
        ["a.txt"],
        [{"path": "a.safetensors", "scale": True}],
    ):
        with pytest.raises(ValueError):
            parse_loras(bad)


def test_a_renamed_pickle_or_missing_lora_is_a_user_error(fresh_models: None, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x80\x04\x95 not a safetensors file")
    with pytest.raises(UserError, match="not a readable safetensors"):
        InpaintStage(model="tiny-sd", lora=str(fake)).run(request())
    with pytest.raises(UserError, match="no such file"):
        InpaintStage(model="tiny-sd", lora=str(tmp_path / "gone.safetensors")).run(request())


# -- scheduler ----------------------------------------------------------------------------------


def test_sampler_names_map_to_diffusers_configurations() -> None:
    karras = resolve_scheduler("dpm++ 2m  karras")
    assert karras.cls == "DPMSolverMultistepScheduler"
    assert dict(karras.config) == {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}
    assert resolve_scheduler("Euler a").cls == "EulerAncestralDiscreteScheduler"
    assert resolve_scheduler("UniPCMultistepScheduler").cls == "UniPCMultistepScheduler"
    assert resolve_scheduler("Euler", flow=True).cls == "FlowMatchEulerDiscreteScheduler"
    import diffusers

    for choice in SAMPLERS.values():
        assert hasattr(diffusers, choice.cls), choice.cls


def test_unknown_scheduler_is_one_clear_error_with_a_suggestion() -> None:
    with pytest.raises(UserError) as info:
        create_part("stage", "inpaint", model="tiny", scheduler="Euler A karas")
    assert "unknown scheduler" in str(info.value) and "did you mean" in str(info.value)
    with pytest.raises(UserError, match="not available"):
        create_part("stage", "inpaint", model="tiny", scheduler="DPM fast")
    with pytest.raises(UserError, match="unknown scheduler"):
        resolve_scheduler("NoSuchScheduler")
    with pytest.raises(UserError, match="flow-matching"):
        resolve_scheduler("DPM++ 2M", flow=True)


def test_scheduler_takes_effect_for_this_stage_only() -> None:
    default = InpaintStage(model="tiny-sd")
    euler_a = InpaintStage(model="tiny-sd", scheduler="Euler a")
    assert type(euler_a.pipeline().scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert type(default.pipeline().scheduler).__name__ == "DDIMScheduler"  # the cached pipeline keeps its own
    karras = InpaintStage(model="tiny-sd", scheduler="DPM++ 2M Karras")
    assert karras.pipeline().scheduler.config.use_karras_sigmas is True
    base = pixels(default)
    assert not np.array_equal(base, pixels(euler_a))
    assert np.array_equal(base, pixels(InpaintStage(model="tiny-sd")))


# -- VAE ----------------------------------------------------------------------------------------


def test_stage_vae_replaces_the_models_vae(tmp_path: Path) -> None:
    from grefine_kit.stages.tiny_models import tiny_vae

    folder = tmp_path / "vae"
    tiny_vae(seed=9).save_pretrained(folder)
    stage = Img2ImgStage(model="tiny", vae=str(folder))
    plain = Img2ImgStage(model="tiny")
    assert stage.pipeline().vae is not plain.pipeline().vae
    assert stage.pipeline().unet is plain.pipeline().unet  # shared, not copied
    req = request(strength=0.5, steps=4)
    req = StageRequest(image=req.image, prompt=PROMPT, strength=0.5, steps=4, seed=3)
    assert not np.array_equal(np.asarray(stage.run(req).image), np.asarray(plain.run(req).image))
    with pytest.raises(UserError, match="VAE"):
        Img2ImgStage(model="tiny", vae=str(tmp_path / "missing.safetensors")).pipeline()


# -- fingerprint ---------------------------------------------------------------------------------


def test_lora_and_vae_files_enter_the_fingerprint(tmp_path: Path) -> None:
    from grefine_kit.recipes.overrides import apply_overrides
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.runner.refine import refiner_config

    def _config(recipe: Recipe) -> str:
        return refiner_config(recipe.build())

    lora = tmp_path / "l.safetensors"
    lora.write_bytes(b"one")
    plain = Recipe.load("tiny")
    with_lora = apply_overrides(plain, [("stage1.lora", str(lora))])
    first = _config(with_lora)
    assert first != _config(plain)
    assert _config(plain) == plain.hash  # runs without extra files keep their fingerprints
    lora.write_bytes(b"two")
    assert _config(with_lora) != first  # same path, new bytes: resume redoes the items
    stage = InpaintStage(model="tiny", lora=str(lora), vae=str(tmp_path))
    assert set(stage_file_digests([stage])) == {str(lora), str(tmp_path)}
    refiner = with_lora.build()
    assert refiner_config(refiner) == _config(with_lora)


# -- per-step events and previews ------------------------------------------------------------------


def test_every_denoising_step_is_reported_and_previews_are_kept() -> None:
    from grefine_kit.stages.stepping import StepEvent, on_denoising_step, preview_steps

    events: list[StepEvent] = []
    with on_denoising_step(events.append):
        result = InpaintStage(model="tiny-sd", previews=2).run(request(steps=6, strength=1.0))
    assert [(e.role, e.step, e.total) for e in events] == [("masked", k, 6) for k in range(1, 7)]
    assert [k for k, _ in result.previews] == preview_steps(6, 2) == [2, 4]
    assert all(im.size == result.image.size for _, im in result.previews)
    plain = InpaintStage(model="tiny-sd").run(request(steps=6, strength=1.0))
    assert np.array_equal(np.asarray(plain.image), np.asarray(result.image))  # previews change nothing
    assert plain.previews == () and not np.array_equal(
        np.asarray(result.previews[0][1]), np.asarray(result.image)
    )
    events.clear()
    InpaintStage(model="tiny-sd").run(request(steps=6, strength=1.0))
    assert events == []  # the listener is gone after its block


def test_a_failing_listener_never_fails_the_stage() -> None:
    from grefine_kit.stages.stepping import on_denoising_step

    def broken(_event: Any) -> None:
        raise RuntimeError("display gone")

    with on_denoising_step(broken):
        assert InpaintStage(model="tiny-sd").run(request()).steps_run == 2


def test_previews_reach_the_run_folder_and_the_report(tmp_path: Path) -> None:
    from grefine_kit.recipes.overrides import apply_overrides
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.report.collect import collect
    from grefine_kit.runner.refine import refine_files

    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    sample_images([(64, 64)])[0].save(image)
    recipe = apply_overrides(Recipe.load("tiny"), [("stage2.previews", 1), ("refiner.iterations", 16)])
    summary = refine_files([image], recipe, tmp_path / "out", prompts="a cat", progress=False)
    assert summary.n_ok == 1
    names = [p.name for p in (tmp_path / "out").glob("a.stage2.step*.png")]
    assert len(names) == 1
    _kind, items = collect(tmp_path / "out")
    assert [label for label in items[0].heatmaps if "step" in label] == [
        f"stage2 step {int(names[0][-7:-4])}"
    ]


# -- memory options ------------------------------------------------------------------------------


def test_memory_options_take_effect_per_stage() -> None:
    req = request(size=(160, 160), strength=0.5, steps=4)
    base = InpaintStage(model="tiny-sd", resize="input")
    plain = pixels(base, size=(160, 160), strength=0.5, steps=4)
    tiled_stage = InpaintStage(model="tiny-sd", resize="input", vae_tiling=True, vae_slicing=True)
    tiled = np.asarray(tiled_stage.run(req).image)
    assert tiled_stage.pipeline().vae.use_tiling  # set for this stage's call
    # tiles of 64 px with overlap and blending: close to the untiled decode, not equal to it
    assert not np.array_equal(plain, tiled)
    assert np.abs(plain.astype(int) - tiled.astype(int)).mean() < 40
    sliced_stage = InpaintStage(model="tiny-sd", resize="input", attention_slicing=1)
    sliced = np.asarray(sliced_stage.run(req).image)
    assert np.abs(plain.astype(int) - sliced.astype(int)).max() <= 2
    from grefine_kit.stages.stage_setup import _sliced

    assert _sliced(sliced_stage.pipeline().unet)
    # the next stage without the options gets the shared modules back as they were
    assert np.array_equal(plain, np.asarray(base.run(req).image))
    assert not base.pipeline().vae.use_tiling and not _sliced(base.pipeline().unet)
    # sequential offload is for CUDA; on CPU it is ignored (same bytes)
    assert np.array_equal(
        plain,
        pixels(
            InpaintStage(model="tiny-sd", resize="input", sequential_offload=True),
            size=(160, 160),
            strength=0.5,
            steps=4,
        ),
    )


def test_memory_option_values_are_checked() -> None:
    with pytest.raises(UserError, match="attention_slicing"):
        create_part("stage", "inpaint", model="tiny", attention_slicing="half")
    with pytest.raises(UserError, match="previews"):
        create_part("stage", "inpaint", model="tiny", previews=17)


def test_denoising_steps_reach_the_runs_progress_report(monkeypatch: pytest.MonkeyPatch) -> None:
    from grefine_kit.progress import RunProgress

    report = RunProgress("refine", 1, mode="off")
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(report, "step", lambda done, total: seen.append((done, total)))
    with report.active():
        InpaintStage(model="tiny-sd").run(request(steps=3))
    assert seen == [(1, 3), (2, 3), (3, 3)]
