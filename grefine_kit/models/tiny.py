"""``grefine-tiny``: a tiny open_clip CLIP ViT with RANDOM weights, built in process.

It exists for smoke runs with no downloads (the offline ``tiny`` recipe) and for tests: its maps
and scores are meaningless noise from random weights, never quality judgements. The vocabulary
is CLIP's full 49408 tokens so that the bundled BPE tokenizer's ids fit, and the head widths are
64 so that an OpenAI-layout state dict of it rebuilds with open_clip's OpenAI loader.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import open_clip

__all__ = ["TINY_MODEL_NAME", "build_tiny_clip_model", "tiny_clip_config"]

TINY_MODEL_NAME = "grefine-tiny"

_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "quick_gelu": True,  # like OpenAI CLIP
    "vision_cfg": {"image_size": 224, "layers": 3, "width": 128, "head_width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}


def tiny_clip_config(image_size: int = 224) -> dict[str, Any]:
    """The tiny model's open_clip config (a copy): embed 64, ViT 3x128 (2 heads, patch 16), text 2x128."""
    if image_size < 16 or image_size % 16:
        raise ValueError(f"image_size must be a positive multiple of 16; got {image_size}")
    cfg = copy.deepcopy(_CONFIG)
    cfg["vision_cfg"]["image_size"] = image_size
    return cfg


def build_tiny_clip_model(seed: int = 0, image_size: int = 224) -> open_clip.CLIP:
    """A real ``open_clip.CLIP`` with random weights from ``seed`` (same seed, same weights), eval mode."""
    import open_clip  # heavy: imported on use

    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = open_clip.CLIP(**tiny_clip_config(image_size))
    finally:
        torch.random.set_rng_state(gen_state)  # do not disturb the caller's RNG stream
    set_openai_preprocess(model, image_size)
    return model.eval()


def set_openai_preprocess(model: Any, image_size: int) -> None:
    """Attach OpenAI CLIP's preprocessing config (mean/std, bicubic) to a model built without one."""
    import open_clip
    from open_clip.model import set_model_preprocess_cfg

    set_model_preprocess_cfg(
        model,
        {
            "size": image_size,
            "mode": "RGB",
            "mean": open_clip.OPENAI_DATASET_MEAN,
            "std": open_clip.OPENAI_DATASET_STD,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
            "fill_color": 0,
        },
    )
