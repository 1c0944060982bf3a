"""diffusers stages on tiny random-weight pipelines (CPU, offline): steps, skips, seeds, sizes,
emphasis conditioning, loading once and sharing components."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from grefine_kit.errors import UserError
from grefine_kit.stages import required_weights
from grefine_kit.stages.base import StageRequest, derive_seed
from grefine_kit.stages.conditioning import content_mask, encode_conditioning
from grefine_kit.stages.diffusion import Img2ImgStage, InpaintStage, working_size
from grefine_kit.stages.loading import cache_info, load_pipeline, parse_model
from grefine_kit.stages.steps import steps_that_run
from grefine_kit.testing.conformance import check_stage, sample_images
from grefine_kit.testing.tiny_diffusers import save_tiny_pipeline
from grefine_kit.types import Mask

PROMPT = "Mr. Beans wearing sun glasses with blue doctor suit and stripe tie"


@pytest.fixture
def count_unet(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[tuple[int, ...]]]:
    """Wrap a pipeline's UNet forward; the returned list collects each call's sample shape."""

    def wrap(pipe: Any) -> list[tuple[int, ...]]:
        calls: list[tuple[int, ...]] = []
        original = pipe.unet.forward

        def forward(sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            calls.append(tuple(sample.shape))
            return original(sample, *args, **kwargs)

        monkeypatch.setattr(pipe.unet, "forward", forward)
        return calls

    return wrap


def request(size: tuple[int, int] = (72, 56), *, masked: bool = True, **kw: Any) -> StageRequest:
    image = sample_images([size])[0]
    mask = None
    if masked:
        w, h = size
        binary = np.zeros((h, w), np.float32)
        binary[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
        mask = Mask(binary=binary, soft=binary)
    kw.setdefault("strength", 0.5)
    kw.setdefault("steps", 4)
    return StageRequest(image=image, mask=mask, prompt=kw.pop("prompt", PROMPT), **kw)


@pytest.fixture(params=["tiny", "tiny-sd"])
def model(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def test_conformance(model: str) -> None:
    for stage in (InpaintStage(model=model), Img2ImgStage(model=model)):
        result = check_stage(stage)
        assert result.steps_run == 2 and result.skipped is None


# -- seeds ------------------------------------------------------------------------------------


def test_derive_seed_is_stable_across_processes() -> None:
    here = derive_seed(7, "img-001.png")
    code = "from grefine_kit.stages.base import derive_seed; print(derive_seed(7, 'img-001.png'))"
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert int(out.stdout) == here
    assert 0 <= here < 2**63
    assert derive_seed(7, "img-002.png") != here and derive_seed(8, "img-001.png") != here


# -- steps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "strength"), [(10, 0.3), (10, 0.7), (4, 0.5), (7, 0.99), (50, 0.58)])
# 50 x 0.58 = 28.999999999999996 in floats: diffusers runs 28 steps, not 29
def test_steps_that_run_matches_diffusers(steps: int, strength: float, count_unet: Any) -> None:
    stage = Img2ImgStage(model="tiny", resolution=32)  # step counts do not depend on the size
    calls = count_unet(stage.pipeline())
    result = stage.run(request(masked=False, steps=steps, strength=strength))
    expected = steps_that_run(steps, strength)
    assert expected == int(steps * strength)
    assert result.steps_run == expected == len(calls)  # Euler: one UNet call (CFG batched) per step


def test_inpaint_runs_int_steps_times_strength(count_unet: Any) -> None:
    stage = InpaintStage(model="tiny")
    calls = count_unet(stage.pipeline())
    result = stage.run(request(steps=10, strength=0.69))
    assert result.steps_run == 6 == len(calls)
    assert calls[0][1] == 9, "the inpainting UNet gets latents + mask + masked-image latents"


def test_zero_steps_is_a_skip_with_a_reason_not_a_crash(count_unet: Any) -> None:
    stage = Img2ImgStage(model="tiny")
    calls = count_unet(stage.pipeline())
    req = request(masked=False, steps=2, strength=0.3)  # int(0.6) = 0: diffusers would crash in the VAE
    result = stage.run(req)
    assert result.steps_run == 0 and not calls
    assert result.skipped is not None and "0 denoising steps" in result.skipped
    assert np.array_equal(np.asarray(result.image), np.asarray(req.image))


def test_masked_stage_skips_an_empty_mask(count_unet: Any) -> None:
    stage = InpaintStage(model="tiny")
    calls = count_unet(stage.pipeline())
    req = request()
    zeros = np.zeros((req.image.height, req.image.width), np.float32)
    empty = Mask(binary=zeros, soft=zeros)
    result = stage.run(StageRequest(image=req.image, mask=empty, prompt=PROMPT, strength=0.9, steps=4))
    assert result.skipped == "empty mask" and not calls


# -- sizes and seeds --------------------------------------------------------------------------


@pytest.mark.parametrize("resize", ["model", "input"])
def test_odd_non_square_sizes_come_back_exactly(resize: str) -> None:
    for stage in (InpaintStage(model="tiny", resize=resize), Img2ImgStage(model="tiny", resize=resize)):
        out = stage.run(request((101, 67), masked=stage.role == "masked"))
        assert out.image.size == (101, 67) and out.image.mode == "RGB"


def test_working_size() -> None:
    w, h = working_size((1001, 667), 1024)
    assert w % 8 == 0 and h % 8 == 0
    assert abs(w * h / 1024**2 - 1) < 0.02 and abs(w / h - 1001 / 667) < 0.02
    assert working_size((1001, 667), 1024, "input") == (1008, 672)
    w, h = working_size((64, 2000), 64)
    assert w % 8 == 0 and h % 8 == 0 and w >= 8


def test_same_seed_same_output_other_seed_differs() -> None:
    stage = InpaintStage(model="tiny")
    a = np.asarray(stage.run(request(seed=3)).image)
    b = np.asarray(stage.run(request(seed=3)).image)
    c = np.asarray(stage.run(request(seed=4)).image)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# -- emphasis conditioning --------------------------------------------------------------------


def test_emphasis_adds_exactly_weight_times_phrase_embeddings(model: str) -> None:
    pipe = load_pipeline(model, "inpaint", device="cpu")
    plain = encode_conditioning(pipe, PROMPT)
    emph = encode_conditioning(pipe, PROMPT, [("sun glasses", 0.1), ("stripe tie", 0.1)])
    phrase1 = encode_conditioning(pipe, "sun glasses", guidance=False)
    phrase2 = encode_conditioning(pipe, "stripe tie", guidance=False)
    keys = ["prompt_embeds"] + (["pooled_prompt_embeds"] if model == "tiny" else [])
    assert set(plain) == set(emph)
    for key in keys:
        diff = emph[key] - plain[key]
        m1 = m2 = 1.0  # the pooled term is added whole; sequence terms at content positions only
        if key == "prompt_embeds":
            m1, m2 = (content_mask(pipe, p, diff.shape) for p in ("sun glasses", "stripe tie"))
        torch.testing.assert_close(diff, 0.1 * phrase1[key] * m1 + 0.1 * phrase2[key] * m2, rtol=0, atol=1e-6)
        assert diff.abs().max() > 1e-4, "the phrase terms are not negligible"
    for key in plain:
        if key.startswith("negative"):
            assert torch.equal(plain[key], emph[key]), "the negative side is untouched"


def test_emphasis_reaches_the_pipeline() -> None:
    stage = InpaintStage(model="tiny")
    plain = np.asarray(stage.run(request(seed=1)).image)
    emph = np.asarray(stage.run(request(seed=1, emphasis=(("stripe tie", 0.1),))).image)
    assert not np.array_equal(plain, emph)
    off = InpaintStage(model="tiny", use_emphasis=False)
    ignored = np.asarray(off.run(request(seed=1, emphasis=(("stripe tie", 0.1),))).image)
    assert np.array_equal(plain, ignored)


# -- loading ----------------------------------------------------------------------------------


def _loads_of(folder: Path) -> int:
    return sum(1 for entry in cache_info()["loads"] if entry.endswith(str(folder.resolve())))


def test_same_model_for_two_stages_loads_once(tmp_path: Path) -> None:
    folder = save_tiny_pipeline(tmp_path / "base", task="img2img")
    inpaint = InpaintStage(model=str(folder), device="cpu")  # a 4-channel base model inpaints too
    img2img = Img2ImgStage(model=f"local-dir:{folder}", device="cpu")
    p1, p2 = inpaint.pipeline(), img2img.pipeline()
    assert _loads_of(folder) == 1
    assert p1.unet is p2.unet and p1.vae is p2.vae and p1.text_encoder_2 is p2.text_encoder_2
    assert type(p1).__name__ == "StableDiffusionXLInpaintPipeline"
    assert type(p2).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert inpaint.run(request()).steps_run == 2
    assert img2img.run(request(masked=False)).steps_run == 2


def test_identical_components_of_two_models_are_shared(tmp_path: Path) -> None:
    # same seed -> byte-identical VAE / text encoders / tokenizers; different UNets (9 vs 4 channels)
    inp = save_tiny_pipeline(tmp_path / "inpaint", task="inpaint")
    base = save_tiny_pipeline(tmp_path / "base", task="img2img")
    p1 = InpaintStage(model=str(inp), device="cpu").pipeline()
    p2 = Img2ImgStage(model=str(base), device="cpu").pipeline()
    assert _loads_of(inp) == 1 and _loads_of(base) == 1
    assert p1.vae is p2.vae and p1.text_encoder is p2.text_encoder and p1.text_encoder_2 is p2.text_encoder_2
    assert p1.unet is not p2.unet
    assert p1.unet.config.in_channels == 9 and p2.unet.config.in_channels == 4


def test_refiner_shaped_model_runs_as_the_global_stage(tmp_path: Path) -> None:
    """The default stage-2 model (SDXL refiner) has no first text encoder and an aesthetic score."""
    folder = save_tiny_pipeline(tmp_path / "refiner", task="img2img", arch="sdxl-refiner")
    stage = Img2ImgStage(model=str(folder), device="cpu")
    pipe = stage.pipeline()
    assert pipe.text_encoder is None and pipe.config.requires_aesthetics_score
    plain = encode_conditioning(pipe, PROMPT)
    emph = encode_conditioning(pipe, PROMPT, [("stripe tie", 0.1)])
    phrase = encode_conditioning(pipe, "stripe tie", guidance=False)
    for key in ("prompt_embeds", "pooled_prompt_embeds"):
        mask = content_mask(pipe, "stripe tie", phrase[key].shape) if key == "prompt_embeds" else 1.0
        torch.testing.assert_close(emph[key] - plain[key], 0.1 * phrase[key] * mask, rtol=0, atol=1e-6)
    result = stage.run(request((90, 70), masked=False, emphasis=(("stripe tie", 0.1),)))
    assert result.steps_run == 2 and result.image.size == (90, 70)


def test_img2img_refuses_an_inpainting_unet(tmp_path: Path) -> None:
    folder = save_tiny_pipeline(tmp_path / "inpaint", task="inpaint")
    with pytest.raises(UserError, match="9-channel"):
        Img2ImgStage(model=str(folder), device="cpu").pipeline()


def test_parse_model_and_required_weights(tmp_path: Path) -> None:
    assert parse_model("tiny").kind == "tiny"
    assert parse_model("hf-hub:org/name").location == "org/name"
    assert parse_model("stabilityai/stable-diffusion-xl-refiner-1.0").kind == "hub"
    with pytest.raises(UserError, match=r"model_index\.json"):
        parse_model(f"local-dir:{tmp_path}")
    with pytest.raises(UserError, match="no such file"):
        parse_model(str(tmp_path / "missing.safetensors"))
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    assert parse_model(str(ckpt)).kind == "file"
    assert required_weights(InpaintStage()) == ["diffusers/stable-diffusion-xl-1.0-inpainting-0.1"]
    assert required_weights(Img2ImgStage()) == ["stabilityai/stable-diffusion-xl-refiner-1.0"]
    assert required_weights(Img2ImgStage(model="tiny")) == []
    assert required_weights(Img2ImgStage(model=str(ckpt), config="org/config")) == ["org/config"]


def test_construction_is_cheap_and_validated() -> None:
    stage = InpaintStage(model="does/not-exist")  # nothing loads before the first run
    assert stage.role == "masked" and Img2ImgStage().role == "global"
    with pytest.raises(ValueError):
        InpaintStage(dtype="float8")
    with pytest.raises(ValueError):
        Img2ImgStage(resize="crop")
    for bad in ({"resolution": True}, {"resolution": 10**9}, {"guidance_scale": float("inf")}):
        with pytest.raises(ValueError):
            InpaintStage(**bad)  # type: ignore[arg-type]
