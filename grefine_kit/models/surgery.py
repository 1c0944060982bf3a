"""CLIP Surgery on open_clip ViTs: the v-v attention path, feature surgery and similarity maps.

Written from the description in docs/design.md 6.1 (no upstream code). Public API, relied on by
PQ-Map, AQ-Map and the ``clip-surgery`` indicator:

- ``clip_surgery_tokens(model, pixels, surgery_depth=6, pos_interpolation="bilinear")
  -> Tensor[B, 1+h*w, D]``: projected tokens; row 0 is the ordinary CLS embedding
  (== ``model.encode_image``), rows 1.. the v-v path's patch tokens in row-major ``(h, w)`` order.
- ``feature_surgery(image_tokens, text_feats, redundant) -> Tensor[B, N, T]``: normalised image
  tokens dotted with ``t - r``.
- ``similarity_maps(similarity, grid, sizes, interpolation) -> list[ndarray[T, H, W]]``: min-max per
  text over patch tokens, upsampled to each image's ``(H, W)``, clamped to [0, 1].
- ``upsample_patch_values(values, grid, size, interpolation) -> ndarray[K, H, W]``: the same
  without min-max (for maps that already are probabilities).

The wrapper the indicators share (``SurgeryCLIP``) is in ``grefine_kit.models.backbone``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from grefine_kit.errors import UserError

if TYPE_CHECKING:
    from open_clip.transformer import VisionTransformer

__all__ = [
    "DEFAULT_POS_INTERPOLATION",
    "DEFAULT_SURGERY_DEPTH",
    "clip_surgery_tokens",
    "feature_surgery",
    "interpolate_pos_embed",
    "similarity_maps",
    "upsample_patch_values",
]

DEFAULT_SURGERY_DEPTH = 6
INTERPOLATIONS = ("bicubic", "bilinear")
#: the reference code resizes the positional embedding bilinearly (ours was bicubic before)
DEFAULT_POS_INTERPOLATION = "bilinear"
# Above this many patch tokens native-size encoding is scaled down: attention is O(tokens^2).
MAX_NATIVE_TOKENS = 4096


def _check_vit(model: torch.nn.Module) -> VisionTransformer:
    """``model``'s image tower, checked to be a ViT that CLIP Surgery can rewire (``UserError`` otherwise)."""
    visual = getattr(model, "visual", None)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if visual is None or blocks is None or not hasattr(visual, "conv1"):
        raise UserError(
            "CLIP Surgery needs an open_clip VisionTransformer image tower (not timm or ResNet towers)"
        )
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise UserError(
            "CLIP Surgery needs a ViT that pools its CLS token (no attentional or average pooling)"
        )
    if not all(isinstance(getattr(b, "attn", None), torch.nn.MultiheadAttention) for b in blocks):
        raise UserError("CLIP Surgery needs standard residual attention blocks (nn.MultiheadAttention)")
    return visual


def interpolate_pos_embed(
    pos: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    mode: str = DEFAULT_POS_INTERPOLATION,
) -> torch.Tensor:
    """Positional embedding ``[1+h0*w0, W]`` resized to ``[1+h*w, W]`` (the CLS row kept);
    returns a new tensor. ``mode``: ``"bilinear"`` (the reference code) or ``"bicubic"``;
    ``align_corners=False`` either way."""
    if mode not in INTERPOLATIONS:
        raise ValueError(f"positional-embedding interpolation must be one of {INTERPOLATIONS}; got {mode!r}")
    if tuple(old_grid) == tuple(new_grid):
        return pos
    cls, patches = pos[:1], pos[1:]
    grid = patches.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode=mode, align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], -1).to(pos.dtype)
    return torch.cat([cls, patches], dim=0)


