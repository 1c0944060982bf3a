"""Emphasis conditioning: phrase terms at content positions only, never at BOS (tiny SDXL pipeline)."""

from __future__ import annotations

import pytest
import torch

from grefine_kit.stages.conditioning import content_mask, encode_conditioning
from grefine_kit.stages.loading import load_pipeline

PROMPT = "Mr. Beans wearing sun glasses with blue doctor suit and stripe tie"


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline("tiny", "inpaint", device="cpu")


def _n_content(tokenizer, text: str) -> int:
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    return len(ids) - 2


def test_bos_untouched_and_content_positions_get_the_phrase(pipe):
    phrases = [("sun glasses", 0.1), ("stripe tie", 0.3)]
    plain = encode_conditioning(pipe, PROMPT)
    emph = encode_conditioning(pipe, PROMPT, phrases)
    widths = [pipe.text_encoder.config.hidden_size, pipe.text_encoder_2.config.hidden_size]
    assert sum(widths) == plain["prompt_embeds"].shape[-1]
    # BOS (position 0) is exactly the plain prompt's, for every encoder
    assert torch.equal(emph["prompt_embeds"][:, 0], plain["prompt_embeds"][:, 0])
    expected = plain["prompt_embeds"].clone()
    for phrase, weight in phrases:
        p = encode_conditioning(pipe, phrase, guidance=False)["prompt_embeds"]
        start = 0
        for tokenizer, width in zip((pipe.tokenizer, pipe.tokenizer_2), widths, strict=True):
            n = _n_content(tokenizer, phrase)
            assert n >= 1
            expected[:, 1 : 1 + n, start : start + width] += weight * p[:, 1 : 1 + n, start : start + width]
            start += width
    torch.testing.assert_close(emph["prompt_embeds"], expected, rtol=0, atol=1e-6)
    # the phrase's EOS and padding positions are the prompt's as well
    longest = max(_n_content(t, ph) for t in (pipe.tokenizer, pipe.tokenizer_2) for ph, _ in phrases)
    assert torch.equal(emph["prompt_embeds"][:, 1 + longest :], plain["prompt_embeds"][:, 1 + longest :])
    assert not torch.allclose(emph["prompt_embeds"][:, 1], plain["prompt_embeds"][:, 1])
    # the pooled embedding still gets the whole weighted phrase term
    pooled = sum(
        w * encode_conditioning(pipe, ph, guidance=False)["pooled_prompt_embeds"] for ph, w in phrases
    )
    torch.testing.assert_close(
        emph["pooled_prompt_embeds"], plain["pooled_prompt_embeds"] + pooled, rtol=0, atol=1e-6
    )


def test_content_mask_shape_and_caps(pipe):
    shape = (1, 77, pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size)
    mask = content_mask(pipe, "a red cube", shape)
    assert mask.shape == shape and mask[:, 0].sum() == 0 and mask[:, -1].sum() == 0
    huge = content_mask(pipe, " ".join(["cube"] * 200), shape)  # truncated: BOS and the last slot stay 0
    assert huge[:, 0].sum() == 0 and huge[:, 1:76].min() == 1 and huge[:, 76].sum() == 0
    # widths that do not add up: one content length for all features
    odd = content_mask(pipe, "a red cube", (1, 77, 10))
    assert odd[:, 0].sum() == 0 and odd[:, 1].min() == 1
