"""PQ-Map: perceptual quality map and score from CLIP Surgery and four quality factors (docs/design.md 6.2).

For each image token and each factor (overall, technical, rationality, naturalness) the softmax
over an antonym pair gives the probability of the positive side, ``L_raw`` in [0, 1]. The cask
effect combines them, ``L_per = L_raw[0] * prod_i min(L_raw[i] / alpha_i, 1)``: one bad factor
pulls quality down, a very good one cannot lift it. The CLS row gives the score ``p``; the patch
rows, upsampled to the image's (H, W), give the map ``P`` (1 = good).

Text side: the paper's learned prompts (``prompt_checkpoints = "g-refine"``, bundled; what the
g-refine recipes use), any four pyiqa CLIP-IQA+ checkpoints (``save_prompt_checkpoint``,
``grefine train-pq``), or zero-shot plain-text pairs (the class default, uncalibrated: see
``zero_shot_calibration``). ``reference_compat`` reproduces the public reference script
(Q-Future/Q-Refine ``PQ-Map.py``) step by step; docs/indicators/pq-map.md lists the differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from grefine_kit.errors import UserError
from grefine_kit.indicators._clip_common import ClipIndicator
from grefine_kit.indicators.learned_prompts import (
    ZERO_SHOT,
    assemble_prompts,
    load_prompt_features,
    normalise_prompt_checkpoints,
    prompt_parts,
    resolve_prompt_checkpoints,
    save_prompt_checkpoint,
    verify_builtin_prompts,
)
from grefine_kit.parts.base import FILE, Missing
from grefine_kit.parts.roles import PERCEPTUAL
from grefine_kit.types import QualityMap

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from grefine_kit.models.backbone import SurgeryCLIP

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_PAIRS",
    "FACTORS",
    "MAP_NORMALISATIONS",
    "PQMap",
    "assemble_prompts",
    "cask_effect",
    "load_prompt_features",
    "pair_probabilities",
    "prompt_parts",
    "rank_blend",
    "reference_logits",
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


def reference_logits(tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The reference script's similarities: ``[B, L, F, 2]`` = ``(x / ||x||_tokens) @ T^T``.

    The image tokens ``[B, L, D]`` are divided by their L2 norm over the *token* axis (the
    reference's ``norm(dim=1)`` on ``[B, L, D]``), the text features ``table [F, 2, D]`` are used
    as given (unnormalised) and there is no logit scale."""
    x = tokens.float()
    x = x / x.norm(dim=1, keepdim=True)
    logits = x @ table.float().reshape(-1, table.shape[-1]).T
    return logits.reshape(*tokens.shape[:2], table.shape[0], 2)


#: how the learned-prompt map (the per-patch cask product) is normalised per image:
#: "rank-blend" (default: ``w * P + (1 - w) * rank(P)``, see ``rank_blend``), "absolute" (the
#: cask product as is; before 2026-12 the only rule) or "minmax" (over the image's patches)
MAP_NORMALISATIONS = ("rank-blend", "absolute", "minmax")


def rank_blend(values: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """``[K, N]`` -> ``weight * values + (1 - weight) * r``, ``r`` the mid-rank of each value in its
    row scaled to (0, 1) (``(#below + #equal / 2) / N``: 0.5 for a constant row).

    Why: the result keeps the absolute level (an image whose patches are all good stays above
    a 0.5 threshold) and spreads any row over ``1 - weight`` of the range, so the area under a
    threshold moves smoothly. For a threshold ``t``, maps without ties and any change of the
    values by at most ``eps`` per patch, the fraction of the row below ``t`` changes by at most
    ``weight / (1 - weight) * eps + 1 / N``; it never grows when no value falls (docs/refiner.md).
    """
    import torch

    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1); got {weight}")
    x = values.float().contiguous()
    ordered = x.sort(dim=-1).values
    below = torch.searchsorted(ordered, x, right=False)
    upto = torch.searchsorted(ordered, x, right=True)
    rank = (below + upto).float() / (2.0 * x.shape[-1])
    return weight * x + (1.0 - weight) * rank


def _minmax_rows(values: torch.Tensor, constant: float) -> torch.Tensor:
    """Min-max of ``[K, N]`` over N; a constant row becomes ``constant``."""
    lo = values.min(dim=-1, keepdim=True).values
    span = values.max(dim=-1, keepdim=True).values - lo
    out = (values - lo) / span.clamp_min(1e-12)
    return out.where(span > 1e-12, out.new_full((), constant))


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


def _check_alpha(_inst: Any, _attribute: attrs.Attribute[Any], value: tuple[float, ...]) -> None:
    if len(value) != 3 or not all(0.0 < a <= 1.0 for a in value):
        raise ValueError(
            f"alpha must be 3 thresholds in (0, 1] (technical, rationality, naturalness); got {value}"
        )


