"""ControlNet guidance for the masked stage (stage 1): ``inpaint`` and ``tile`` kinds.

Stage options (``InpaintStage``): ``controlnet`` (a diffusers ``ControlNetModel`` folder,
``local-dir:`` prefix optional, a single ``.safetensors`` file, or a hub id; ``""`` = none),
``controlnet_kind`` (``inpaint`` or ``tile``) and ``controlnet_scale`` (diffusers'
``controlnet_conditioning_scale``, default 1.0; 0 leaves the result as without the ControlNet
up to the extra model call's rounding).

The control image is derived from the stage's input at the working size, as each kind expects:

- ``inpaint`` (e.g. ``lllyasviel/control_v11p_sd15_inpaint``): the image in [0, 1] with the
  pixels under the mask set to -1 (what the model was trained on: "repaint here");
- ``tile`` (e.g. ``lllyasviel/control_v11f1e_sd15_tile``, ``xinsir/controlnet-tile-sdxl-1.0``):
  the image itself (the model keeps the repaint close to its structure and colours).

ControlNets exist for UNet families (SD 1.x, SDXL) through diffusers' ControlNet inpaint
pipelines (``AutoPipelineForInpainting.from_pipe(..., controlnet=...)``). A ControlNet of
another family (its cross-attention width or added conditioning differs from the UNet's) is one
clear error, as is a ControlNet on SD3/FLUX (their ControlNets are other classes, not wired here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import UserError

if TYPE_CHECKING:
    import torch
    from diffusers.models.controlnets.controlnet import ControlNetModel
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline
    from PIL import Image

__all__ = ["CONTROLNET_KINDS", "ControlNetSpec", "control_kwargs", "controlnet_pipeline", "load_controlnet"]

CONTROLNET_KINDS = ("inpaint", "tile")


@attrs.frozen
class ControlNetSpec:
    """A masked stage's ControlNet: ``model`` (folder, ``.safetensors`` file or hub id), ``kind``
    (how the control image is derived: ``inpaint`` or ``tile``), ``scale`` (diffusers'
    ``controlnet_conditioning_scale``)."""

    model: str
    kind: str = "inpaint"
    scale: float = 1.0


def load_controlnet(spec: str, device: str, dtype: torch.dtype | None) -> ControlNetModel:
    """A ``ControlNetModel`` from a folder, a ``.safetensors`` file or a hub id (cached per
    process; :func:`grefine_kit.stages.controls.load_component`)."""
    from diffusers import ControlNetModel

    from grefine_kit.stages.controls import load_component

    cls: Any = ControlNetModel  # mypy sees diffusers' top-level names as placeholders
    return load_component(cls, "ControlNet", spec, device, dtype)


def _check_family(pipe: Any, controlnet: Any, spec: str) -> None:
    from grefine_kit.stages.families import family

    fam = family(pipe)
    if fam not in ("sd", "sdxl"):
        raise UserError(
            f"ControlNet {spec!r}: the {fam} family's ControlNets are not supported by the masked "
            f"stage (only SD 1.x and SDXL ControlNetModel)"
        )
    unet, cn = pipe.unet.config, controlnet.config
    want = ("text_time" if fam == "sdxl" else None, int(unet.cross_attention_dim))
    got = (getattr(cn, "addition_embed_type", None), int(cn.cross_attention_dim))
    if got != want:
        theirs = "SDXL" if got[0] == "text_time" else "SD 1.x/2.x"
        raise UserError(
            f"ControlNet {spec!r} is for another model family ({theirs}-shaped: cross-attention "
            f"{got[1]}, added conditioning {got[0]}) than the stage's {fam} model (cross-attention "
            f"{want[1]}); use a ControlNet trained for the stage's model family"
        )


def controlnet_pipeline(
    pipe: DiffusionPipeline, spec: ControlNetSpec, swap: dict[str, Any]
) -> DiffusionPipeline:
    """The ControlNet inpaint pipeline over ``pipe``'s modules (plus ``swap``: the stage's own
    scheduler / VAE)."""
    from diffusers import AutoPipelineForInpainting

    from grefine_kit.stages.families import family

    if family(pipe) not in ("sd", "sdxl"):
        _check_family(pipe, None, spec.model)
    device = str(getattr(pipe, "_execution_device", "cpu"))
    dtype = pipe.unet.dtype
    controlnet = load_controlnet(spec.model, device, dtype)
    _check_family(pipe, controlnet, spec.model)
    view = AutoPipelineForInpainting.from_pipe(pipe, controlnet=controlnet, **swap)
    view.set_progress_bar_config(disable=True)
    return view


def control_image(kind: str, image: Image.Image, mask: Image.Image) -> Image.Image | torch.Tensor:
    """The control image for ``kind`` from the working image and mask (PIL)."""
    if kind == "tile":
        return image
    import numpy as np
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    covered = np.asarray(mask.convert("L")) > 127
    arr[covered] = -1.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


def control_kwargs(spec: ControlNetSpec | None, image: Any, mask: Any) -> dict[str, Any]:
    """The pipeline-call keywords of a stage's ControlNet ({} without one)."""
    if spec is None:
        return {}
    return {
        "control_image": control_image(spec.kind, image, mask),
        "controlnet_conditioning_scale": float(spec.scale),
    }
