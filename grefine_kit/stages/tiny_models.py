"""Tiny random-weight diffusers components that build offline, in process, in well under a second.

They exist for tests and for the offline ``tiny`` recipe: the weights are RANDOM, so the pictures
they produce are noise-like. Every builder is deterministic for a given ``seed`` and leaves the
global torch RNG untouched.

Architectures (``arch``):
- ``"sdxl"``: two CLIP text encoders (hidden 32 each, concatenated to 64), ``text_time``
  micro-conditioning, Euler scheduler — the structure of SDXL;
- ``"sd"``: one CLIP text encoder (hidden 32), DDIM scheduler — the structure of SD 1.x.

``tiny_refiner_pipeline`` builds an img2img pipeline shaped like SDXL's refiner (the default
stage-2 model): only the second text encoder, aesthetic-score micro-conditioning.

The VAE has two blocks (``vae_scale_factor`` 2) and the UNet ``sample_size`` 32, so the
native resolution is 64 px. Inpainting UNets take 9 input channels, base UNets 4.

The tokenizer is a real CLIP BPE tokenizer built from open_clip's bundled BPE merges (no hub):
with ``n_merges=None`` it is the full 49408-token CLIP vocabulary (ids identical to OpenAI
CLIP's); the default keeps the first 1000 merges (1514 tokens) to keep the models tiny.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.controlnets.controlnet import ControlNetModel
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline
    from diffusers.schedulers.scheduling_utils import SchedulerMixin
    from transformers import (
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        PreTrainedTokenizerBase,
    )

_ModuleT = TypeVar("_ModuleT", bound=torch.nn.Module)

__all__ = [
    "clip_bpe_tokenizer",
    "save_tiny_lora",
    "save_tiny_pipeline",
    "tiny_components",
    "tiny_controlnet",
    "tiny_pipeline",
    "tiny_refiner_pipeline",
    "tiny_text_encoder",
    "tiny_unet",
    "tiny_vae",
]

ARCHS = ("sdxl", "sd")
TEXT_HIDDEN = 32
# CLIP's BPE file: one header line, then merges; CLIP uses the first 49152 - 256 - 2 of them.
_FULL_MERGES = 49152 - 256 - 2


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch inside the block only (the caller's RNG state is restored after)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seeded_module(cls: Callable[..., _ModuleT], seed: int, *args: Any, **config: Any) -> _ModuleT:
    """``cls(*args, **config)`` built with torch seeded to ``seed`` (:func:`_seeded`), in eval mode."""
    with _seeded(seed):
        return cls(*args, **config).eval()


@functools.lru_cache(maxsize=4)
def _bpe_vocab(n_merges: int | None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    count = _FULL_MERGES if n_merges is None else min(n_merges, _FULL_MERGES)
    merges = [tuple(line.split()) for line in lines[1 : 1 + count]]
    pairs = [(m[0], m[1]) for m in merges]
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in pairs]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, pairs


def clip_bpe_tokenizer(n_merges: int | None = 1000, model_max_length: int = 77) -> CLIPTokenizer:
    """A ``transformers.CLIPTokenizer`` built in memory from open_clip's bundled BPE merges.

    ``model_max_length`` must be set: without it truncation overflows (NOTES-ENV).
    """
    from transformers import CLIPTokenizer

    vocab, merges = _bpe_vocab(n_merges)
    tokenizer_cls: Any = CLIPTokenizer
    return tokenizer_cls(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


def tiny_vae(seed: int = 0, latent_channels: int = 4, **config: Any) -> AutoencoderKL:
    """A two-block ``AutoencoderKL`` (scale factor 2); ``config``: further ``AutoencoderKL``
    settings (the transformer families' shift and scaling factors)."""
    from diffusers import AutoencoderKL

    vae_cls: Any = AutoencoderKL  # mypy sees diffusers' top-level names as placeholders
    return seeded_module(
        vae_cls,
        seed,
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        sample_size=64,
        # float32 weights need no fp16 overflow guard; it would also log a warning per call
        force_upcast=False,
        **config,
    )


def tiny_text_encoder(
    tokenizer: PreTrainedTokenizerBase, projection: bool = False, seed: int = 0
) -> CLIPTextModel | CLIPTextModelWithProjection:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        projection_dim=TEXT_HIDDEN,
        hidden_act="gelu",
    )
    if projection:
        return seeded_module(CLIPTextModelWithProjection, seed, cfg)
    return seeded_module(CLIPTextModel, seed, cfg)


