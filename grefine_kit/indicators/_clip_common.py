"""Shared helpers of the CLIP-based indicators: backbone options, image grouping, score mapping.

Light at import time: torch and the model code are imported inside the functions.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.parts.base import FILE, HubWeights, Missing, PartBase

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from grefine_kit.models.backbone import SurgeryCLIP

__all__ = [
    "IMAGENET_TEMPLATES",
    "ClipIndicator",
    "backbone_for",
    "check_device",
    "check_interpolation",
    "check_surgery_depth",
    "clip_file_findings",
    "clip_hub_weights",
    "cosine_to_score",
    "encode_in_groups",
    "fetch_backbone_weights",
]

# OpenAI CLIP's 80 ImageNet prompt templates (the prompt-engineering notebook of openai/CLIP, MIT).
# The CLIP Surgery reference adds a few scene templates on top (85 in all); these 80 are the core.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.",
    "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.",
    "a photo of a hard to see {}.", "a bright photo of a {}.", "a photo of a clean {}.",
    "a photo of a dirty {}.", "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.",
    "the plastic {}.", "a photo of the cool {}.", "a close-up photo of a {}.",
    "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
    "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.",
    "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.", "the origami {}.",
    "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.", "a photo of the clean {}.",
    "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.", "a photo of a weird {}.",
    "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.", "a embroidered {}.",
    "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.",
    "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.",
    "a photo of a cool {}.", "a photo of a small {}.", "a tattoo of the {}.",
)  # fmt: skip

INTERPOLATIONS = ("bicubic", "bilinear")


def check_interpolation(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in INTERPOLATIONS:
        raise ValueError(f"{attribute.name} must be one of {INTERPOLATIONS}; got {value!r}")


_DEVICE = re.compile(r"^(auto|cpu|mps|(cuda|xpu)(:\d+)?)$")


def check_device(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise ValueError(
            f"{attribute.name} must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu[:N]'; got {value!r}"
        )


def check_surgery_depth(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= 64:
        raise ValueError(f"{attribute.name} must be in [1, 64]; got {value}")


def backbone_for(part: Any) -> SurgeryCLIP:
    """The shared backbone named by a part's ``model``/``weights``/``device``/``dtype`` options."""
    from grefine_kit.models.loading import BackboneSpec, get_backbone

    return get_backbone(
        BackboneSpec(model=part.model, weights=part.weights, device=part.device, dtype=part.dtype)
    )


def fetch_backbone_weights(part: Any) -> list[str]:
    """``fetch_weights`` of the CLIP indicators: download the backbone into the local caches.
    Random weights answer at once (no torch or open_clip import: ``--recipe tiny`` is instant)."""
    weights = str(part.weights)
    if weights == "random" or weights.startswith("random:"):
        return [f"CLIP {part.model} / {weights}: built in process (random weights): nothing to fetch"]
    from grefine_kit.models.loading import BackboneSpec, fetch_weights

    spec = BackboneSpec(model=part.model, weights=part.weights, device="cpu", dtype=part.dtype)
    return [f"CLIP {spec.model} / {spec.weights}: {fetch_weights(spec)}"]


def encode_in_groups(
    backbone: SurgeryCLIP,
    images: Sequence[Image.Image],
    *,
    native_size: bool,
    surgery_depth: int,
    batch_size: int,
    pos_interpolation: str = "bilinear",
) -> list[tuple[list[int], torch.Tensor, tuple[int, int]]]:
    """Surgery tokens for images grouped by input size (one group in the default resize mode).

    Returns ``(indices into images, tokens [len(indices), 1+h*w, D], (h, w))`` per group/chunk.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(backbone.pixel_size_for(image, native_size), []).append(i)
    out = []
    for indices in groups.values():
        grid = backbone.grid_for(images[indices[0]], native_size)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            tokens = backbone.encode_image_tokens(
                [images[i] for i in chunk],
                native_size=native_size,
                surgery_depth=surgery_depth,
                pos_interpolation=pos_interpolation,
            )
            out.append((chunk, tokens, grid))
    return out


def cosine_to_score(cos: float, slope: float = 10.0) -> float:
    """The reference mapping of a cosine to [0, 1]: ``sigmoid(slope * cos)``."""
    return 1.0 / (1.0 + math.exp(-slope * cos))


#: open_clip's hub repos for the OpenAI tags (what ``open_clip.create_model`` downloads); other
#: (model, tag) pairs are looked up in open_clip's own table, which costs an open_clip import
_OPENAI_HUB = {
    "ViT-B-32": "timm/vit_base_patch32_clip_224.openai",
    "ViT-B-16": "timm/vit_base_patch16_clip_224.openai",
    "ViT-L-14": "timm/vit_large_patch14_clip_224.openai",
    "ViT-L-14-336": "timm/vit_large_patch14_clip_336.openai",
}
_OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _builtin_or_file(model: str, weights: str) -> bool:
    """Random weights, the in-process tiny model, or a local file: nothing from the hub."""
    if weights == "random" or weights.startswith("random:") or model == "grefine-tiny":
        return True
    return any(_looks_like_file(value) for value in (model.removeprefix("local-dir:"), weights))


def _looks_like_file(value: str) -> bool:
    return bool(value) and (os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors")))


def clip_hub_weights(model: str, weights: str) -> HubWeights | None:
    """The hub files open_clip loads for ``model`` + ``weights``; None when it loads nothing
    from the hub (random, tiny, a local file) or not through it (a URL download or an unknown
    pair: left to the loader). A tag outside the OpenAI ones imports open_clip's table."""
    if _builtin_or_file(model, weights):
        return None
    if model.startswith("hf-hub:"):
        return HubWeights(model[len("hf-hub:") :], ("open_clip_config.json",), label=f"CLIP weights {model}")
    label = f"CLIP weights {model}/{weights}"
    base = model.removesuffix("-quickgelu")
    if weights == "openai" and base in _OPENAI_HUB:
        return HubWeights(_OPENAI_HUB[base], _OPEN_CLIP_FILES, label=label)
    try:  # another tag: open_clip's table (imports open_clip, a few seconds, still before any load)
        from open_clip.pretrained import get_pretrained_cfg
    except ImportError:
        return None
    hub = str(get_pretrained_cfg(model, weights).get("hf_hub", ""))
    if not hub:
        return None
    if hub.endswith("/"):
        return HubWeights(hub.rstrip("/"), _OPEN_CLIP_FILES, label=label)
    repo, filename = os.path.split(hub)
    return HubWeights(repo, (filename,), label=label)


