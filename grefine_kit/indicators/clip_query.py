"""``clip-surgery``: a text-query map, "where is X in the image" (higher = more X).

For each image the query is its prompt (or the ``query`` option). With CLIP Surgery tokens ``x``,
the query's prompt-ensemble feature ``t`` and the redundant feature ``r`` (the ensemble of the
empty text ""), the map is ``x . (t - r)`` over the patch tokens, min-max normalised per image and
upsampled to the image's (H, W); the score is ``sigmoid(10 * cos(CLS, t - r))`` (the reference
mapping of AQ-Map's phrase scores), in [0, 1]. Min-max makes the map relative: its brightest
region is where the query fits best *in this image*, even if it fits nowhere well; read the
score for "is it there at all".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from grefine_kit.errors import UserError
from grefine_kit.indicators._clip_common import (
    IMAGENET_TEMPLATES,
    backbone_for,
    check_device,
    check_interpolation,
    check_surgery_depth,
    cosine_to_score,
    encode_in_groups,
    fetch_backbone_weights,
)
from grefine_kit.types import QualityMap

if TYPE_CHECKING:
    from PIL import Image

    from grefine_kit.models.backbone import SurgeryCLIP

__all__ = ["ClipSurgeryQuery"]

_pos = [attrs.validators.instance_of(int), attrs.validators.ge(1)]


@attrs.define(kw_only=True)
class ClipSurgeryQuery:
    """Text-query indicator (``clip-surgery``): map of where the query text is, 1 = most of it.

    Options: ``model``, ``weights``, ``device``, ``dtype`` (the CLIP backbone); ``query`` (overrides
    the prompts when non-empty); ``ensemble`` (encode texts with the 80 ImageNet templates, else as
    given); ``score_slope`` (10: the reference sigmoid slope); ``interpolation``, ``native_size``,
    ``surgery_depth``, ``batch_size``.
    """

    needs_prompt: ClassVar[bool] = True
    name: ClassVar[str] = "clip-surgery"

    model: str = attrs.field(default="ViT-B-16-quickgelu", validator=attrs.validators.instance_of(str))
    weights: str = attrs.field(default="openai", validator=attrs.validators.instance_of(str))
    device: str = attrs.field(default="auto", validator=check_device)
    dtype: str = attrs.field(
        default="float32", validator=attrs.validators.in_(("float32", "float16", "bfloat16"))
    )
    query: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    ensemble: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    score_slope: float = attrs.field(default=10.0, converter=float, validator=attrs.validators.gt(0.0))
    interpolation: str = attrs.field(default="bicubic", validator=check_interpolation)
    native_size: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    surgery_depth: int = attrs.field(
        default=6, validator=[attrs.validators.instance_of(int), check_surgery_depth]
    )
    batch_size: int = attrs.field(default=16, validator=_pos)

    _backbone: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    def load(self) -> SurgeryCLIP:
        if self._backbone is None:
            self._backbone = backbone_for(self)
        return self._backbone

    def fetch_weights(self) -> list[str]:
        """Download the CLIP backbone into the local caches (for ``grefine fetch-weights``)."""
        return fetch_backbone_weights(self)

    def _queries(self, n: int, prompts: Sequence[str] | None) -> list[str]:
        if self.query.strip():
            return [self.query] * n
        if isinstance(prompts, str):
            raise UserError("clip-surgery: prompts must be a list of strings, one per image (not one string)")
        if prompts is None or len(prompts) != n:
            raise UserError(
                f"clip-surgery needs one query per image (a prompt, or the `query` option); got {prompts!r}"
            )
        if any(not p.strip() for p in prompts):
            raise UserError("clip-surgery needs a non-empty query text (prompt or `query` option)")
        return list(prompts)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        """One QualityMap per image: map = where the query is (min-max), score = sigmoid(slope*cos)."""
        import torch.nn.functional as F

        from grefine_kit.models.surgery import feature_surgery, similarity_maps

        if not images:
            return []
        queries = self._queries(len(images), prompts)
        backbone = self.load()
        unique = list(dict.fromkeys(queries))
        if self.ensemble:
            feats = backbone.encode_text_ensemble([*unique, ""], IMAGENET_TEMPLATES)
        else:
            feats = backbone.encode_text([*unique, ""])
        text, redundant = feats[:-1], feats[-1]
        column = {q: k for k, q in enumerate(unique)}
        results: list[QualityMap | None] = [None] * len(images)
        groups = encode_in_groups(
            backbone,
            images,
            native_size=self.native_size,
            surgery_depth=self.surgery_depth,
            batch_size=self.batch_size,
        )
        for indices, tokens, grid in groups:
            cols = [column[queries[i]] for i in indices]
            sim = feature_surgery(tokens, text, redundant)  # [b, 1+h*w, Q]
            sizes = [(images[i].height, images[i].width) for i in indices]
            maps = similarity_maps(sim[:, 1:], grid, sizes, self.interpolation)
            direction = F.normalize(text - redundant.reshape(1, -1), dim=-1)
            cos = F.normalize(tokens[:, 0], dim=-1) @ direction.T  # [b, Q]
            for j, i in enumerate(indices):
                c = float(cos[j, cols[j]])
                results[i] = QualityMap(
                    map=maps[j][cols[j]],
                    score=cosine_to_score(c, self.score_slope),
                    indicator=self.name,
                    details={"query": queries[i], "cosine": c, "grid": grid, "backbone": backbone.name},
                )
        return [r for r in results if r is not None]
