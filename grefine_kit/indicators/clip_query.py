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
from typing import TYPE_CHECKING, ClassVar

import attrs

from grefine_kit.errors import UserError
from grefine_kit.indicators._clip_common import (
    IMAGENET_TEMPLATES,
    ClipIndicator,
    cosine_to_score,
)
from grefine_kit.types import QualityMap

if TYPE_CHECKING:
    from PIL import Image

    from grefine_kit.models.backbone import SurgeryCLIP

__all__ = ["ClipSurgeryQuery"]


@attrs.define(kw_only=True)
class ClipSurgeryQuery(ClipIndicator):
    """Text-query indicator (``clip-surgery``): map of where the query text is, 1 = most of it.

    Options: ``model``, ``weights``, ``device``, ``dtype`` (the CLIP backbone); ``query`` (overrides
    the prompts when non-empty); ``ensemble`` (encode texts with the 80 ImageNet templates, else as
    given); ``score_slope`` (10: the reference sigmoid slope); ``interpolation``, ``native_size``,
    ``surgery_depth``, ``batch_size``.
    """

    needs_prompt: ClassVar[bool] = True
    name: ClassVar[str] = "clip-surgery"

    query: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    ensemble: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    score_slope: float = attrs.field(default=10.0, converter=float, validator=attrs.validators.gt(0.0))

    def load(self) -> SurgeryCLIP:
        """Load the backbone (shared cache); called on first ``score``."""
        return self.backbone()

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
        groups = self.encode_groups(backbone, images)
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
