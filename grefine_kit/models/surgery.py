"""CLIP Surgery on open_clip ViTs and the ``SurgeryCLIP`` wrapper shared by the CLIP indicators.

Written from the description in DESIGN.md 6.1 (no upstream code). Public API, relied on by
PQ-Map, AQ-Map and the ``clip-surgery`` indicator:

- ``clip_surgery_tokens(model, pixels, surgery_depth=6) -> Tensor[B, 1+h*w, D]``: projected
  tokens; row 0 is the ordinary CLS embedding (== ``model.encode_image``), rows 1.. the v-v
  path's patch tokens in row-major ``(h, w)`` order.
- ``feature_surgery(image_tokens, text_feats, redundant) -> Tensor[B, N, T]``: normalised image
  tokens dotted with ``t - r``.
- ``similarity_maps(similarity, grid, sizes, interpolation) -> list[ndarray[T, H, W]]``: min-max per
  text over patch tokens, upsampled to each image's ``(H, W)``, clamped to [0, 1].
- ``upsample_patch_values(values, grid, size, interpolation) -> ndarray[K, H, W]``: the same
  without min-max (for maps that already are probabilities).
- ``SurgeryCLIP`` (what ``grefine_kit.models.get_backbone`` returns): ``preprocess``,
  ``encode_image_tokens`` (LRU-cached per preprocessed image), ``grid_for``, ``encode_text``,
  ``encode_text_ensemble``, ``encode_text_embeddings``, ``tokenize``, ``embed_tokens``,
  ``logit_scale``, ``eot_token_id``, ``embed_dim``, ``text_width``, ``context_length``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from grefine_kit.errors import UserError

__all__ = [
    "DEFAULT_SURGERY_DEPTH",
    "SurgeryCLIP",
    "clip_surgery_tokens",
    "feature_surgery",
    "interpolate_pos_embed",
    "similarity_maps",
    "upsample_patch_values",
]

DEFAULT_SURGERY_DEPTH = 6
INTERPOLATIONS = ("bicubic", "bilinear")
# Above this many patch tokens native-size encoding is scaled down: attention is O(tokens^2).
MAX_NATIVE_TOKENS = 4096


def _check_vit(model: Any) -> Any:
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
    pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """Positional embedding ``[1+h0*w0, W]`` resized (bicubic) to ``[1+h*w, W]``; returns a new tensor."""
    if tuple(old_grid) == tuple(new_grid):
        return pos
    cls, patches = pos[:1], pos[1:]
    grid = patches.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
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
    model: Any, pixels: torch.Tensor, surgery_depth: int = DEFAULT_SURGERY_DEPTH
) -> torch.Tensor:
    """CLIP Surgery forward of an open_clip CLIP ViT.

    Args:
        model: an open_clip ``CLIP``/``CustomTextCLIP`` with a ``VisionTransformer`` tower, in eval mode.
        pixels: ``[B, 3, H, W]`` normalised images; H and W multiples of the patch size (any size:
            the positional embedding is interpolated on a copy, the model is never modified).
        surgery_depth: how many of the last blocks get the v-v path (all if the model has fewer).

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
    pos = interpolate_pos_embed(visual.positional_embedding, tuple(visual.grid_size), grid)
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