_pos_int = [attrs.validators.instance_of(int), attrs.validators.ge(1)]


def _weight(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1); got {value}")


ZERO_SHOT_CALIBRATIONS = ("minmax", "none")


@attrs.define(kw_only=True)
class PQMap(ClipIndicator):
    """Perceptual quality indicator (``pq-map``). Map and score in [0, 1], 1 = good.

    Options (recipe keys): ``model``, ``weights``, ``device``, ``dtype`` (the CLIP backbone);
    ``prompt_checkpoints`` (``"g-refine"``: the paper's learned prompts, bundled; ``"zero-shot"``,
    the class default; or 4 learned-prompt files, one per factor), ``prompt_pairs`` (zero-shot
    texts), ``prompt_name_len``, ``alpha``, ``reference_alpha_bug``, ``reference_compat``,
    ``zero_shot_calibration``, ``map_normalisation``, ``map_weight`` (learned prompts: how the
    per-patch cask product becomes the map), ``interpolation``, ``pos_embed_interpolation``, ``native_size``,
    ``surgery_depth``, ``batch_size``, ``factor_maps``. See docs/indicators/pq-map.md.
    """

    needs_prompt: ClassVar[bool] = False
    name: ClassVar[str] = "pq-map"
    #: what ``grefine evaluate`` correlates it with (the quality MOS)
    quality_kind: ClassVar[str] = PERCEPTUAL

    prompt_pairs: tuple[tuple[str, str], ...] = attrs.field(
        default=DEFAULT_PAIRS, converter=_to_pairs, validator=_check_pairs
    )
    prompt_checkpoints: str | tuple[str, ...] = attrs.field(
        default=ZERO_SHOT, converter=normalise_prompt_checkpoints
    )
    prompt_name_len: int = attrs.field(default=3, validator=_pos_int)
    alpha: tuple[float, float, float] = attrs.field(
        default=DEFAULT_ALPHA, converter=_to_alpha, validator=_check_alpha
    )
    reference_alpha_bug: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    reference_compat: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    zero_shot_calibration: str = attrs.field(
        default="minmax", validator=attrs.validators.in_(ZERO_SHOT_CALIBRATIONS)
    )
    factor_maps: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    map_normalisation: str = attrs.field(
        default="rank-blend", validator=attrs.validators.in_(MAP_NORMALISATIONS)
    )
    map_weight: float = attrs.field(default=0.5, converter=float, validator=_weight)

    _table: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def zero_shot(self) -> bool:
        """True when the text side is the plain-text ``prompt_pairs`` (no learned prompts)."""
        return self.prompt_checkpoints == ZERO_SHOT

    @property
    def mode(self) -> str:
        """``"reference"``, ``"learned"``, ``"zero-shot"`` (min-max calibrated) or ``"zero-shot-raw"``."""
        if self.reference_compat:
            return "reference"
        if not self.zero_shot:
            return "learned"
        return "zero-shot" if self.zero_shot_calibration == "minmax" else "zero-shot-raw"

    def checkpoint_paths(self) -> tuple[Path, ...]:
        """The four learned-prompt files in ``FACTORS`` order (``()`` zero-shot)."""
        return resolve_prompt_checkpoints(self.prompt_checkpoints)

    def load(self) -> SurgeryCLIP:
        """Load the backbone (shared cache) and the 4x2 text table; called on first ``score``."""
        backbone = self.backbone()
        if self._table is None:
            self._table = self.text_table(backbone)
        return backbone

    def preflight(self) -> list[Missing]:
        """The CLIP checks, and the first learned-prompt checkpoint file that is not there."""
        found = super().preflight()
        if isinstance(self.prompt_checkpoints, tuple):
            found += [
                Missing(f"prompt checkpoint {p}", kind=FILE, fix="fix prompt_checkpoints in the recipe")
                for p in self.prompt_checkpoints
                if not Path(p).expanduser().is_file()
            ][:1]
        return found

    def fetch_weights(self) -> list[str]:
        """Download the CLIP backbone; report and checksum the prompt files (``grefine fetch-weights``)."""
        lines = super().fetch_weights()
        value = self.prompt_checkpoints
        if value == ZERO_SHOT:
            lines.append("prompts: zero-shot text pairs, nothing to fetch")
        elif isinstance(value, str):
            checked = verify_builtin_prompts(value)
            lines.append(
                f"prompts {value!r}: bundled with grefine_kit ({len(checked) - 1} learned-prompt files "
                f"+ LICENSE, SHA256 OK), nothing to fetch"
            )
        else:
            for p in self.checkpoint_paths():
                if not p.is_file():
                    raise UserError(f"prompt checkpoint not found: {p}")
                lines.append(f"prompt checkpoint {p}: local file, nothing to fetch")
        return lines

    def text_table(self, backbone: SurgeryCLIP) -> torch.Tensor:
        """``[4, 2, D]`` text features (positive, negative) per factor, in ``FACTORS`` order.

        L2-normalised, except under ``reference_compat`` (the reference uses raw projections)."""
        import torch

        normalize = not self.reference_compat
        paths = self.checkpoint_paths()
        if paths:
            rows = [
                load_prompt_features(backbone, p, normalize=normalize, name_len=self.prompt_name_len)
                for p in paths
            ]
            return torch.stack(rows)
        flat = [text for pair in self.prompt_pairs for text in pair]
        return backbone.encode_text(flat, normalize=normalize).reshape(len(FACTORS), 2, -1)

    def _score_map_values(self, tokens: torch.Tensor, scale: float) -> tuple[Any, Any, Any, Any]:
        """``(factor probabilities of the CLS row [b, 4], score [b], map values [b, h*w],
        factor map values [b, h*w, 4])`` for one group, in this indicator's mode."""
        table = self._table
        mode = self.mode
        if mode == "reference":
            logits = reference_logits(tokens, table)  # [b, 1+hw, 4, 2]
            cls = logits[:, 0].softmax(dim=-1)[..., 0]  # [b, 4]
            score = cask_effect(cls, self.alpha, self.reference_alpha_bug)
            pos = logits[:, 1:, :, 0]  # [b, hw, 4] positive-side similarities
            # the reference's map is the min-max of the overall factor's similarity alone
            fmaps = _minmax_rows(pos.transpose(1, 2).reshape(-1, pos.shape[1]), 0.0)
            fmaps = fmaps.reshape(pos.shape[0], pos.shape[2], -1).transpose(1, 2)
            return cls, score, fmaps[..., 0], fmaps
        raw = pair_probabilities(tokens, table, scale)  # [b, 1+hw, 4]
        per = cask_effect(raw, self.alpha, self.reference_alpha_bug)  # [b, 1+hw]
        if mode == "zero-shot":
            # alpha was derived for the learned prompts; zero-shot probabilities sit far below it,
            # so the score is CLIP-IQA's overall pair and the map is min-max normalised per image
            return raw[:, 0], raw[:, 0, 0], _minmax_rows(per[:, 1:], 1.0), raw[:, 1:]
        patches = per[:, 1:]
        if mode != "learned":  # zero-shot-raw: the raw cask product, as documented
            pass
        elif self.map_normalisation == "rank-blend":
            patches = rank_blend(patches, self.map_weight)
        elif self.map_normalisation == "minmax":
            patches = _minmax_rows(patches, 1.0)
        return raw[:, 0], per[:, 0], patches, raw[:, 1:]

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        """One QualityMap per image (``prompts`` is ignored); details hold the four factors."""
        from grefine_kit.models.surgery import upsample_patch_values

        if not images:
            return []
        backbone = self.load()
        # Normalised features times CLIP's temperature (CLIP-IQA, pyiqa's CLIP-IQA+ training),
        # else a 2-way softmax of cosines stays near 0.5. The reference uses no scale.
        scale = 1.0 if self.reference_compat else backbone.logit_scale
        # the reference upsamples bilinearly; elsewhere the option decides (bicubic = paper)
        interpolation = "bilinear" if self.reference_compat else self.interpolation
        prompts_name = self.prompt_checkpoints if isinstance(self.prompt_checkpoints, str) else "files"
        results: list[QualityMap | None] = [None] * len(images)
        for indices, tokens, grid in self.encode_groups(backbone, images):
            cls, score, values, fvalues = self._score_map_values(tokens, scale)
            for j, i in enumerate(indices):
                size = (images[i].height, images[i].width)
                pmap = upsample_patch_values(values[j : j + 1], grid, size, interpolation)[0]
                details: dict[str, Any] = {
                    "factors": {name: float(cls[j, f]) for f, name in enumerate(FACTORS)},
                    "grid": grid,
                    "backbone": backbone.name,
                    "prompts": prompts_name,
                    "zero_shot": self.zero_shot,
                    "mode": self.mode,
                }
                if self.factor_maps:
                    fmaps = upsample_patch_values(fvalues[j].T, grid, size, interpolation)
                    details["factor_maps"] = dict(zip(FACTORS, fmaps, strict=True))
                results[i] = QualityMap(
                    map=pmap, score=float(score[j].clamp(0.0, 1.0)), indicator=self.name, details=details
                )
        return [r for r in results if r is not None]