def _vv_attention(attn: torch.nn.MultiheadAttention, h: torch.Tensor) -> torch.Tensor:
    """Per head ``softmax(v v^T d_head^-0.5) v`` then the block's out_proj; ``h`` is ``[B, L, W]``."""
    width = h.shape[-1]
    heads = attn.num_heads
    w_v = attn.in_proj_weight[2 * width :]
    b_v = attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None
    v = F.linear(h, w_v, b_v)
    b, n, _ = v.shape
    v = v.reshape(b, n, heads, width // heads).transpose(1, 2)  # [B, heads, L, d_head]
    out = F.scaled_dot_product_attention(v, v, v)  # default scale is d_head^-0.5
    out = out.transpose(1, 2).reshape(b, n, width)
    return attn.out_proj(out)


def clip_surgery_tokens(
    model: Any,
    pixels: torch.Tensor,
    surgery_depth: int = DEFAULT_SURGERY_DEPTH,
    pos_interpolation: str = DEFAULT_POS_INTERPOLATION,
) -> torch.Tensor:
    """CLIP Surgery forward of an open_clip CLIP ViT.

    Args:
        model: an open_clip ``CLIP``/``CustomTextCLIP`` with a ``VisionTransformer`` tower, in eval mode.
        pixels: ``[B, 3, H, W]`` normalised images; H and W multiples of the patch size (any size:
            the positional embedding is interpolated on a copy, the model is never modified).
        surgery_depth: how many of the last blocks get the v-v path (all if the model has fewer).
        pos_interpolation: how the positional embedding is resized for a non-native grid
            (``"bilinear"`` as the reference code, or ``"bicubic"``); unused at the model's size.

    Returns:
        ``[B, 1 + h*w, D]`` projected tokens (not normalised): row 0 the original path's CLS
        (equal to ``model.encode_image(pixels)``), rows 1.. the surgery path's patch tokens,
        row-major over the ``(h, w) = (H // patch, W // patch)`` grid.
    """
    if surgery_depth < 1:
        raise ValueError(f"surgery_depth must be >= 1; got {surgery_depth}")
    visual = _check_vit(model)
    ph, pw = visual.patch_size
    height, width = pixels.shape[-2:]
    if height % ph or width % pw:
        raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {ph}x{pw}")
    grid = (height // ph, width // pw)
    x = visual.conv1(pixels.to(visual.conv1.weight.dtype))  # [B, W, h, w]
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    pos = interpolate_pos_embed(visual.positional_embedding, tuple(visual.grid_size), grid, pos_interpolation)
    x = x + pos.to(x.dtype)
    # Patch dropout is the identity in eval mode and would break the token grid otherwise: skipped.
    x = visual.ln_pre(x)

    transformer = visual.transformer
    blocks = list(transformer.resblocks)
    start = max(0, len(blocks) - surgery_depth)
    batch_first = getattr(transformer, "batch_first", True)
    surgery: torch.Tensor | None = None
    for i, blk in enumerate(blocks):
        if i >= start:
            if surgery is None:
                surgery = x  # the residual stream entering the first surgery block
            # The new path reads the original path's ln_1(x) and adds only attention outputs (no MLP).
            surgery = surgery + blk.ls_1(_vv_attention(blk.attn, blk.ln_1(x)))
        x = blk(x) if batch_first else blk(x.transpose(0, 1)).transpose(0, 1)
    assert surgery is not None
    tokens = torch.cat([x[:, :1], surgery[:, 1:]], dim=1)
    tokens = visual.ln_post(tokens)
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    return tokens


def feature_surgery(
    image_tokens: torch.Tensor, text_feats: torch.Tensor, redundant: torch.Tensor | None
) -> torch.Tensor:
    """Similarity ``normalise(image_tokens) . (t - r)``.

    Args:
        image_tokens: ``[B, N, D]`` (projected; normalised here).
        text_feats: ``[T, D]`` L2-normalised text features.
        redundant: ``[D]`` or ``[1, D]`` redundant feature (e.g. the ensemble of ``""``), or None.

    Returns:
        ``[B, N, T]`` similarities; higher = more like the text.
    """
    img = F.normalize(image_tokens.float(), dim=-1)
    direction = text_feats.float()
    if redundant is not None:
        direction = direction - redundant.float().reshape(1, -1)
    return img @ direction.T


def upsample_patch_values(
    values: torch.Tensor, grid: tuple[int, int], size: tuple[int, int], interpolation: str = "bicubic"
) -> np.ndarray:
    """``[K, h*w]`` row-major patch values -> float32 ``[K, H, W]`` at ``size = (H, W)``, in [0, 1]."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}")
    k = values.shape[0]
    maps = values.float().reshape(k, 1, grid[0], grid[1])
    maps = F.interpolate(maps, size=tuple(size), mode=interpolation, align_corners=False)
    return maps[:, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)


def similarity_maps(
    similarity: torch.Tensor,
    grid: tuple[int, int],
    sizes: Sequence[tuple[int, int]],
    interpolation: str = "bicubic",
) -> list[np.ndarray]:
    """Min-max per text over the patch tokens, then upsample to each image's size.

    Args:
        similarity: ``[B, h*w, T]`` patch-token similarities (CLS row already removed).
        grid: the token grid ``(h, w)``.
        sizes: one ``(H, W)`` per image (mind the order: height first).
        interpolation: ``"bicubic"`` (paper) or ``"bilinear"`` (reference code).

    Returns:
        One float32 ``[T, H, W]`` array in [0, 1] per image (a constant similarity gives zeros).
    """
    if len(sizes) != similarity.shape[0]:
        raise ValueError(f"{similarity.shape[0]} similarity rows but {len(sizes)} sizes")
    sim = similarity.float().transpose(1, 2)  # [B, T, N]
    lo = sim.min(dim=-1, keepdim=True).values
    hi = sim.max(dim=-1, keepdim=True).values
    norm = (sim - lo) / (hi - lo).clamp_min(1e-12)
    return [upsample_patch_values(norm[b], grid, sizes[b], interpolation) for b in range(norm.shape[0])]