def _pixel_key(pixels: torch.Tensor, depth: int) -> tuple[str, tuple[int, ...], int]:
    digest = hashlib.blake2b(pixels.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()
    return digest, tuple(pixels.shape), depth


class SurgeryCLIP:
    """A frozen open_clip CLIP ViT with CLIP Surgery, preprocessing, and feature caches.

    Thread-safe enough for shared use: caches are guarded by a lock. All returned features are
    float32 on ``self.device``.

    Args:
        model: open_clip ``CLIP`` (or ``CustomTextCLIP`` with an open_clip text tower), ViT image tower.
        tokenizer: callable ``list[str] -> LongTensor[N, context_length]`` (truncates long texts).
        name: a label for messages (model/weights).
        image_cache_size, text_cache_size: LRU capacities (entries).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Callable[[list[str]], torch.Tensor],
        name: str = "",
        image_cache_size: int = 64,
        text_cache_size: int = 8192,
    ) -> None:
        self.visual = _check_vit(model)
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.image_size: tuple[int, int] = tuple(self.visual.image_size)
        self.patch_size: tuple[int, int] = tuple(self.visual.patch_size)
        cfg = getattr(self.visual, "preprocess_cfg", None) or {}
        self.mean = tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.image_forward_calls = 0
        self._image_cache: OrderedDict[Any, torch.Tensor] = OrderedDict()
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._image_cache_size = image_cache_size
        self._text_cache_size = text_cache_size
        self._lock = threading.RLock()
        self._text = model.text if hasattr(model, "text") else model
        for attr in ("token_embedding", "positional_embedding", "transformer", "ln_final"):
            if not hasattr(self._text, attr):
                raise UserError(
                    f"{name or 'this model'}: text tower lacks {attr!r}; only open_clip text towers work"
                )

    def __repr__(self) -> str:
        return f"SurgeryCLIP({self.name!r}, device={self.device}, dtype={self.dtype})"

    # --- images -------------------------------------------------------------------------
    def pixel_size_for(self, image: Image.Image, native_size: bool = False) -> tuple[int, int]:
        """``(H, W)`` the image is resized to: the model size, or its own rounded to the patch grid."""
        if not native_size:
            return self.image_size
        ph, pw = self.patch_size
        gh, gw = max(1, round(image.height / ph)), max(1, round(image.width / pw))
        if gh * gw > MAX_NATIVE_TOKENS:
            f = (MAX_NATIVE_TOKENS / (gh * gw)) ** 0.5
            gh, gw = max(1, int(gh * f)), max(1, int(gw * f))
        return gh * ph, gw * pw

    def grid_for(self, image: Image.Image, native_size: bool = False) -> tuple[int, int]:
        """The token grid ``(h, w)`` for this image."""
        h, w = self.pixel_size_for(image, native_size)
        return h // self.patch_size[0], w // self.patch_size[1]

    def preprocess(self, images: Sequence[Image.Image], native_size: bool = False) -> torch.Tensor:
        """RGB PIL images -> normalised ``[B, 3, H, W]`` float32 on the device.

        Resized (bicubic, no centre crop) to the model size, or with ``native_size`` to each
        image's own size rounded to the patch grid (then all images must give the same size).
        """
        if not images:
            raise ValueError("no images given")
        sizes = {self.pixel_size_for(im, native_size) for im in images}
        if len(sizes) != 1:
            raise ValueError(f"images give different input sizes {sorted(sizes)}; encode them in groups")
        (h, w) = sizes.pop()
        arrays = [np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)) for im in images]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def encode_image_tokens(
        self,
        images: Sequence[Image.Image],
        native_size: bool = False,
        surgery_depth: int = DEFAULT_SURGERY_DEPTH,
    ) -> torch.Tensor:
        """CLIP Surgery tokens ``[B, 1+h*w, D]`` (projected, float32, not normalised).

        Cached per preprocessed image (LRU): PQ-Map and AQ-Map scoring the same image on the
        same backbone run the image encoder once; only cache misses go through one batched forward.
        """
        pixels = self.preprocess(images, native_size)
        keys = [_pixel_key(p, surgery_depth) for p in pixels]
        with self._lock:
            found = {k: self._image_cache[k] for k in keys if k in self._image_cache}
            for k in found:
                self._image_cache.move_to_end(k)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            # Duplicates inside one call are encoded once.
            unique = list(dict.fromkeys(keys[i] for i in missing))
            first = [keys.index(k) for k in unique]
            with torch.no_grad():
                out = clip_surgery_tokens(self.model, pixels[first].to(self.dtype), surgery_depth).float()
            with self._lock:
                self.image_forward_calls += 1
                for k, t in zip(unique, out, strict=True):
                    found[k] = t
                    self._image_cache[k] = t
                while len(self._image_cache) > self._image_cache_size:
                    self._image_cache.popitem(last=False)
        return torch.stack([found[k] for k in keys])

    # --- text ---------------------------------------------------------------------------
    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, ``exp(model.logit_scale)`` (100 for OpenAI weights)."""
        return float(self.model.logit_scale.detach().float().exp().reshape(-1)[0])

    @property
    def context_length(self) -> int:
        return int(self._text.positional_embedding.shape[0])

    @property
    def eot_token_id(self) -> int:
        return int(getattr(self.tokenizer, "eot_token_id", 49407))

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """``LongTensor[N, context_length]`` on the device (long texts truncated, EOT kept last)."""
        return self.tokenizer(list(texts)).to(self.device)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token-embedding layer output ``[N, L, width]`` (the input of ``encode_text_embeddings``)."""
        return self._text.token_embedding(tokens)

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text features ``[N, D]`` (L2-normalised unless ``normalize=False``: CLIP's raw projection).

        Each distinct uncached text is encoded once, all in one batched forward; features are
        cached across calls."""
        texts = list(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            tokens = self.tokenize(missing)
            with torch.no_grad():
                if getattr(self._text, "text_pool_type", "argmax") == "argmax":
                    # CLIP pools the EOT token, the highest id in each row
                    feats = self.encode_text_embeddings(
                        self.embed_tokens(tokens), tokens.argmax(dim=-1), normalize=False
                    )
                else:
                    feats = self.model.encode_text(tokens)
            feats = feats.float()
            with self._lock:
                for t, f in zip(missing, feats, strict=True):
                    self._text_cache[t] = f
                while len(self._text_cache) > self._text_cache_size:
                    self._text_cache.popitem(last=False)
        with self._lock:
            rows = []
            for t in texts:
                self._text_cache.move_to_end(t)
                rows.append(self._text_cache[t])
        if not rows:
            return torch.empty(0, self.embed_dim, device=self.device)
        out = torch.stack(rows)
        return F.normalize(out, dim=-1) if normalize else out

    @property
    def embed_dim(self) -> int:
        """``D``, the joint embedding size."""
        return int(self.visual.output_dim)

    @property
    def text_width(self) -> int:
        """Width of the text tower's token embeddings (512 for ViT-B/16)."""
        return int(self._text.token_embedding.weight.shape[1])

    def encode_text_ensemble(self, texts: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """Prompt-ensemble features ``[N, D]``: mean of the normalised ``template.format(text)``
        features, renormalised. All texts x templates are deduplicated and encoded in one batch."""
        if not templates:
            raise ValueError("templates must not be empty")
        if not texts:
            return torch.empty(0, self.embed_dim, device=self.device)
        filled = [[tpl.format(t) for tpl in templates] for t in texts]
        flat = [s for row in filled for s in row]
        feats = self.encode_text(flat).reshape(len(texts), len(templates), -1)
        return F.normalize(feats.mean(dim=1), dim=-1)

    def encode_text_embeddings(
        self, embeddings: torch.Tensor, eot_positions: Sequence[int] | torch.Tensor, normalize: bool = True
    ) -> torch.Tensor:
        """Run the text tower on given token embeddings (the token-embedding layer is bypassed).

        Args:
            embeddings: ``[N, context_length, width]`` (e.g. SOS | learned context | class words | EOT...).
            eot_positions: per row, the position whose output is pooled (CLIP pools the EOT token).
            normalize: L2-normalise the result (False gives CLIP's raw projected features).

        Returns:
            ``[N, D]`` float32. Gradients flow to ``embeddings`` (the model itself is frozen).
        """
        text = self._text
        idx = torch.as_tensor(eot_positions, device=embeddings.device, dtype=torch.long)
        mask = getattr(text, "attn_mask", None)
        length = embeddings.shape[1]
        if mask is not None and idx.numel():
            # The mask is causal: positions after the pooled one never influence it, so the tower
            # only needs to run up to the longest EOT (about 10x less work for short phrases).
            length = min(length, int(idx.max()) + 1)
            mask = mask[:length, :length]
        x = embeddings[:, :length].to(self.dtype) + text.positional_embedding[:length].to(self.dtype)
        x = text.transformer(x, attn_mask=mask)
        x = text.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), idx]
        proj = text.text_projection
        if proj is not None:
            pooled = proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj
        pooled = pooled.float()
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def clear_caches(self) -> None:
        with self._lock:
            self._image_cache.clear()
            self._text_cache.clear()
