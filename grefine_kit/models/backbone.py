"""``SurgeryCLIP``: the frozen CLIP backbone shared by PQ-Map, AQ-Map and ``clip-surgery``.

What ``grefine_kit.models.get_backbone`` returns: ``preprocess``, ``encode_image_tokens``
(LRU-cached per preprocessed image, so indicators sharing a backbone encode an image once),
``grid_for``, ``encode_text`` (deduplicated, batched, cached), ``encode_text_ensemble``,
``encode_text_embeddings`` (learned prompts), ``tokenize``, ``embed_tokens``, ``logit_scale``,
``eot_token_id``, ``embed_dim``, ``text_width``, ``context_length``.
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
from grefine_kit.models.surgery import (
    DEFAULT_POS_INTERPOLATION,
    DEFAULT_SURGERY_DEPTH,
    MAX_NATIVE_TOKENS,
    _check_vit,
    clip_surgery_tokens,
)

__all__ = ["SurgeryCLIP"]


def _pixel_key(pixels: torch.Tensor, depth: int, pos_mode: str) -> tuple[str, tuple[int, ...], int, str]:
    digest = hashlib.blake2b(pixels.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()
    return digest, tuple(pixels.shape), depth, pos_mode


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
        # CLIP keeps the pool type as ``text_pool_type``, a CustomTextCLIP's text tower as ``pool_type``;
        # the EOT fast path in encode_text is only valid for argmax pooling without a CLS embedding.
        pool = getattr(model, "text_pool_type", None) or getattr(self._text, "pool_type", "argmax")
        self._pool_type = pool if getattr(self._text, "cls_emb", None) is None else "cls"
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
            # a side clamped up to 1 (a 1-pixel-high strip) would break the cap: trim the other side
            if gw >= gh:
                gw = min(gw, MAX_NATIVE_TOKENS // gh)
            else:
                gh = min(gh, MAX_NATIVE_TOKENS // gw)
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
        pos_interpolation: str = DEFAULT_POS_INTERPOLATION,
    ) -> torch.Tensor:
        """CLIP Surgery tokens ``[B, 1+h*w, D]`` (projected, float32, not normalised).

        ``pos_interpolation`` resizes the positional embedding when the input is not the model's
        size (``"bilinear"``, the reference's, or ``"bicubic"``; see ``clip_surgery_tokens``).

        Cached per preprocessed image (LRU): PQ-Map and AQ-Map scoring the same image on the
        same backbone run the image encoder once; only cache misses go through one batched forward.
        """
        pixels = self.preprocess(images, native_size)
        keys = [_pixel_key(p, surgery_depth, pos_interpolation) for p in pixels]
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
                out = clip_surgery_tokens(
                    self.model, pixels[first].to(self.dtype), surgery_depth, pos_interpolation
                ).float()
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

        Each distinct uncached text is encoded once, in one batched forward per token length (so
        a text's features never depend on the other texts of the call); features are cached
        across calls."""
        texts = list(texts)
        # Rows are read from this local dict, never back from the LRU: a call with more distinct
        # texts than the cache holds, or another thread's inserts, may evict them in between.
        found: dict[str, torch.Tensor] = {}
        with self._lock:
            for t in dict.fromkeys(texts):
                if t in self._text_cache:
                    self._text_cache.move_to_end(t)
                    found[t] = self._text_cache[t]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            tokens = self.tokenize(missing)
            with torch.no_grad():
                if self._pool_type == "argmax":
                    # CLIP pools the EOT token, the highest id in each row. The tower runs up to
                    # the longest EOT of a call, so texts are grouped by their own EOT position:
                    # a text's features then never depend on which other texts came with it
                    # (the same bytes in any batch, shard or worker).
                    eot = tokens.argmax(dim=-1)
                    feats = torch.empty(len(missing), self.embed_dim, device=tokens.device)
                    for position in torch.unique(eot).tolist():
                        rows = (eot == position).nonzero(as_tuple=True)[0]
                        group = tokens[rows]
                        feats[rows] = self.encode_text_embeddings(
                            self.embed_tokens(group), eot[rows], normalize=False
                        ).to(feats.dtype)
                else:
                    feats = self.model.encode_text(tokens)
            feats = feats.float()
            with self._lock:
                for t, f in zip(missing, feats, strict=True):
                    found[t] = f
                    self._text_cache[t] = f
                while len(self._text_cache) > self._text_cache_size:
                    self._text_cache.popitem(last=False)
        if not texts:
            return torch.empty(0, self.embed_dim, device=self.device)
        out = torch.stack([found[t] for t in texts])
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
        features, renormalised. All texts x templates are deduplicated and encoded together
        (``encode_text``)."""
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