def _text_conditioning(
    arch: str, micro_ids: int = 6, cross_attention: int = 2 * TEXT_HIDDEN
) -> dict[str, Any]:
    """How a tiny UNet or ControlNet of ``arch`` is conditioned. SDXL: ``micro_ids``
    micro-conditioning ids x 8 + text_encoder_2's pooled projection, cross-attention over
    ``cross_attention`` features (both encoders' hidden states concatenated: 64; the refiner's
    second encoder alone: 32); SD: one encoder's 32 features."""
    if arch != "sdxl":
        return {"cross_attention_dim": TEXT_HIDDEN}
    return {
        "attention_head_dim": (2, 4),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "transformer_layers_per_block": (1, 2),
        "projection_class_embeddings_input_dim": micro_ids * 8 + TEXT_HIDDEN,
        "cross_attention_dim": cross_attention,
    }


def tiny_unet(
    arch: str = "sdxl",
    in_channels: int = 4,
    seed: int = 0,
    *,
    micro_ids: int = 6,
    cross_attention: int = 2 * TEXT_HIDDEN,
) -> UNet2DConditionModel:
    """A two-level UNet; ``in_channels`` 9 for inpainting (latents + mask + masked latents), 4 else;
    ``micro_ids`` and ``cross_attention``: the SDXL conditioning (:func:`_text_conditioning`)."""
    from diffusers import UNet2DConditionModel

    _check_arch(arch)
    unet_cls: Any = UNet2DConditionModel
    return seeded_module(
        unet_cls,
        seed,
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **_text_conditioning(arch, micro_ids, cross_attention),
    )


