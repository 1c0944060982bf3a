"""Every diffusers inpainting family through one loading path, on tiny random-weight models:
SD 1.x, SDXL, SD3 and FLUX Fill (CPU, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grefine_kit.errors import UserError
from grefine_kit.stages.base import StageRequest
from grefine_kit.stages.conditioning import content_mask, encode_conditioning
from grefine_kit.stages.diffusion import Img2ImgStage, InpaintStage, working_size
from grefine_kit.stages.families import family, size_multiple, uses_cfg
from grefine_kit.stages.loading import load_pipeline
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import Mask

FAMILIES = {"tiny-sd": "sd", "tiny": "sdxl", "tiny-sd3": "sd3", "tiny-flux-fill": "flux-fill"}


def request(size: tuple[int, int] = (72, 56), **kw: Any) -> StageRequest:
    image = sample_images([size])[0]
    w, h = size
    binary = np.zeros((h, w), np.float32)
    binary[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
    kw.setdefault("strength", 1.0)
    kw.setdefault("steps", 2)
    return StageRequest(image=image, mask=Mask(binary=binary, soft=binary), prompt="a red apple", **kw)


@pytest.mark.parametrize("model", list(FAMILIES))
def test_each_family_inpaints_through_the_stage(model: str) -> None:
    stage = InpaintStage(model=model, device="cpu", dtype="float32")
    pipe = stage.pipeline()
    assert family(pipe) == FAMILIES[model]
    req = request()
    result = stage.run(req)
    assert result.image.size == req.image.size and result.steps_run == 2 and result.skipped is None
    assert not np.array_equal(np.asarray(result.image), np.asarray(req.image))
    again = stage.run(req)
    assert np.array_equal(np.asarray(result.image), np.asarray(again.image))  # seeded


def test_family_defaults() -> None:
    expected = {"tiny-sd": 7.5, "tiny": 7.5, "tiny-sd3": 7.0, "tiny-flux-fill": 30.0}
    for model, guidance in expected.items():
        stage = InpaintStage(model=model)
        assert stage.guidance() == guidance
        assert stage.native_resolution() == 64  # the tiny models' sample size x VAE factor
    assert Img2ImgStage(model="tiny").guidance() == 5.0
    assert InpaintStage(model="tiny-sd3", guidance_scale=2.0).guidance() == 2.0
    assert not uses_cfg(InpaintStage(model="tiny-flux-fill").pipeline())
    assert working_size((1000, 600), 1024, multiple=16) == tuple(
        16 * round(x / 16) for x in (1000 * (1024 / (1000 * 600) ** 0.5), 600 * (1024 / (1000 * 600) ** 0.5))
    )
    assert size_multiple(InpaintStage(model="tiny").pipeline()) == 8


def test_sd3_img2img_and_flux_fill_refuses_the_global_stage() -> None:
    stage = Img2ImgStage(model="tiny-sd3")
    req = request()
    req = StageRequest(image=req.image, prompt="a red apple", strength=0.5, steps=4)
    assert stage.run(req).steps_run == 2
    with pytest.raises(UserError, match="FLUX Fill"):
        Img2ImgStage(model="tiny-flux-fill").pipeline()


@pytest.mark.parametrize("model", ["tiny-sd3", "tiny-flux-fill"])
def test_emphasis_follows_the_text_encoder_layout(model: str) -> None:
    import torch

    pipe = load_pipeline(model, "inpaint", device="cpu", dtype="float32")
    plain = encode_conditioning(pipe, "a red apple on a table", guidance=False)
    phrase = "red apple"
    emph = encode_conditioning(pipe, "a red apple on a table", [(phrase, 0.1)], guidance=False)
    term = encode_conditioning(pipe, phrase, guidance=False)
    mask = content_mask(pipe, phrase, plain["prompt_embeds"].shape)
    expected = plain["prompt_embeds"] + 0.1 * term["prompt_embeds"] * mask
    assert torch.allclose(emph["prompt_embeds"], expected)
    assert torch.allclose(
        emph["pooled_prompt_embeds"], plain["pooled_prompt_embeds"] + 0.1 * term["pooled_prompt_embeds"]
    )
    t5_rows = mask[0, :, -1].nonzero().flatten().tolist()
    start = 77 if model == "tiny-sd3" else 0
    n_t5 = (
        len(pipe.tokenizer_3(phrase).input_ids if model == "tiny-sd3" else pipe.tokenizer_2(phrase).input_ids)
        - 1
    )
    assert t5_rows[-n_t5:] == list(range(start, start + n_t5))
    if model == "tiny-sd3":  # CLIP rows: BOS (row 0) left alone; content rows 1..n
        assert mask[0, 0].sum() == 0 and mask[0, 1, 0] == 1
    else:
        assert "negative_prompt_embeds" not in encode_conditioning(pipe, "x", guidance=True)


def test_a_flux_fill_folder_loads_through_the_same_path(tmp_path: Path) -> None:
    from grefine_kit.stages.tiny_families import tiny_family_pipeline

    tiny_family_pipeline("flux-fill").save_pretrained(tmp_path / "fill")
    stage = InpaintStage(model=str(tmp_path / "fill"), device="cpu", dtype="float32", resolution=64)
    assert type(stage.pipeline()).__name__ == "FluxFillPipeline"
    assert stage.run(request()).steps_run == 2
