"""What a diffusers stage changes on the shared pipeline: its own view and its per-call settings.

Loaded pipelines are shared between stages (:mod:`grefine_kit.stages.loading`): the same model,
VAE and text encoders may serve stage 1 and stage 2. A stage's controls therefore never mutate
the cached pipeline in a way another stage would see:

- **view** (:func:`stage_view`, once per stage): a scheduler, a VAE or a ControlNet of the
  stage's own makes a new pipeline object over the same modules (``from_pipe``: nothing is
  copied), so the cached pipeline keeps its own;
- **per call** (:func:`prepare_call`, before every pipeline call): the settings that live on
  shared modules (LoRA adapters, VAE tiling/slicing, attention slicing) are set to exactly this
  stage's values, switched off where the stage does not ask for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

__all__ = ["check_attention_slicing", "prepare_call", "stage_view"]


def check_attention_slicing(_inst: object, _attribute: Any, value: Any) -> None:
    """``""``, ``"auto"`` or a positive int."""
    ok = value in ("", "auto") or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    if not ok:
        raise ValueError(f"attention_slicing must be '', 'auto' or a positive integer; got {value!r}")


def stage_view(pipe: DiffusionPipeline, stage: Any) -> DiffusionPipeline:
    """``pipe`` with the stage's scheduler, VAE and ControlNet (the same object when it has none)."""
    from grefine_kit.stages.controls import load_vae
    from grefine_kit.stages.schedulers import apply_scheduler

    swap: dict[str, Any] = {}
    if stage.scheduler:
        swap["scheduler"] = apply_scheduler(pipe, stage.scheduler)
    if stage.vae:
        device = getattr(pipe, "_execution_device", "cpu")
        dtype = getattr(getattr(pipe, "vae", None), "dtype", None)
        swap["vae"] = load_vae(stage.vae, str(device), dtype)
    if stage.control is not None:
        from grefine_kit.stages.controlnet import controlnet_pipeline

        return controlnet_pipeline(pipe, stage.control, swap)
    if not swap:
        return pipe
    view = type(pipe).from_pipe(pipe, **swap)
    view.set_progress_bar_config(disable=True)
    return view


def _sliced(unet: Any) -> bool:
    processors = getattr(unet, "attn_processors", None) or {}
    return any("Sliced" in type(p).__name__ for p in processors.values())


def prepare_call(pipe: Any, stage: Any) -> None:
    """Set the shared modules' per-call state to exactly this stage's options."""
    from grefine_kit.stages.controls import activate_loras

    activate_loras(pipe, stage.lora)
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling() if stage.vae_tiling else vae.disable_tiling()
        vae.enable_slicing() if stage.vae_slicing else vae.disable_slicing()
    denoiser = getattr(pipe, "unet", None)
    if denoiser is not None and hasattr(pipe, "enable_attention_slicing"):
        if stage.attention_slicing:
            pipe.enable_attention_slicing(
                "auto" if stage.attention_slicing == "auto" else int(stage.attention_slicing)
            )
        elif _sliced(denoiser):
            pipe.disable_attention_slicing()
