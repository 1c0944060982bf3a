"""CLIP backbones: loading, the shared model cache, CLIP Surgery, the tiny random test config."""

from grefine_kit.models.backbone import SurgeryCLIP
from grefine_kit.models.loading import BackboneSpec, clear_backbone_cache, get_backbone, load_backbone
from grefine_kit.models.surgery import clip_surgery_tokens, feature_surgery, similarity_maps

__all__ = [
    "BackboneSpec",
    "SurgeryCLIP",
    "clear_backbone_cache",
    "clip_surgery_tokens",
    "feature_surgery",
    "get_backbone",
    "load_backbone",
    "similarity_maps",
]
