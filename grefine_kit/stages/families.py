"""Model families of the diffusers stages: which one a pipeline is, its defaults, its text layout.

One loading path (:mod:`grefine_kit.stages.loading`, diffusers' auto pipelines) serves every
family; this module says how a loaded pipeline differs:

=========  ===============================  ==========  ===============  =====================
family     pipelines                        guidance    working area     emphasis (eq. 7)
=========  ===============================  ==========  ===============  =====================
sd         StableDiffusion(Inpaint|Img2Img)  7.5 / 5.0   512² (UNet)      CLIP-L tokens + none
sdxl       StableDiffusionXL(...)            7.5 / 5.0   1024² (UNet)     CLIP-L ‖ CLIP-G tokens
                                                                          + pooled CLIP-G
sd3        StableDiffusion3(...)             7.0 / 7.0   1024²            CLIP-L ‖ CLIP-G tokens,
                                                                          T5 tokens, pooled
flux-fill  FluxFillPipeline                  30 (distilled, no CFG)  1024²  T5 tokens + pooled
flux       Flux(Inpaint|Img2Img)Pipeline     3.5 (distilled, no CFG)  1024²  T5 tokens + pooled
=========  ===============================  ==========  ===============  =====================

(guidance: inpaint / img2img stage defaults; the working area comes from the loaded model's own
config, these are the real models' values.) Denoising steps come from the refiner
(``iterations``/``split``), the same rule for every family.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAMILY_GUIDANCE", "default_guidance", "family", "native_resolution", "size_multiple", "uses_cfg"]

#: family -> (inpaint stage, img2img stage) default guidance_scale
FAMILY_GUIDANCE = {
    "sd": (7.5, 5.0),
    "sdxl": (7.5, 5.0),
    "sd3": (7.0, 7.0),
    "flux-fill": (30.0, 30.0),
    "flux": (3.5, 3.5),
}


def family(pipe: Any) -> str:
    """``sd``, ``sdxl``, ``sd3``, ``flux-fill`` or ``flux`` from the pipeline class (``sd`` for
    anything else with a UNet and one text encoder)."""
    name = type(pipe).__name__
    if name.startswith("FluxFill"):
        return "flux-fill"
    if name.startswith("Flux"):
        return "flux"
    if name.startswith("StableDiffusion3"):
        return "sd3"
    if "tokenizer_2" in getattr(pipe, "components", {}) and getattr(pipe, "unet", None) is not None:
        return "sdxl"
    return "sd"


def default_guidance(pipe: Any, task: str) -> float:
    """The family's default ``guidance_scale`` for an ``inpaint`` or ``img2img`` stage."""
    inpaint, img2img = FAMILY_GUIDANCE[family(pipe)]
    return inpaint if task == "inpaint" else img2img


def uses_cfg(pipe: Any) -> bool:
    """False for FLUX: its guidance is an input of the distilled model, not classifier-free
    guidance (no negative prompt, one model call per step)."""
    return not family(pipe).startswith("flux")


def native_resolution(pipe: Any) -> int:
    """Working-area side in px of the loaded model: denoiser sample size × VAE scale factor."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    sample = getattr(getattr(denoiser, "config", None), "sample_size", None)
    if family(pipe).startswith("flux") or not sample:
        sample = getattr(pipe, "default_sample_size", None) or 128
    return int(sample) * int(pipe.vae_scale_factor)


def size_multiple(pipe: Any) -> int:
    """Width and height must be multiples of this: 8 for UNets; the VAE factor × patch size
    (× 2 for FLUX's 2x2 latent packing) for transformers."""
    fam = family(pipe)
    if fam in ("sd", "sdxl"):
        return 8
    patch = int(getattr(pipe.transformer.config, "patch_size", 1) or 1)
    factor = int(pipe.vae_scale_factor) * patch * (2 if fam.startswith("flux") else 1)
    return max(8, factor)
