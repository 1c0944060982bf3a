"""diffusers stages: masked inpainting (stage 1) and a mild global img2img pass (stage 2).

Both take any RGB image size and return exactly that size: the pipeline runs at a working size
(see ``resize``) and the result is mapped back. Both count the denoising steps diffusers will run
(``int(steps * strength)``) before calling it, and skip with a reason when that is 0.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import attrs
import numpy as np
from attrs import validators as v
from PIL import Image

from grefine_kit.checks import choice, integer, number
from grefine_kit.devices import DTYPE_NAMES, check_runnable
from grefine_kit.parts.base import HubWeights, Missing, PartBase
from grefine_kit.parts.roles import GLOBAL, MASKED
from grefine_kit.stages.base import StageRequest, StageResult, skipped_result
from grefine_kit.stages.conditioning import encode_conditioning
from grefine_kit.stages.controlnet import CONTROLNET_KINDS, ControlNetSpec, control_kwargs
from grefine_kit.stages.controls import LoraSpec, parse_loras
from grefine_kit.stages.families import default_guidance, native_resolution, size_multiple, uses_cfg
from grefine_kit.stages.loading import download_weights, load_pipeline
from grefine_kit.stages.schedulers import check_scheduler_name
from grefine_kit.stages.stage_setup import check_attention_slicing, prepare_call, stage_view
from grefine_kit.stages.stepping import step_callback
from grefine_kit.stages.steps import STEP_RULES, schedule_for, steps_that_run
from grefine_kit.stages.weights import stage_findings, stage_hub_weights

__all__ = ["DEFAULT_IMG2IMG_MODEL", "DEFAULT_INPAINT_MODEL", "Img2ImgStage", "InpaintStage", "working_size"]

#: the paper's stage-1 model (§4.2)
DEFAULT_INPAINT_MODEL = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
#: stage 2: PASD is not in diffusers; SDXL's refiner is trained for exactly the low-noise end of the
#: schedule that a mild global pass runs (docs/refiner.md)
DEFAULT_IMG2IMG_MODEL = "stabilityai/stable-diffusion-xl-refiner-1.0"

RESIZE_MODES = ("model", "input")


def working_size(
    size: tuple[int, int], resolution: int, mode: str = "model", max_upscale: float = 0.0, multiple: int = 8
) -> tuple[int, int]:
    """The ``(width, height)`` the pipeline runs at, multiples of ``multiple`` (8; 16 for SD3 and
    FLUX with their real VAEs).

    ``model``: the image's aspect ratio at an area of about ``resolution²`` (what SD models are
    trained for), enlarged at most ``max_upscale`` times when that is > 0 (a small region crop
    then runs near its own size instead of being redrawn many times larger); ``input``: the
    image size rounded up to a multiple of 8 (padding, no resampling).
    """
    w, h = size
    m = multiple
    if mode == "input":
        return (math.ceil(w / m) * m, math.ceil(h / m) * m)
    scale = resolution / math.sqrt(w * h)
    if max_upscale > 0:
        scale = min(scale, max_upscale)
    return (max(m, round(w * scale / m) * m), max(m, round(h * scale / m) * m))


def _to_working(
    image: Image.Image, mask: np.ndarray | None, target: tuple[int, int], mode: str
) -> tuple[Image.Image, Image.Image | None, Callable[[Image.Image], Image.Image]]:
    """Image and mask at the working size, and the function that maps a result back."""
    size = image.size
    if mode == "input":
        arr = np.asarray(image)
        pad = ((0, target[1] - size[1]), (0, target[0] - size[0]))
        work = Image.fromarray(np.pad(arr, (*pad, (0, 0)), mode="edge"))
        work_mask = None if mask is None else Image.fromarray(np.pad((mask > 0).astype(np.uint8) * 255, pad))
        return work, work_mask, lambda out: out.crop((0, 0, *size))
    work = image.resize(target, Image.Resampling.LANCZOS) if target != size else image
    work_mask = None
    if mask is not None:
        # bilinear, then any covered pixel counts: the working mask covers the whole original mask
        m = Image.fromarray((mask > 0).astype(np.uint8) * 255).resize(target, Image.Resampling.BILINEAR)
        work_mask = Image.fromarray(((np.asarray(m) > 0) * 255).astype(np.uint8))

    def back(out: Image.Image) -> Image.Image:
        return out.resize(size, Image.Resampling.LANCZOS) if out.size != size else out

    return work, work_mask, back


#: the largest working-area side accepted (SDXL's native one is 1024; beyond this a typo, not a plan)
MAX_RESOLUTION = 8192


@attrs.define(kw_only=True)
class _DiffusersStage(PartBase):
    """Options shared by the diffusers stages.

    model: hub id (``hf-hub:`` optional), ``local-dir:PATH`` or a diffusers folder, a single
        ``.safetensors``/``.ckpt`` file, or ``tiny`` / ``tiny-sd`` (RANDOM weights, offline).
    device: ``auto`` (cuda, then mps, then cpu) or a torch device string.
    dtype: ``auto`` (float16 on GPU, float32 on CPU), ``float32``, ``float16``, ``bfloat16``.
    cpu_offload: accelerate's model CPU offload (CUDA only; saves GPU memory, slower).
    variant / revision: hub file variant (e.g. ``fp16``) and git revision.
    config / arch: for single files: the diffusers config (folder or hub id) and ``sdxl``/``sd``.
    guidance_scale: classifier-free guidance, a finite number >= 0; <= 1 turns it off; unset:
        the model family's default (:mod:`grefine_kit.stages.families`; FLUX's is its distilled
        guidance input, not CFG).
    negative_prompt: text the pipeline steers away from.
    resolution: working-area side in px, at most 8192; 0 = the model's native one (UNet sample
        size × VAE factor).
    resize: ``model`` (resample to ~resolution² area) or ``input`` (pad to a multiple of 8).
    use_emphasis: add the emphasised phrases to the conditioning (paper eq. 7).
    lora: LoRA ``.safetensors`` files for this stage alone, each with a scale
        (:mod:`grefine_kit.stages.controls`); default none.
    scheduler: a diffusers scheduler class or a sampler name (``"Euler a"``, ``"DPM++ 2M
        Karras"``; :mod:`grefine_kit.stages.schedulers`); ``""`` keeps the model's.
    vae: a VAE (folder, ``.safetensors`` file or hub id) replacing the model's; ``""`` keeps it.
    vae_tiling / vae_slicing: decode (and encode) the latents in tiles / one image at a time:
        bounded memory on large images; tiling changes pixels slightly at tile seams.
    attention_slicing: ``""`` (off), ``"auto"`` or a slice size: attention in slices (less
        peak memory, slower).
    sequential_offload: accelerate's sequential CPU offload (CUDA only: weights stay in CPU
        memory and move to the GPU layer by layer; the smallest GPU memory, the slowest).
    previews: keep this many intermediate images (evenly spaced denoising steps, one VAE
        decode each; 0..16, default 0); the report shows them.
    step_rule: ``schedule`` (default: the stage's steps are the schedule length, of which
        ``int(steps × strength)`` run) or ``denoising`` (they are the denoising steps that run,
        the paper's n1 = n2 of eq. 10: the schedule is lengthened to ``schedule_for(steps, strength)``).
    """

    task: ClassVar[str]
    role: ClassVar[str]
    #: the pipelines condition on the prompt (an empty one is unconditional), so a run asks for one
    needs_prompt: ClassVar[bool] = True

    model: str = attrs.field(validator=v.instance_of(str))
    device: str = attrs.field(default="auto", validator=[v.instance_of(str), check_runnable])
    dtype: str = attrs.field(default="auto", validator=choice(DTYPE_NAMES))
    cpu_offload: bool = attrs.field(default=False, validator=v.instance_of(bool))
    variant: str = attrs.field(default="", validator=v.instance_of(str))
    revision: str = attrs.field(default="", validator=v.instance_of(str))
    config: str = attrs.field(default="", validator=v.instance_of(str))
    arch: str = attrs.field(default="auto", validator=choice(("auto", "sdxl", "sd")))
    guidance_scale: float | None = attrs.field(default=None, validator=v.optional(number(0)))
    negative_prompt: str = attrs.field(default="", validator=v.instance_of(str))
    resolution: int = attrs.field(default=0, validator=integer(0, MAX_RESOLUTION))
    resize: str = attrs.field(default="model", validator=choice(RESIZE_MODES))
    use_emphasis: bool = attrs.field(default=True, validator=v.instance_of(bool))
    lora: tuple[LoraSpec, ...] = attrs.field(factory=tuple, converter=parse_loras)
    scheduler: str = attrs.field(default="", validator=[v.instance_of(str), check_scheduler_name])
    vae: str = attrs.field(default="", validator=v.instance_of(str))
    vae_tiling: bool = attrs.field(default=False, validator=v.instance_of(bool))
    vae_slicing: bool = attrs.field(default=False, validator=v.instance_of(bool))
    attention_slicing: str | int = attrs.field(default="", validator=check_attention_slicing)
    sequential_offload: bool = attrs.field(default=False, validator=v.instance_of(bool))
    previews: int = attrs.field(default=0, validator=integer(0, 16))
    step_rule: str = attrs.field(default="schedule", validator=choice(STEP_RULES))
    _pipe: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (loads on first call, through the process-wide cache)."""
        if self._pipe is None:
            self._pipe = load_pipeline(
                self.model,
                self.task,
                device=self.device,
                dtype=self.dtype,
                cpu_offload=self.cpu_offload,
                variant=self.variant,
                revision=self.revision,
                config=self.config,
                arch=self.arch,
                sequential_offload=self.sequential_offload,
            )
            with _quiet_upcast_warning():  # from_pipe / .to() casts log it for every module
                self._pipe = stage_view(self._pipe, self)
        return self._pipe

    load = pipeline

    @property
    def control(self) -> ControlNetSpec | None:
        """The stage's ControlNet, None without one (only a masked stage takes one)."""
        return None

    def native_resolution(self) -> int:
        """Working-area side in px (``resolution`` or the model's native one); loads the model."""
        if self.resolution:
            return self.resolution
        return native_resolution(self.pipeline())

    def guidance(self) -> float:
        """``guidance_scale``, or the model family's default when unset; loads the model."""
        if self.guidance_scale is not None:
            return float(self.guidance_scale)
        return default_guidance(self.pipeline(), self.task)

    def extra_files(self) -> list[str]:
        """Local files this stage reads beyond its model (they enter the run's fingerprint)."""
        files = [spec.path for spec in self.lora]
        files += [p for p in (self.vae.removeprefix("local-dir:"),) if p and _is_local_path(p)]
        return files

    def required_weights(self) -> list[HubWeights]:
        """The hub models this stage loads (``grefine fetch-weights`` downloads them; the
        doctor looks for them); none for tiny or local ones (:meth:`preflight` checks those)."""
        return stage_hub_weights(self.model, self.config, self.revision)

    def preflight(self) -> list[Missing]:
        """A device this machine lacks; a local model file or folder that is not there."""
        return stage_findings(self.model, self.device)

    def fetch_weights(self) -> list[str]:
        """Download what :meth:`required_weights` lists into the hub cache; returns the folders."""
        needed = [w.repo for w in self.required_weights()]
        if not needed:
            return [f"{self.model}: local or built in process, nothing to fetch"]
        lines = []
        for model in needed:
            folder = download_weights(model, variant=self.variant, revision=self.revision)
            lines.append(f"{model} -> {folder}")
        return lines

    def run(self, request: StageRequest) -> StageResult:
        started = time.perf_counter()
        schedule = request.steps
        if self.step_rule == "denoising":
            schedule = schedule_for(request.steps, request.strength)
        steps = steps_that_run(schedule, request.strength)
        if steps == 0:
            return skipped_result(
                request,
                f"int(steps × strength) = int({schedule} × {request.strength:.4g}) = 0 denoising steps",
                started,
            )
        mask = request.mask.binary if request.mask is not None else None
        if self.role == MASKED and (mask is None or not mask.any()):
            return skipped_result(request, "empty mask", started)
        import torch

        pipe = self.pipeline()
        size, res = request.image.size, self.native_resolution()
        target = working_size(size, res, self.resize, request.max_upscale, size_multiple(pipe))
        work_mask_source = mask if self.role == MASKED else None
        image, work_mask, back = _to_working(request.image, work_mask_source, target, self.resize)
        scale = self.guidance()
        guidance = scale > 1 and uses_cfg(pipe)
        emphasis = request.emphasis if self.use_emphasis else ()
        kwargs: dict[str, Any] = encode_conditioning(
            pipe, request.prompt, emphasis, negative_prompt=self.negative_prompt, guidance=guidance
        )
        kwargs.update(
            image=image,
            strength=request.strength,
            num_inference_steps=schedule,
            guidance_scale=scale,
            generator=torch.Generator("cpu").manual_seed(request.seed),
            # numbers, not PIL: a NaN (fp16 overflow, an extreme guidance) would silently become
            # black pixels in diffusers' uint8 cast; we fail the item instead
            output_type="np",
        )
        if self.task == "inpaint":
            kwargs.update(mask_image=work_mask, width=target[0], height=target[1])
            kwargs.update(control_kwargs(self.control, image, work_mask))
        prepare_call(pipe, self)
        kept: list[tuple[int, Any]] = []
        kwargs["callback_on_step_end"] = step_callback(pipe, self.role, steps, self.previews, kept)
        with _quiet_upcast_warning():
            array = pipe(**kwargs).images[0]
        out = _to_pil(array, f"{self.role} stage")
        result = back(out.convert("RGB"))
        previews = tuple((step, back(_to_pil(a, "preview"))) for step, a in kept)
        seconds = time.perf_counter() - started
        return StageResult(image=result, steps_run=steps, skipped=None, seconds=seconds, previews=previews)


def _to_pil(array: Any, what: str) -> Image.Image:
    """diffusers' own ``numpy_to_pil`` rule, ``(x * 255).round()`` to uint8, after checking that
    ``array`` ((H, W, 3) floats in [0, 1]) is finite."""
    import numpy as np
    from PIL import Image

    from grefine_kit.runs.numeric import check_finite

    values = np.asarray(array)
    check_finite(values, f"{what} image")
    return Image.fromarray((values * 255).round().astype("uint8"))


class _DropUpcastWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32" not in record.getMessage()


@contextlib.contextmanager
def _quiet_upcast_warning() -> Iterator[None]:
    """SDXL pipelines upcast the VAE around every encode/decode, and diffusers logs a warning
    for each cast; it says nothing actionable to our users, so drop just that message."""
    logger = logging.getLogger("diffusers.models.modeling_utils")
    drop = _DropUpcastWarning()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _is_local_path(text: str) -> bool:
    from pathlib import Path

    return Path(text).expanduser().exists()


@attrs.define(kw_only=True)
class InpaintStage(_DiffusersStage):
    """Stage 1: inpaint inside the mask (``role = "masked"``). SD 1.x, SDXL, SD3 and FLUX Fill
    inpainting models work (the family is read from the loaded pipeline); so do SD/SDXL base
    models (4-channel UNets), which diffusers inpaints by blending latents. Default: the paper's
    SDXL-Inpainting 0.1.

    controlnet: a ControlNet (folder, ``.safetensors`` file or hub id; SD 1.x / SDXL) guiding
        the repaint; ``""`` (default) = none. controlnet_kind: ``inpaint`` or ``tile`` (how the
        control image is derived: :mod:`grefine_kit.stages.controlnet`). controlnet_scale: its
        conditioning scale (default 1.0).
    """

    task: ClassVar[str] = "inpaint"
    role: ClassVar[str] = MASKED

    model: str = attrs.field(default=DEFAULT_INPAINT_MODEL, validator=v.instance_of(str))
    controlnet: str = attrs.field(default="", validator=v.instance_of(str))
    controlnet_kind: str = attrs.field(default="inpaint", validator=choice(CONTROLNET_KINDS))
    controlnet_scale: float = attrs.field(default=1.0, validator=number(0, 10))

    @property
    def control(self) -> ControlNetSpec | None:
        if not self.controlnet:
            return None
        return ControlNetSpec(self.controlnet, self.controlnet_kind, self.controlnet_scale)

    def extra_files(self) -> list[str]:
        files = super().extra_files()
        path = self.controlnet.removeprefix("local-dir:")
        return files + ([path] if path and _is_local_path(path) else [])


@attrs.define(kw_only=True)
class Img2ImgStage(_DiffusersStage):
    """Stage 2: a mild global img2img pass (``role = "global"``); needs a 4-channel UNet (a base or
    refiner model, not an inpainting one). Default: SDXL refiner 1.0 (see docs/refiner.md); a
    restoration model such as PASD can replace this stage through a plugin."""

    task: ClassVar[str] = "img2img"
    role: ClassVar[str] = GLOBAL

    model: str = attrs.field(default=DEFAULT_IMG2IMG_MODEL, validator=v.instance_of(str))
