"""Tiny random-weight diffusers components for tests (re-exported from the runtime).

The builders live in :mod:`grefine_kit.stages.tiny_models`, next to the offline ``tiny``
stages that use them, so that runtime code never imports ``grefine_kit.testing``.
"""

from grefine_kit.stages.tiny_models import (
    ARCHS,
    TEXT_HIDDEN,
    clip_bpe_tokenizer,
    save_tiny_pipeline,
    tiny_components,
    tiny_pipeline,
    tiny_refiner_pipeline,
    tiny_scheduler,
    tiny_text_encoder,
    tiny_unet,
    tiny_vae,
)

__all__ = [
    "ARCHS",
    "TEXT_HIDDEN",
    "clip_bpe_tokenizer",
    "save_tiny_pipeline",
    "tiny_components",
    "tiny_pipeline",
    "tiny_refiner_pipeline",
    "tiny_scheduler",
    "tiny_text_encoder",
    "tiny_unet",
    "tiny_vae",
]
