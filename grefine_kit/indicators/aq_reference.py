"""AQ-Map's reference mode (``reference_compat = true``): the released ``AQ-Map.py``, step by step.

Re-derived from reading Q-Future/Q-Refine ``AQ-Map.py`` (commit 1bbf1e2) and the CLIP Surgery
helpers it calls; our code. Per image and prompt:

1. the prompt analysis of ``grefine_kit.parsers.reference`` (spaCy noun chunks): ``parts``,
   ``filtered_parts``, ``noun_parts``, ``phrase_to_parent``;
2. the image resized to the model's size (bicubic, no centre crop), CLIP Surgery tokens (last
   6 blocks), each token's features divided by their L2 norm over the *token* axis;
3. each text ``t`` (the noun parts, then the filtered parts) encoded as the prompt ensemble of
   CLIP Surgery's 85 templates (the 80 ImageNet ones + 5 scene ones: mean of the normalised
   template features, renormalised), minus the ensemble of ``""``; no normalisation after the
   subtraction;
4. score ``sigmoid(10 * CLS . (t - r))`` (``as0`` for the noun parts, ``as1`` for the filtered
   parts); map = the patch rows' dot products, min-max over the patches, bilinear to the image's
   ``(H, W)`` (``am``, kept as float in [0, 1]: the script casts ``x 255`` to uint8 after this).

The script stops there (it prints ``as0``). To give one map and score like every indicator, this
mode feeds those numbers to our defect rule and cask score (``decide_alignment``): phrase ``j`` =
filtered part ``j`` with a noun, noun score ``as0[j]``, phrase score ``as1[j]``, noun map
``am[j]``, ancestor from ``phrase_to_parent``, prompt score on the same scale.

Where the script fails, this mode goes on (each case is a note in ``details["reference"]``):
the prompt-analysis cases of ``parsers.reference``; a text longer than CLIP's 77 tokens inside a
template (the script's tokenizer raises) is truncated, EOT kept; a noun part ``""`` (its
direction is the zero vector: the script's min-max divides 0 by 0) gets score 0.5 and an all-0
map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from grefine_kit.indicators._clip_common import IMAGENET_TEMPLATES
from grefine_kit.indicators.alignment_rules import RuleOptions, decide_alignment
from grefine_kit.parsers.reference import ReferenceAnalysis, analyse_reference
from grefine_kit.types import Phrase, QualityMap

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from spacy.language import Language

    from grefine_kit.models.backbone import SurgeryCLIP
    from grefine_kit.parsers.base import Parser

__all__ = ["REFERENCE_TEMPLATES", "reference_phrases", "reference_texts_maps", "score_reference"]


class ReferenceScorer(Protocol):
    """What :func:`score_reference` uses of the ``aq-map`` indicator (``AQMap`` follows it)."""

    @property
    def name(self) -> str: ...

    def spacy_pipeline(self) -> Language: ...

    def get_parser(self) -> Parser: ...

    def load(self) -> SurgeryCLIP: ...

    def rule_options(self) -> RuleOptions: ...


#: CLIP Surgery's default prompt ensemble (``encode_text_with_prompt_ensemble``): 80 + 5 templates
REFERENCE_TEMPLATES: tuple[str, ...] = (
    *IMAGENET_TEMPLATES,
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)
REFERENCE_SLOPE = 10.0
REFERENCE_SURGERY_DEPTH = 6


def reference_phrases(analysis: ReferenceAnalysis, tree: Any) -> list[Phrase]:
    """The analysis as our ``Phrase`` list over ``tree`` (a ``PromptTree`` of the same prompt):
    one phrase per part with a noun, its tokens those inside the part's span, its ancestor the
    first phrase whose filtered text is the part's parent (itself if that part has no noun)."""
    toks = tree.tokens
    keep = [k for k, noun in enumerate(analysis.noun_parts) if noun]
    slot_of_text: dict[str, int] = {}
    for s, k in enumerate(keep):
        slot_of_text.setdefault(analysis.filtered_parts[k], s)
    phrases = []
    for s, k in enumerate(keep):
        a, b = analysis.spans[k]
        inside = [i for i, t in enumerate(toks) if a <= t.start < b]
        noun = analysis.noun_parts[k]
        named = [i for i in inside if toks[i].text == noun]
        nouns = [i for i in inside if toks[i].pos in ("NOUN", "PROPN")]
        centre = (named or nouns or inside or [0])[-1]
        parent = analysis.phrase_to_parent.get(analysis.filtered_parts[k], analysis.filtered_parts[k])
        phrases.append(
            Phrase(
                text=analysis.filtered_parts[k],
                noun=centre,
                noun_text=noun,
                tokens=inside or [centre],
                ancestor=slot_of_text.get(parent, s),
            )
        )
    return phrases


def _minmax_patches(values: torch.Tensor) -> torch.Tensor:
    """``[N, P]`` min-max over P; a constant row (the zero direction of ``""``) becomes 0."""
    lo = values.min(dim=1, keepdim=True).values
    span = values.max(dim=1, keepdim=True).values - lo
    out = (values - lo) / span.clamp_min(1e-12)
    return out.where(span > 1e-12, out.new_zeros(()))


