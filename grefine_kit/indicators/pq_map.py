"""PQ-Map: perceptual quality map and score from CLIP Surgery and four quality factors (DESIGN.md 6.2).

For each image token and each factor (overall, technical, rationality, naturalness) the softmax
over an antonym pair gives the probability of the positive side, ``L_raw`` in [0, 1]. The cask
effect combines them, ``L_per = L_raw[0] * prod_i min(L_raw[i] / alpha_i, 1)``: one bad factor
pulls quality down, a very good one cannot lift it. The CLS row gives the score ``p``; the patch
rows, upsampled to the image's (H, W), give the map ``P`` (1 = good).

Text side: zero-shot plain-text pairs by default, or learned prompts from pyiqa CLIP-IQA+
checkpoints (``prompt_checkpoints``; written by ``save_prompt_checkpoint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from grefine_kit.errors import UserError
from grefine_kit.indicators._clip_common import (
    ClipIndicator,
)
from grefine_kit.types import QualityMap

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from grefine_kit.models.backbone import SurgeryCLIP

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_PAIRS",
    "FACTORS",
    "PQMap",
    "cask_effect",
    "load_prompt_features",
    "pair_probabilities",
    "save_prompt_checkpoint",
]

FACTORS = ("overall", "technical", "rationality", "naturalness")
#: zero-shot (positive, negative) texts per factor; "overall" is CLIP-IQA's pair
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Good photo.", "Bad photo."),
    ("Sharp, clean photo.", "Blurry, noisy photo."),
    ("Photo of well-formed objects.", "Photo of deformed objects."),
    ("Natural photo.", "Synthetic photo."),
)
#: reference thresholds for technical, rationality, naturalness
DEFAULT_ALPHA = (0.935, 0.892 * 0.6, 0.826 * 0.8)


def cask_effect(raw: torch.Tensor, alpha: Sequence[float], alpha_bug: bool = False) -> torch.Tensor:
    """``raw[..., 0] * prod_{i=1..3} min(raw[..., i] / alpha[i-1], 1)``.

    Args:
        raw: ``[..., 4]`` factor probabilities in [0, 1] (overall first).
        alpha: the three thresholds; a factor at or above its threshold costs nothing.
        alpha_bug: reproduce the reference code, which divides all three factors by ``alpha[0]``.
    """
    import torch

    if raw.shape[-1] != 1 + len(alpha):
        raise ValueError(
            f"raw has {raw.shape[-1]} factors but alpha has {len(alpha)} thresholds (+1 overall)"
        )
    thresholds = [alpha[0]] * len(alpha) if alpha_bug else list(alpha)
    out = raw[..., 0]
    for i, a in enumerate(thresholds, start=1):
        out = out * torch.clamp(raw[..., i] / a, max=1.0)
    return out


def pair_probabilities(tokens: torch.Tensor, table: torch.Tensor, scale: float) -> torch.Tensor:
    """Probability of the positive text per token and factor.

    Args:
        tokens: ``[B, L, D]`` image tokens (normalised here).
        table: ``[F, 2, D]`` text features, (positive, negative) per factor.
        scale: logit scale applied to the dot products.

    Returns:
        ``[B, L, F]`` = ``softmax(scale * [x.t_pos, x.t_neg])[0]``.
    """
    import torch.nn.functional as F

    logits = scale * F.normalize(tokens.float(), dim=-1) @ table.float().reshape(-1, table.shape[-1]).T
    logits = logits.reshape(*tokens.shape[:2], table.shape[0], 2)
    return logits.softmax(dim=-1)[..., 0]


# --- learned prompts (pyiqa CLIP-IQA+ checkpoint format) ---------------------------------------


def save_prompt_checkpoint(
    path: str | Path,
    backbone: SurgeryCLIP,
    texts: tuple[str, str],
    ctx: torch.Tensor | None = None,
    n_ctx: int = 16,
) -> Path:
    """Write a learned-prompt pair in pyiqa's CLIP-IQA+ format.

    ``{'params': {'prompt_learner.ctx': [2, n_ctx, W], 'prompt_learner.token_prefix': [2, 1, W],
    'prompt_learner.token_suffix': [2, L-1-n_ctx, W]}, 'meta': {...}}``: prefix is the SOS
    embedding, suffix the embeddings of the class words, EOT and padding of
    ``"X X ... X <text>"``; ``ctx`` defaults to the embeddings of the n_ctx "X" tokens (pyiqa's init).
    ``meta`` (ignored by pyiqa) records the texts, class-word counts and EOT indices.
    """
    import torch

    init_ctx, prefix, suffix, name_lens = prompt_parts(backbone, texts, n_ctx)
    if ctx is None:
        ctx = init_ctx
    if tuple(ctx.shape[-2:]) != (n_ctx, prefix.shape[-1]):
        raise ValueError(
            f"ctx must be [2, {n_ctx}, {prefix.shape[-1]}] or [{n_ctx}, {prefix.shape[-1]}]; "
            f"got {tuple(ctx.shape)}"
        )
    params = {
        "prompt_learner.ctx": ctx.detach().float().cpu().contiguous(),
        "prompt_learner.token_prefix": prefix,
        "prompt_learner.token_suffix": suffix,
    }
    meta = {"format": "pyiqa-clipiqa+", "texts": list(texts), "name_lens": name_lens, "eot_index": name_lens}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": params, "meta": meta}, str(path))
    return path


def prompt_parts(
    backbone: SurgeryCLIP, texts: tuple[str, str], n_ctx: int = 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """The pieces of a learned prompt pair, as pyiqa's CLIP-IQA+ prompt learner builds them from
    ``"X X ... X <text>"``: ``(ctx [2, n_ctx, W]`` initialised to the "X" embeddings, ``prefix
    [2, 1, W]`` (SOS), ``suffix [2, L-1-n_ctx, W]`` (class words, EOT, padding), class-word counts)."""
    import torch

    tokens = backbone.tokenize([" ".join(["X"] * n_ctx) + " " + t for t in texts])
    with torch.no_grad():
        emb = backbone.embed_tokens(tokens).float().cpu()
    eot_pos = tokens.argmax(dim=-1).cpu()  # the EOT id is the largest id
    name_lens = [int(p) - 1 - n_ctx for p in eot_pos]
    return (
        emb[:, 1 : 1 + n_ctx].clone(),
        emb[:, :1].contiguous(),
        emb[:, 1 + n_ctx :].contiguous(),
        name_lens,
    )


def assemble_prompts(
    prefix: torch.Tensor, ctx: torch.Tensor, suffix: torch.Tensor, name_lens: Sequence[int]
) -> tuple[torch.Tensor, list[int]]:
    """``[SOS | ctx[:n/2] | class words | ctx[n/2:] | EOT ...]`` per text (pyiqa's "middle" class
    position) and the EOT positions. Differentiable in ``ctx`` (used by training)."""
    import torch

    n_ctx, half = ctx.shape[1], ctx.shape[1] // 2
    rows, eot_positions = [], []
    for i, n_words in enumerate(name_lens):
        parts = [prefix[i], ctx[i, :half], suffix[i, :n_words], ctx[i, half:], suffix[i, n_words:]]
        rows.append(torch.cat([p.float() for p in parts], dim=0))
        eot_positions.append(1 + n_ctx + int(n_words))
    return torch.stack(rows), eot_positions


def _prompt_embeddings(backbone: SurgeryCLIP, path: Path, name_len: int) -> tuple[torch.Tensor, list[int]]:
    """Assemble ``[SOS | ctx[:n/2] | class words | ctx[n/2:] | EOT ...]``.

    Returns ``([2, L, W] embeddings, EOT positions)``."""
    import torch

    if not path.is_file():
        raise UserError(f"prompt checkpoint not found: {path}")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        params = ckpt["params"]
        ctx, prefix, suffix = (params[f"prompt_learner.{k}"] for k in ("ctx", "token_prefix", "token_suffix"))
        if ctx.ndim == 2:  # one context shared by both texts
            ctx = ctx.unsqueeze(0).expand(prefix.shape[0], -1, -1)
        if ctx.ndim != 3 or prefix.ndim != 3 or suffix.ndim != 3:
            raise ValueError("ctx, token_prefix and token_suffix must be [texts, tokens, width] tensors")
    except Exception as exc:
        raise UserError(f"{path}: not a CLIP-IQA+ prompt checkpoint ({type(exc).__name__}: {exc})") from exc
    n_ctx, width = ctx.shape[1], ctx.shape[2]
    length = 1 + n_ctx + suffix.shape[1]
    texts = {ctx.shape[0], prefix.shape[0], suffix.shape[0]}
    if width != backbone.text_width or length != backbone.context_length or texts != {2}:
        raise UserError(
            f"{path}: prompt of {sorted(texts)} texts, width {width}, length {length} does not fit "
            f"{backbone.name} (2 texts, width {backbone.text_width}, length {backbone.context_length})"
        )
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    meta_lens = meta.get("name_lens") if isinstance(meta, dict) else None
    with torch.no_grad():
        eot_row = (
            backbone.embed_tokens(torch.tensor([backbone.eot_token_id], device=backbone.device))[0]
            .float()
            .cpu()
        )
    n_words_per_text, eot_indices = [], []
    for i in range(2):
        if meta_lens is not None:
            eot_index = int(meta_lens[i])
        else:  # find the EOT embedding in the suffix; pyiqa's own prompts hard-code 3 class tokens
            hits = [
                j for j in range(suffix.shape[1]) if torch.allclose(suffix[i, j].float(), eot_row, atol=1e-6)
            ]
            eot_index = hits[0] if hits else name_len
        n_words_per_text.append(eot_index if meta_lens is not None else name_len)
        eot_indices.append(eot_index)
    emb, _ = assemble_prompts(prefix, ctx, suffix, n_words_per_text)
    return emb.to(backbone.device), [1 + n_ctx + e for e in eot_indices]


def load_prompt_features(
    backbone: SurgeryCLIP, path: str | Path, normalize: bool = True, name_len: int = 3
) -> torch.Tensor:
    """Text features ``[2, D]`` (positive, negative) of a CLIP-IQA+ prompt checkpoint on ``backbone``."""
    import torch

    emb, eot_positions = _prompt_embeddings(backbone, Path(path), name_len)
    with torch.no_grad():
        return backbone.encode_text_embeddings(emb, eot_positions, normalize=normalize)


# --- the indicator ------------------------------------------------------------------------------


def _to_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(p) for p in value)


def _to_alpha(value: Any) -> tuple[float, ...]:
    return tuple(float(a) for a in value)


def _check_pairs(_inst: Any, _attribute: attrs.Attribute[Any], value: tuple[tuple[str, ...], ...]) -> None:
    if len(value) != len(FACTORS) or any(
        len(p) != 2 or not all(isinstance(s, str) and s for s in p) for p in value
    ):
        raise ValueError(
            f"prompt_pairs must be {len(FACTORS)} (positive, negative) text pairs, in order {FACTORS}"
        )


def _check_checkpoints(_inst: Any, _attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if len(value) not in (0, len(FACTORS)) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(
            f"prompt_checkpoints must be empty (zero-shot) or {len(FACTORS)} paths, in order {FACTORS}"
        )


def _check_alpha(_inst: Any, _attribute: attrs.Attribute[Any], value: tuple[float, ...]) -> None:
    if len(value) != 3 or not all(0.0 < a <= 1.0 for a in value):
        raise ValueError(
            f"alpha must be 3 thresholds in (0, 1] (technical, rationality, naturalness); got {value}"
        )


_pos_int = [attrs.validators.instance_of(int), attrs.validators.ge(1)]


@attrs.define(kw_only=True)
class PQMap(ClipIndicator):
    """Perceptual quality indicator (``pq-map``). Map and score in [0, 1], 1 = good.

    Options (recipe keys): ``model``, ``weights``, ``device``, ``dtype`` (the CLIP backbone);
    ``prompt_pairs`` (zero-shot texts), ``prompt_checkpoints`` (4 learned-prompt files, one per
    factor), ``prompt_name_len``, ``alpha``, ``reference_alpha_bug``, ``reference_compat``,
    ``interpolation``, ``native_size``, ``surgery_depth``, ``batch_size``, ``factor_maps``.
    See docs/indicators/pq-map.md.
    """

    needs_prompt: ClassVar[bool] = False
    name: ClassVar[str] = "pq-map"

    prompt_pairs: tuple[tuple[str, str], ...] = attrs.field(
        default=DEFAULT_PAIRS, converter=_to_pairs, validator=_check_pairs
    )
    prompt_checkpoints: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=_check_checkpoints
    )
    prompt_name_len: int = attrs.field(default=3, validator=_pos_int)
    alpha: tuple[float, float, float] = attrs.field(
        default=DEFAULT_ALPHA, converter=_to_alpha, validator=_check_alpha
    )
    reference_alpha_bug: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    reference_compat: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    factor_maps: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    _table: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    def load(self) -> SurgeryCLIP:
        """Load the backbone (shared cache) and the 4x2 text table; called on first ``score``."""
        backbone = self.backbone()
        if self._table is None:
            self._table = self.text_table(backbone)
        return backbone

    def fetch_weights(self) -> list[str]:
        """Download the CLIP backbone into the local caches (for ``grefine fetch-weights``)."""
        lines = super().fetch_weights()
        lines += [f"prompt checkpoint {p}: local file, nothing to fetch" for p in self.prompt_checkpoints]
        return lines

    def text_table(self, backbone: SurgeryCLIP) -> torch.Tensor:
        """``[4, 2, D]`` text features (positive, negative) per factor, in ``FACTORS`` order."""
        import torch

        normalize = not self.reference_compat
        if self.prompt_checkpoints:
            rows = [
                load_prompt_features(backbone, p, normalize=normalize, name_len=self.prompt_name_len)
                for p in self.prompt_checkpoints
            ]
            return torch.stack(rows)
        flat = [text for pair in self.prompt_pairs for text in pair]
        return backbone.encode_text(flat, normalize=normalize).reshape(len(FACTORS), 2, -1)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        """One QualityMap per image (``prompts`` is ignored); details hold the four factors."""
        from grefine_kit.models.surgery import upsample_patch_values

        if not images:
            return []
        backbone = self.load()
        table = self._table
        # CLIP-IQA style: normalised features times CLIP's temperature, else a 2-way softmax of
        # cosines stays near 0.5. The reference code uses raw learned features and no scale.
        scale = 1.0 if self.reference_compat else backbone.logit_scale
        results: list[QualityMap | None] = [None] * len(images)
        groups = self.encode_groups(backbone, images)
        for indices, tokens, grid in groups:
            raw = pair_probabilities(tokens, table, scale)  # [b, 1+h*w, 4]
            per = cask_effect(raw, self.alpha, self.reference_alpha_bug)  # [b, 1+h*w]
            for j, i in enumerate(indices):
                size = (images[i].height, images[i].width)
                pmap = upsample_patch_values(per[j : j + 1, 1:], grid, size, self.interpolation)[0]
                details: dict[str, Any] = {
                    "factors": {name: float(raw[j, 0, f]) for f, name in enumerate(FACTORS)},
                    "grid": grid,
                    "backbone": backbone.name,
                    "zero_shot": not self.prompt_checkpoints,
                }
                if self.factor_maps:
                    fmaps = upsample_patch_values(raw[j, 1:].T, grid, size, self.interpolation)
                    details["factor_maps"] = dict(zip(FACTORS, fmaps, strict=True))
                results[i] = QualityMap(
                    map=pmap, score=float(per[j, 0].clamp(0.0, 1.0)), indicator=self.name, details=details
                )
        return [r for r in results if r is not None]
