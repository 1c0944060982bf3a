"""Prompt conditioning with emphasised phrases (paper eq. 7: ``prompt = prompt + 0.1·phs[j]``).

Our reading (docs/design.md 6.3): the text-encoder embedding of the prompt plus ``weight`` times the
embedding of each defective phrase, for the per-token sequence embeddings and, for SDXL-family
pipelines, the pooled embedding too. Embeddings come from the pipeline's own ``encode_prompt``,
so the result is exactly what the pipeline would have computed for the plain prompt, plus the
weighted phrase terms. The negative side is left as the pipeline computes it.

The phrase terms are added at the phrase's *content* positions only: for each text encoder,
sequence positions ``1 .. n`` where ``n`` is the number of tokens the encoder's tokenizer gives
the phrase without its BOS/EOS (capped at the sequence length minus 2). Position 0 (BOS: the
same for every text, an attention sink) and the phrase's EOS and padding positions are left as
the prompt has them; otherwise BOS would be scaled by ``1 + 0.1·k`` for ``k`` phrases.

Per family (:mod:`grefine_kit.stages.families`), following each text-encoder layout:
SD 1.x one CLIP; SDXL two CLIPs side by side in the features, plus the pooled CLIP-G; SD3 the
two CLIPs side by side (padded to the T5 width) for the first 77 positions, then the T5 tokens
(positions ``77 .. 77 + n - 1``: T5 has no BOS, its EOS is left out), plus the pooled CLIPs;
FLUX the T5 tokens alone (positions ``0 .. n - 1``) plus the pooled CLIP. FLUX has no
classifier-free guidance, so no negative embeddings.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

__all__ = ["content_mask", "encode_conditioning", "is_sdxl_family", "reset_truncation_warning"]

#: what diffusers and transformers log, per text encoder and per call, for a prompt longer than
#: the encoders' context (77 tokens): with a 5,000-word prompt, ~27 KB of repeated prompt text
#: each time. It is replaced by one short line per process (see encode_conditioning).
_TRUNCATION_TEXTS = ("was truncated because CLIP can only handle", "Token indices sequence length is longer")
_TRUNCATION_LOGGERS = ("transformers.tokenization_utils_base",)
_truncation_warned = False


class _Truncations(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if any(text in record.getMessage() for text in _TRUNCATION_TEXTS):
            self.seen = True
            return False
        return True


@contextlib.contextmanager
def _one_truncation_warning(pipe: Any) -> Iterator[None]:
    """Drop the libraries' truncation warnings while encoding; warn once per process instead."""
    global _truncation_warned
    drop = _Truncations()
    encode = getattr(type(pipe), "encode_prompt", None)
    names = {type(pipe).__module__, getattr(encode, "__module__", None) or type(pipe).__module__}
    loggers = [logging.getLogger(n) for n in (*sorted(names), *_TRUNCATION_LOGGERS)]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)
    if drop.seen and not _truncation_warned:
        _truncation_warned = True
        tokenizer = getattr(pipe, "tokenizer", None) or getattr(pipe, "tokenizer_2", None)
        limit = getattr(tokenizer, "model_max_length", 77)
        print(
            f"grefine: warning: a prompt is longer than the text encoders' {limit}-token context; "
            "the stages see only its beginning (said once per run)",
            file=sys.stderr,
        )


def reset_truncation_warning() -> None:
    """Let the next long prompt warn again (tests; a long-lived process starting a new run)."""
    global _truncation_warned
    _truncation_warned = False


def is_sdxl_family(pipe: Any) -> bool:
    """True for SDXL-style pipelines (a second tokenizer, pooled text embeddings)."""
    return "tokenizer_2" in getattr(pipe, "components", {})


#: T5 sequence length used for SD3/FLUX prompts (the pipelines' defaults are 256 / 512 tokens;
#: eq. 7 prompts are short, and the length must be the same for the prompt and its phrases)
T5_LENGTH = 256
_CLIP_LENGTH = 77


def _encode(pipe: Any, text: str, device: Any, guidance: bool, negative: str) -> tuple[Any, ...]:
    """``(embeds, negative_embeds, pooled, negative_pooled)``; pooled entries None for SD 1.x."""
    from grefine_kit.stages.families import family

    fam = family(pipe)
    if fam == "sd3":
        return tuple(
            pipe.encode_prompt(
                prompt=text,
                prompt_2=None,
                prompt_3=None,
                device=device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=guidance,
                negative_prompt=negative or None,
                max_sequence_length=T5_LENGTH,
            )
        )
    if fam.startswith("flux"):
        embeds, pooled, _ids = pipe.encode_prompt(
            prompt=text, prompt_2=None, device=device, max_sequence_length=T5_LENGTH
        )
        return embeds, None, pooled, None
    if is_sdxl_family(pipe):
        return tuple(
            pipe.encode_prompt(
                prompt=text,
                device=device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=guidance,
                negative_prompt=negative or None,
            )
        )
    embeds, negative_embeds = pipe.encode_prompt(text, device, 1, guidance, negative_prompt=negative or None)
    return embeds, negative_embeds, None, None