def reference_texts_maps(
    tokens: torch.Tensor,
    direction: torch.Tensor,
    grid: tuple[int, int],
    size: tuple[int, int],
) -> tuple[list[float], np.ndarray]:
    """Scores and maps of one image for the text directions ``[N, D]`` (``t - r``).

    ``tokens`` is ``[1 + h*w, D]`` (one image's surgery tokens). Returns the ``N`` scores
    ``sigmoid(10 x)`` of the CLS row and ``[N, H, W]`` float32 min-max maps, bilinear."""
    import torch
    import torch.nn.functional as F

    x = tokens.float()
    x = x / x.norm(dim=0, keepdim=True)  # over the token axis, as the script's norm(dim=1) on [1, L, D]
    sim = x @ direction.float().T  # [1 + hw, N]
    scores = torch.sigmoid(REFERENCE_SLOPE * sim[0]).tolist()
    maps = _minmax_patches(sim[1:].T).reshape(-1, 1, grid[0], grid[1])
    maps = F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return [float(s) for s in scores], maps.cpu().numpy().astype(np.float32)


def _long_text_notes(backbone: SurgeryCLIP, texts: Sequence[str]) -> list[str]:
    encode = getattr(backbone.tokenizer, "encode", None)
    if not callable(encode):
        return []
    notes = []
    for t in texts:
        longest = max(len(encode(tpl.format(t))) for tpl in REFERENCE_TEMPLATES) + 2
        if longest > backbone.context_length:
            notes.append(
                f"text {t[:40]!r}... is {longest} CLIP tokens in a template (the script's tokenizer "
                f"raises): truncated to {backbone.context_length}"
            )
    return notes


def score_reference(
    indicator: ReferenceScorer, images: Sequence[Image.Image], prompts: Sequence[str]
) -> list[QualityMap]:
    """``AQMap.score`` under ``reference_compat``: see the module docstring."""
    from grefine_kit.models.surgery import DEFAULT_POS_INTERPOLATION

    nlp = indicator.spacy_pipeline()
    analyses = {p: analyse_reference(nlp, p) for p in dict.fromkeys(prompts)}
    trees = {p: indicator.get_parser().parse(p) for p in analyses}
    backbone = indicator.load()
    texts: list[str] = [""]
    for p, an in analyses.items():
        texts += [*an.noun_parts, *an.filtered_parts, p]
    texts = list(dict.fromkeys(texts))
    column = {t: k for k, t in enumerate(texts)}
    feats = backbone.encode_text_ensemble(texts, REFERENCE_TEMPLATES)
    direction = feats - feats[column[""]].reshape(1, -1)
    notes = {p: [*an.notes, *_long_text_notes(backbone, [*an.noun_parts, *an.filtered_parts])]
             for p, an in analyses.items()}  # fmt: skip

    results: list[QualityMap] = []
    for i, image in enumerate(images):
        prompt = prompts[i]
        an = analyses[prompt]
        tokens = backbone.encode_image_tokens(
            [image],
            native_size=False,
            surgery_depth=REFERENCE_SURGERY_DEPTH,
            pos_interpolation=DEFAULT_POS_INTERPOLATION,
        )[0]
        grid = backbone.grid_for(image, False)
        size = (image.height, image.width)
        cols = [column[t] for t in (*an.noun_parts, *an.filtered_parts, prompt)]
        scores, maps = reference_texts_maps(tokens, direction[cols], grid, size)
        n = len(an.noun_parts)
        as0, as1, prompt_score = scores[:n], scores[n : 2 * n], scores[2 * n]
        am = maps[:n]
        image_notes = list(notes[prompt])
        if "" in an.noun_parts:
            image_notes.append("a part without a noun scores its noun text '' : score 0.5, map all 0")
        phrases = reference_phrases(an, trees[prompt])
        keep = [k for k, noun in enumerate(an.noun_parts) if noun]
        decision = decide_alignment(
            prompt,
            phrases,
            [as1[k] for k in keep],
            [as0[k] for k in keep],
            [am[k] for k in keep],
            prompt_score,
            size,
            note="; ".join(image_notes),
            **indicator.rule_options(),
        )
        details: dict[str, Any] = {
            "parser": trees[prompt].parser,
            "defect_area": float(decision.defect_map.mean()),
            "grid": grid,
            "backbone": backbone.name,
            "templates": len(REFERENCE_TEMPLATES),
            "score_scale": "reference",
            "mode": "reference",
            "reference": {
                "parts": list(an.parts),
                "filtered_parts": list(an.filtered_parts),
                "noun_parts": list(an.noun_parts),
                "phrase_to_parent": dict(an.phrase_to_parent),
                "as0": np.asarray(as0, dtype=np.float64),
                "as1": np.asarray(as1, dtype=np.float64),
                "am": am,
                "notes": image_notes,
            },
        }
        results.append(
            QualityMap(
                map=decision.map,
                score=decision.score,
                indicator=indicator.name,
                details=details,
                report=decision.report,
            )
        )
    return results