def clip_file_findings(model: str, weights: str) -> list[Missing]:
    """A finding for a local CLIP file named by ``model``/``weights`` that does not exist."""
    if weights == "random" or weights.startswith("random:") or model == "grefine-tiny":
        return []
    for value in (model.removeprefix("local-dir:"), weights):
        if _looks_like_file(value):
            if Path(value).expanduser().exists():
                return []
            return [Missing(f"CLIP file {value}", kind=FILE, fix="fix the path in the recipe")]
    return []


_positive_int = [attrs.validators.instance_of(int), attrs.validators.ge(1)]


@attrs.define(kw_only=True)
class ClipIndicator(PartBase):
    """Options and plumbing shared by the CLIP indicators (``pq-map``, ``aq-map``, ``clip-surgery``).

    Options: ``model``, ``weights``, ``device``, ``dtype`` name the CLIP backbone (indicators
    naming the same one share a single loaded copy and its image-token cache); ``interpolation``
    (``bicubic`` as the paper, or ``bilinear`` as the reference code) upsamples the token-grid
    maps; ``pos_embed_interpolation`` (``bilinear`` as the reference code, or ``bicubic``) resizes
    the ViT positional embedding when an image is not encoded at the model's size;
    ``native_size`` encodes at the image's own size (rounded to the patch grid) instead of
    resizing to the model's; ``surgery_depth`` is the number of final blocks with the v-v path;
    ``batch_size`` the images per image-encoder forward.
    """

    model: str = attrs.field(default="ViT-B-16-quickgelu", validator=attrs.validators.instance_of(str))
    weights: str = attrs.field(default="openai", validator=attrs.validators.instance_of(str))
    device: str = attrs.field(default="auto", validator=check_device)
    dtype: str = attrs.field(
        default="float32", validator=attrs.validators.in_(("float32", "float16", "bfloat16"))
    )
    interpolation: str = attrs.field(default="bicubic", validator=check_interpolation)
    pos_embed_interpolation: str = attrs.field(default="bilinear", validator=check_interpolation)
    native_size: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    surgery_depth: int = attrs.field(
        default=6, validator=[attrs.validators.instance_of(int), check_surgery_depth]
    )
    batch_size: int = attrs.field(default=16, validator=_positive_int)

    _backbone: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    def backbone(self) -> SurgeryCLIP:
        """The shared backbone (loaded on first use through the process-wide cache)."""
        if self._backbone is None:
            self._backbone = backbone_for(self)
        return self._backbone

    def fetch_weights(self) -> list[str]:
        """Download the CLIP backbone into the local caches (for ``grefine fetch-weights``)."""
        return fetch_backbone_weights(self)

    def required_weights(self) -> list[HubWeights]:
        """The CLIP backbone's hub files (none for random, tiny or local weights)."""
        found = clip_hub_weights(self.model, self.weights)
        return [found] if found is not None else []

    def preflight(self) -> list[Missing]:
        """A device this machine lacks; a local CLIP file that is not there."""
        from grefine_kit.parts.checks import check_device as device_findings

        return device_findings(self.device) + clip_file_findings(self.model, self.weights)

    def encode_groups(
        self, backbone: SurgeryCLIP, images: Sequence[Image.Image]
    ) -> list[tuple[list[int], torch.Tensor, tuple[int, int]]]:
        """Surgery tokens for ``images`` with this indicator's options (see ``encode_in_groups``)."""
        return encode_in_groups(
            backbone,
            images,
            native_size=self.native_size,
            surgery_depth=self.surgery_depth,
            batch_size=self.batch_size,
            pos_interpolation=self.pos_embed_interpolation,
        )
