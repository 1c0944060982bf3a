"""Tiny random-weight SD3 and FLUX Fill pipelines, built offline in process (tests, ``tiny-sd3`` /
``tiny-flux-fill`` models). The weights are RANDOM: they exercise the flow, they draw noise.

Both are flow-matching transformer pipelines with a T5 text encoder. The T5 tokenizer is a real
``T5TokenizerFast`` over a tiny Unigram vocabulary (``tokenizers``; the real T5 vocabulary is a
hub download), so its ids mean nothing beyond these models. Layouts mirror the real families:

- SD3: CLIP-L and CLIP-G (hidden 32 each, pooled 32 each) concatenated to 64 features, padded
  to the T5 width (96) and joined in the sequence with the T5 tokens; 16 latent channels;
- FLUX Fill: CLIP (pooled only) + T5 (the sequence); 16 latent channels packed 2x2; the
  transformer takes latents + masked-image latents + the packed mask (64 + 64 + 16 channels
  with the tiny VAE's scale factor 2; 64 + 64 + 256 = 384 for the real VAE's 8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grefine_kit.stages.tiny_models import clip_bpe_tokenizer, seeded_module, tiny_text_encoder, tiny_vae

if TYPE_CHECKING:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast, T5EncoderModel

__all__ = ["T5_WIDTH", "tiny_family_pipeline", "tiny_t5_encoder", "tiny_t5_tokenizer"]

T5_WIDTH = 96
_WORDS = "a an the of on in with and red blue green apple table cat dog hand face eye tree sky".split()  # noqa: SIM905


def tiny_t5_tokenizer(model_max_length: int = 77) -> PreTrainedTokenizerFast:
    """A ``T5TokenizerFast`` over a tiny Unigram vocabulary: pad 0, ``</s>`` 1, unk 2, letters,
    a few words; appends ``</s>`` like T5."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(c, -2.0) for c in "▁abcdefghijklmnopqrstuvwxyz0123456789.,"]
    vocab += [("▁" + w, -1.0) for w in _WORDS]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    cls: Any = getattr(transformers, "T5TokenizerFast")  # noqa: B009 (lazy export mypy cannot see)
    return cls(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )


def tiny_t5_encoder(tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> T5EncoderModel:
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(
        vocab_size=len(tokenizer),
        d_model=T5_WIDTH,
        d_ff=37,
        d_kv=8,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return seeded_module(T5EncoderModel, seed, cfg)


def _vae(seed: int, shift: float, scale: float) -> AutoencoderKL:
    """The tiny VAE with 16 latent channels and the family's shift and scaling factors."""
    return tiny_vae(
        seed,
        latent_channels=16,
        shift_factor=shift,
        scaling_factor=scale,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def tiny_family_pipeline(family: str, task: str = "inpaint", seed: int = 0) -> DiffusionPipeline:
    """``family`` ``"sd3"`` (task ``inpaint``/``img2img``) or ``"flux-fill"`` (``inpaint``)."""
    pipe: Any
    transformer: Any
    from diffusers import FlowMatchEulerDiscreteScheduler

    clip = clip_bpe_tokenizer()
    t5_tok = tiny_t5_tokenizer()
    t5 = tiny_t5_encoder(t5_tok, seed=seed + 5)
    if family == "sd3":
        from diffusers import (
            SD3Transformer2DModel,
            StableDiffusion3Img2ImgPipeline,
            StableDiffusion3InpaintPipeline,
        )

        sd3_cls: Any = SD3Transformer2DModel  # mypy sees diffusers' top-level names as placeholders
        transformer = seeded_module(
            sd3_cls,
            seed + 3,
            sample_size=32,
            patch_size=1,
            in_channels=16,
            out_channels=16,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            caption_projection_dim=32,
            joint_attention_dim=T5_WIDTH,
            pooled_projection_dim=64,
        )
        cls: Any = StableDiffusion3InpaintPipeline if task == "inpaint" else StableDiffusion3Img2ImgPipeline
        pipe = cls(
            transformer=transformer,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_vae(seed, 0.0609, 1.5305),
            text_encoder=tiny_text_encoder(clip, projection=True, seed=seed + 1),
            tokenizer=clip,
            text_encoder_2=tiny_text_encoder(clip, projection=True, seed=seed + 2),
            tokenizer_2=clip,
            text_encoder_3=t5,
            tokenizer_3=t5_tok,
        )
    elif family == "flux-fill":
        if task != "inpaint":
            raise ValueError("FLUX Fill is an inpainting model only")
        from diffusers import FluxFillPipeline, FluxTransformer2DModel

        flux_cls: Any = FluxTransformer2DModel
        transformer = seeded_module(
            flux_cls,
            seed + 3,
            patch_size=1,
            in_channels=64 + 64 + 16,
            out_channels=64,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=T5_WIDTH,
            pooled_projection_dim=32,
            axes_dims_rope=[4, 4, 8],
        )
        pipe = FluxFillPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_vae(seed, 0.1159, 0.3611),
            text_encoder=tiny_text_encoder(clip, projection=False, seed=seed + 1),
            tokenizer=clip,
            text_encoder_2=t5,
            tokenizer_2=t5_tok,
            transformer=transformer,
        )
        pipe.default_sample_size = 32  # native 64 px with the tiny VAE (real FLUX: 128 x 8 = 1024)
    else:
        raise ValueError(f"family must be 'sd3' or 'flux-fill'; got {family!r}")
    pipe.set_progress_bar_config(disable=True)
    return pipe