def _encoders(pipe: Any) -> list[tuple[Any, int]]:
    """``(tokenizer, feature width)`` per text encoder, in the order ``encode_prompt`` concatenates them."""
    out = []
    for tok_name, enc_name in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
        tokenizer, encoder = getattr(pipe, tok_name, None), getattr(pipe, enc_name, None)
        if tokenizer is not None and encoder is not None:
            out.append((tokenizer, int(encoder.config.hidden_size)))
    return out


def _content_tokens(tokenizer: Any, text: str, length: int) -> int:
    ids = tokenizer(text, truncation=True, max_length=length).input_ids
    return max(0, min(len(ids) - 2, length - 2))  # without BOS and EOS


def content_mask(pipe: DiffusionPipeline, phrase: str, shape: Sequence[int]) -> torch.Tensor:
    """``[1, L, D]`` float mask, 1 at ``phrase``'s content positions (see the module docstring).

    ``D`` is split between the text encoders as ``encode_prompt`` concatenates them; if the widths
    do not add up to ``D`` (an unusual pipeline), the longest content length is used for all of it."""
    import torch

    from grefine_kit.stages.families import family

    length, width = int(shape[-2]), int(shape[-1])
    mask = torch.zeros(1, length, width)
    fam = family(pipe)
    if fam == "sd3" or fam.startswith("flux"):
        return _transformer_mask(pipe, phrase, mask, fam)
    encoders = _encoders(pipe)
    if encoders and sum(w for _, w in encoders) == width:
        start = 0
        for tokenizer, w in encoders:
            n = _content_tokens(tokenizer, phrase, length)
            mask[:, 1 : 1 + n, start : start + w] = 1.0
            start += w
    else:
        tokenizers = [t for t, _ in encoders] or [pipe.tokenizer]
        n = max(_content_tokens(t, phrase, length) for t in tokenizers)
        mask[:, 1 : 1 + n] = 1.0
    return mask


def _transformer_mask(pipe: DiffusionPipeline, phrase: str, mask: torch.Tensor, fam: str) -> torch.Tensor:
    """SD3 / FLUX layouts (module docstring)."""
    length = int(mask.shape[1])
    t5 = pipe.tokenizer_3 if fam == "sd3" else pipe.tokenizer_2
    start = _CLIP_LENGTH if fam == "sd3" else 0
    if fam == "sd3":
        column = 0
        clips = ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2))
        for tokenizer, encoder in clips:
            w = int(encoder.config.hidden_size)
            n = _content_tokens(tokenizer, phrase, _CLIP_LENGTH)
            mask[:, 1 : 1 + n, column : column + w] = 1.0
            column += w
    if t5 is not None and length > start:
        ids = t5(phrase, truncation=True, max_length=length - start).input_ids
        n = max(0, len(ids) - 1)  # T5: no BOS, one EOS
        mask[:, start : start + n] = 1.0
    return mask


def encode_conditioning(
    pipe: Any,
    prompt: str,
    emphasis: Sequence[tuple[str, float]] = (),
    *,
    negative_prompt: str = "",
    guidance: bool = True,
    device: Any = None,
) -> dict[str, Any]:
    """Keyword arguments for the pipeline call: ``prompt_embeds`` (+ ``pooled_prompt_embeds`` for
    SDXL) = embedding(prompt) + Σ weight · embedding(phrase), the sequence terms at the phrase's
    content positions only (``content_mask``), and with ``guidance`` the negative embeddings.
    Phrases that are empty after stripping are ignored.

    Shapes: ``prompt_embeds`` ``[1, 77, D]``; ``pooled_prompt_embeds`` ``[1, D_pooled]``.

    A prompt longer than the encoders' context is cut to its first tokens (as diffusers does);
    instead of the libraries' warning per encoder and call, which repeats the whole cut-off
    text, one short ``grefine: warning:`` line is printed per process.
    """
    import torch

    device = device if device is not None else pipe._execution_device
    with torch.no_grad(), _one_truncation_warning(pipe):
        encoded = _encode(pipe, prompt, device, guidance, negative_prompt)
        embeds, negative_embeds, pooled, negative_pooled = encoded
        for phrase, weight in emphasis:
            if not phrase.strip() or weight == 0:
                continue
            p_embeds, _, p_pooled, _ = _encode(pipe, phrase, device, False, "")
            mask = content_mask(pipe, phrase, p_embeds.shape).to(p_embeds.device, p_embeds.dtype)
            embeds = embeds + float(weight) * p_embeds * mask
            if pooled is not None:
                pooled = pooled + float(weight) * p_pooled
    out: dict[str, Any] = {"prompt_embeds": embeds}
    if pooled is not None:
        out["pooled_prompt_embeds"] = pooled
    if guidance and negative_embeds is not None:
        out["negative_prompt_embeds"] = negative_embeds
        if negative_pooled is not None:
            out["negative_pooled_prompt_embeds"] = negative_pooled
    return out