def tiny_scheduler(arch: str = "sdxl") -> SchedulerMixin:
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    euler: Any = EulerDiscreteScheduler  # mypy sees diffusers' top-level names as placeholders
    ddim: Any = DDIMScheduler

    _check_arch(arch)
    if arch == "sdxl":
        return euler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
        )
    return ddim(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_components(arch: str = "sdxl", seed: int = 0) -> dict[str, Any]:
    """Shared components plus both UNets: keys ``vae, text_encoder(_2), tokenizer(_2),
    scheduler, unet_inpaint, unet_base`` (``_2`` keys only for ``"sdxl"``)."""
    _check_arch(arch)
    tok = clip_bpe_tokenizer()
    comps: dict[str, Any] = {
        "vae": tiny_vae(seed),
        "tokenizer": tok,
        "text_encoder": tiny_text_encoder(tok, seed=seed + 1),
        "scheduler": tiny_scheduler(arch),
        "unet_inpaint": tiny_unet(arch, 9, seed=seed + 3),
        "unet_base": tiny_unet(arch, 4, seed=seed + 4),
    }
    if arch == "sdxl":
        comps["tokenizer_2"] = tok
        comps["text_encoder_2"] = tiny_text_encoder(tok, projection=True, seed=seed + 2)
    return comps


def tiny_pipeline(
    task: str = "inpaint", arch: str = "sdxl", seed: int = 0, components: dict[str, Any] | None = None
) -> DiffusionPipeline:
    """Assemble a tiny pipeline; ``task`` is ``"inpaint"`` (9-channel UNet) or ``"img2img"``
    (4-channel UNet). Pass ``components`` (from ``tiny_components``) to share modules."""
    from diffusers import (
        StableDiffusionImg2ImgPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionXLImg2ImgPipeline,
        StableDiffusionXLInpaintPipeline,
    )

    if task not in ("inpaint", "img2img"):
        raise ValueError(f"task must be 'inpaint' or 'img2img'; got {task!r}")
    comps = components if components is not None else tiny_components(arch, seed)
    unet = comps["unet_inpaint"] if task == "inpaint" else comps["unet_base"]
    shared = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer")}
    # schedulers keep per-run state (step index): each pipeline gets its own copy
    scheduler = comps["scheduler"].__class__.from_config(comps["scheduler"].config)
    if arch == "sdxl":
        cls: Any = StableDiffusionXLInpaintPipeline if task == "inpaint" else StableDiffusionXLImg2ImgPipeline
        pipe: Any = cls(
            unet=unet,
            scheduler=scheduler,
            text_encoder_2=comps["text_encoder_2"],
            tokenizer_2=comps["tokenizer_2"],
            image_encoder=None,
            feature_extractor=None,
            requires_aesthetics_score=False,
            force_zeros_for_empty_prompt=True,
            **shared,
        )
    else:
        sd_cls: Any = StableDiffusionInpaintPipeline if task == "inpaint" else StableDiffusionImg2ImgPipeline
        pipe = sd_cls(
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            image_encoder=None,
            requires_safety_checker=False,
            **shared,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_refiner_pipeline(seed: int = 0) -> DiffusionPipeline:
    """An SDXL-refiner-shaped img2img pipeline: ``text_encoder``/``tokenizer`` None, the UNet
    conditioned on text_encoder_2 alone (cross-attention 32) and on 5 micro-conditioning ids
    (original size, crop, aesthetic score)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    tok = clip_bpe_tokenizer()
    unet = tiny_unet("sdxl", 4, seed=seed + 4, micro_ids=5, cross_attention=TEXT_HIDDEN)
    cls: Any = StableDiffusionXLImg2ImgPipeline
    pipe: Any = cls(
        vae=tiny_vae(seed),
        text_encoder=None,
        tokenizer=None,
        text_encoder_2=tiny_text_encoder(tok, projection=True, seed=seed + 2),
        tokenizer_2=tok,
        unet=unet,
        scheduler=tiny_scheduler("sdxl"),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(path: str | Path, task: str = "img2img", arch: str = "sdxl", seed: int = 0) -> Path:
    """Write a tiny pipeline as a diffusers folder (``model_index.json`` + component folders);
    ``arch="sdxl-refiner"`` writes :func:`tiny_refiner_pipeline` (img2img only)."""
    out = Path(path)
    if arch == "sdxl-refiner":
        if task != "img2img":
            raise ValueError("the refiner-shaped tiny pipeline is img2img only")
        tiny_refiner_pipeline(seed).save_pretrained(out)
    else:
        tiny_pipeline(task, arch, seed).save_pretrained(out)
    return out


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}; got {arch!r}")


def save_tiny_lora(
    path: str | Path, unet: torch.nn.Module, rank: int = 4, seed: int = 0, std: float = 0.1
) -> Path:
    """Write a RANDOM LoRA for ``unet``'s attention projections (``to_q/k/v``, ``to_out.0``) as a
    ``.safetensors`` file in the diffusers/PEFT key layout (``unet.<module>.lora_A/B.weight``),
    which ``load_lora_weights`` reads. For tests and the LoRA recipe example."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(seed)
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(("to_q", "to_k", "to_v", "to_out.0")):
            down = torch.randn(rank, module.in_features, generator=gen) * std
            up = torch.randn(module.out_features, rank, generator=gen) * std
            tensors[f"unet.{name}.lora_A.weight"], tensors[f"unet.{name}.lora_B.weight"] = down, up
    out = Path(path)
    save_file(tensors, str(out))
    return out


def tiny_controlnet(arch: str = "sd", seed: int = 0) -> ControlNetModel:
    """A RANDOM ``ControlNetModel`` shaped for the tiny ``arch`` UNet (4 latent input channels,
    the control image downsampled by the tiny VAE's factor 2). Its zero-initialised output
    convolutions are randomised too, so that it visibly changes the result."""
    from diffusers import ControlNetModel

    _check_arch(arch)
    cls: Any = ControlNetModel
    with _seeded(seed):  # one RNG stream: the construction, then the randomised outputs
        model = cls(
            block_out_channels=(32, 64),
            layers_per_block=1,
            in_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            conditioning_embedding_out_channels=(16, 32),
            **_text_conditioning(arch),
        ).eval()
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "zero_conv" in name or "mid_block" in name or "conv_out" in name:
                    param.normal_(0.0, 0.05)
    return model
