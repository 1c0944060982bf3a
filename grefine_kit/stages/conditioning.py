"""Prompt conditioning with emphasised phrases (paper eq. 7: ``prompt = prompt + 0.1·phs[j]``).

Our reading (DESIGN.md 6.3): the text-encoder embedding of the prompt plus ``weight`` times the
embedding of each defective phrase, for the per-token sequence embeddings and, for SDXL-family
pipelines, the pooled embedding too. Embeddings come from the pipeline's own ``encode_prompt``,
so the result is exactly what the pipeline would have computed for the plain prompt, plus the
weighted phrase terms. The negative side is left as the pipeline computes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["encode_conditioning", "is_sdxl_family"]


def is_sdxl_family(pipe: Any) -> bool:
    """True for SDXL-style pipelines (a second tokenizer, pooled text embeddings)."""
    return "tokenizer_2" in getattr(pipe, "components", {})


def _encode(pipe: Any, text: str, device: Any, guidance: bool, negative: str) -> tuple[Any, ...]:
    """``(embeds, negative_embeds, pooled, negative_pooled)``; pooled entries None for SD 1.x."""
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
    SDXL) = embedding(prompt) + Σ weight · embedding(phrase), and with ``guidance`` the
    negative embeddings. Phrases that are empty after stripping are ignored.

    Shapes: ``prompt_embeds`` ``[1, 77, D]``; ``pooled_prompt_embeds`` ``[1, D_pooled]``.
    """
    import torch

    device = device if device is not None else pipe._execution_device
    with torch.no_grad():
        encoded = _encode(pipe, prompt, device, guidance, negative_prompt)
        embeds, negative_embeds, pooled, negative_pooled = encoded
        for phrase, weight in emphasis:
            if not phrase.strip() or weight == 0:
                continue
            p_embeds, _, p_pooled, _ = _encode(pipe, phrase, device, False, "")
            embeds = embeds + float(weight) * p_embeds
            if pooled is not None:
                pooled = pooled + float(weight) * p_pooled
    out: dict[str, Any] = {"prompt_embeds": embeds}
    if pooled is not None:
        out["pooled_prompt_embeds"] = pooled
    if guidance:
        out["negative_prompt_embeds"] = negative_embeds
        if negative_pooled is not None:
            out["negative_pooled_prompt_embeds"] = negative_pooled
    return out
