"""ControlNet guidance of the masked stage on tiny random-weight models (CPU, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grefine_kit.errors import UserError
from grefine_kit.parts.registry import create_part
from grefine_kit.stages.base import StageRequest
from grefine_kit.stages.controlnet import control_image
from grefine_kit.stages.diffusion import InpaintStage
from grefine_kit.stages.tiny_models import tiny_controlnet
from grefine_kit.testing.conformance import sample_images
from grefine_kit.types import Mask


def request(**kw: Any) -> StageRequest:
    image = sample_images([(64, 64)])[0]
    binary = np.zeros((64, 64), np.float32)
    binary[16:48, 16:48] = 1
    return StageRequest(
        image=image,
        mask=Mask(binary=binary, soft=binary),
        prompt="a red apple",
        strength=1.0,
        steps=2,
        seed=5,
        **kw,
    )


@pytest.fixture(scope="module")
def controlnets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("controlnets")
    out = {}
    for arch in ("sd", "sdxl"):
        tiny_controlnet(arch, seed=1).save_pretrained(root / arch)
        out[arch] = root / arch
    return out


@pytest.mark.parametrize(("model", "arch"), [("tiny-sd", "sd"), ("tiny", "sdxl")])
@pytest.mark.parametrize("kind", ["inpaint", "tile"])
def test_controlnet_takes_effect(model: str, arch: str, kind: str, controlnets: dict[str, Path]) -> None:
    plain = np.asarray(InpaintStage(model=model).run(request()).image)
    stage = InpaintStage(model=model, controlnet=str(controlnets[arch]), controlnet_kind=kind)
    assert "ControlNet" in type(stage.pipeline()).__name__
    guided = np.asarray(stage.run(request()).image)
    assert guided.shape == plain.shape and not np.array_equal(plain, guided)
    weak = InpaintStage(
        model=model, controlnet=str(controlnets[arch]), controlnet_kind=kind, controlnet_scale=0.1
    )
    assert not np.array_equal(guided, np.asarray(weak.run(request()).image))
    # the cached pipeline is unchanged: a stage without a ControlNet gives the plain result
    assert np.array_equal(plain, np.asarray(InpaintStage(model=model).run(request()).image))


def test_a_controlnet_of_the_wrong_family_is_one_clear_error(controlnets: dict[str, Path]) -> None:
    with pytest.raises(UserError) as info:
        InpaintStage(model="tiny-sd", controlnet=str(controlnets["sdxl"])).pipeline()
    assert "another model family" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="another model family"):
        InpaintStage(model="tiny", controlnet=str(controlnets["sd"])).pipeline()
    with pytest.raises(UserError, match="not supported"):
        InpaintStage(model="tiny-sd3", controlnet=str(controlnets["sd"])).pipeline()


def test_control_images_per_kind() -> None:
    from PIL import Image

    image = sample_images([(16, 16)])[0]
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    inpaint = control_image("inpaint", image, Image.fromarray(mask))
    assert tuple(inpaint.shape) == (1, 3, 16, 16)
    assert (inpaint[0, :, 4:8, 4:8] == -1).all()
    assert np.allclose(inpaint[0, :, 0, 0].numpy(), np.asarray(image)[0, 0] / 255.0)
    assert control_image("tile", image, Image.fromarray(mask)) is image


def test_controlnet_options_are_validated() -> None:
    with pytest.raises(UserError, match="controlnet_kind"):
        create_part("stage", "inpaint", model="tiny", controlnet="x", controlnet_kind="canny")
    with pytest.raises(UserError, match="no such file"):
        InpaintStage(model="tiny-sd", controlnet="./missing-controlnet").pipeline()
