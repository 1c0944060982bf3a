"""AQ-Map's decision rules over plain numbers and arrays (docs/design.md 6.3 steps 4-5, paper eqs. 6-8).

No model is involved, so the rules can be tested (and reused) on injected scores and maps:
``classify_defects`` (noun / adjective unmatched), ``defect_map`` (the alignment defect map),
``cask_score`` (eq. 8) and ``decide_alignment`` (all of it for one image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import attrs
import numpy as np

from grefine_kit.types import AlignmentReport, Phrase, PhraseReport

__all__ = [
    "DEFAULT_A_BOUND",
    "DEFAULT_BETA",
    "DEFAULT_EMPHASIS",
    "DEFECT_CASES",
    "DEFECT_RULES",
    "AlignmentDecision",
    "RuleOptions",
    "cask_score",
    "classify_defects",
    "decide_alignment",
    "defect_map",
]

#: ``sigmoid(10 cos) < 0.5`` <=> ``cos(CLS, t - r) < 0``: the noun fits the image no better than "".
DEFAULT_A_BOUND = 0.5
#: phrases scoring at least this (cosine margin 0.04 over "") cost the cask score nothing.
DEFAULT_BETA = 0.6
#: paper eq. 7: ``prompt + 0.1 * phrase`` for each defective phrase.
DEFAULT_EMPHASIS = 0.1


def classify_defects(
    phrase_scores: Sequence[float],
    noun_scores: Sequence[float],
    a_bound: float = DEFAULT_A_BOUND,
    adjective_margin: float = 0.0,
) -> list[str | None]:
    """Per phrase: ``"noun"`` if ``a_pn < a_bound`` (checked first), ``"adjective"`` if
    ``a_ph < a_pn - adjective_margin``, else None."""
    if len(phrase_scores) != len(noun_scores):
        raise ValueError(f"{len(phrase_scores)} phrase scores but {len(noun_scores)} noun scores")
    out: list[str | None] = []
    for a_ph, a_pn in zip(phrase_scores, noun_scores, strict=True):
        if a_pn < a_bound:
            out.append("noun")
        elif a_ph < a_pn - adjective_margin:
            out.append("adjective")
        else:
            out.append(None)
    return out


#: how the defect regions accumulate: "union" (ours, pixel-wise max) or "product" (eq. 6 as
#: printed: the product of the regions, starting from 1; no defect -> no defect map)
DEFECT_RULES = ("union", "product")
#: which region a defect is drawn on: "text" (the paper's prose and Figure 5: noun unmatched ->
#: the ancestor's noun region, adjective unmatched -> its own) or "printed" (eq. 6 as typeset,
#: whose two cases are swapped relative to the prose)
DEFECT_CASES = ("text", "printed")


def defect_map(
    defects: Sequence[str | None],
    ancestors: Sequence[int],
    noun_maps: Sequence[np.ndarray] | np.ndarray,
    size: tuple[int, int],
    rule: str = "union",
    cases: str = "text",
) -> np.ndarray:
    """``A_def``: float32 ``(H, W)`` in [0, 1], 1 where the prompt is not drawn well.

    Phrase j's region is ``noun_maps[ancestors[j]]`` for a noun defect (draw it where its
    ancestor is; the root phrase is its own ancestor) and ``noun_maps[j]`` for an adjective
    defect (``cases = "printed"`` swaps the two). ``rule = "union"``: the pixel-wise max, so
    overlapping defects do not add up past 1; ``"product"``: the pixel-wise product of the
    regions (eq. 6 read literally with ``A`` as the defect weight of eq. 9: where *all* defect
    regions overlap). No defect -> zeros under either rule.
    """
    if rule not in DEFECT_RULES or cases not in DEFECT_CASES:
        raise ValueError(f"rule must be one of {DEFECT_RULES} and cases one of {DEFECT_CASES}")
    out: np.ndarray | None = None
    for j, kind in enumerate(defects):
        if kind is None:
            continue
        on_ancestor = (kind == "noun") == (cases == "text")
        src = ancestors[j] if on_ancestor else j
        region = np.asarray(noun_maps[src], dtype=np.float32)
        if region.shape != tuple(size):
            raise ValueError(f"noun map {src} has shape {region.shape}, expected {tuple(size)}")
        if out is None:
            out = region.copy()
        elif rule == "union":
            np.maximum(out, region, out=out)
        else:
            out *= region
    if out is None:
        return np.zeros(size, np.float32)
    return np.clip(out, 0.0, 1.0)


def cask_score(prompt_score: float, phrase_scores: Sequence[float], beta: float = DEFAULT_BETA) -> float:
    """``a = s(image, prompt) * prod_j min(a_ph[j] / beta, 1)``, in [0, 1] (paper eq. 8)."""
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must be in (0, 1]; got {beta}")
    a = float(prompt_score)
    for s in phrase_scores:
        a *= min(float(s) / beta, 1.0)
    return min(max(a, 0.0), 1.0)


class RuleOptions(TypedDict):
    """The rule keywords of :func:`decide_alignment`, as an indicator holds them
    (``AQMap.rule_options()``): passed as ``**options``."""

    a_bound: float
    beta: float
    adjective_margin: float
    emphasis_weight: float
    defect_rule: str
    defect_cases: str


@attrs.frozen
class AlignmentDecision:
    """The outcome of ``decide_alignment``: ``map`` = 1 - ``defect_map`` (1 = good)."""

    map: np.ndarray = attrs.field(eq=False, repr=False)
    defect_map: np.ndarray = attrs.field(eq=False, repr=False)
    score: float
    defects: tuple[str | None, ...]
    report: AlignmentReport


def decide_alignment(
    prompt: str,
    phrases: Sequence[Phrase],
    phrase_scores: Sequence[float],
    noun_scores: Sequence[float],
    noun_maps: Sequence[np.ndarray] | np.ndarray,
    prompt_score: float,
    size: tuple[int, int],
    *,
    a_bound: float = DEFAULT_A_BOUND,
    beta: float = DEFAULT_BETA,
    adjective_margin: float = 0.0,
    emphasis_weight: float = DEFAULT_EMPHASIS,
    note: str = "",
    defect_rule: str = "union",
    defect_cases: str = "text",
) -> AlignmentDecision:
    """Defects, alignment map, cask score and report from per-phrase numbers (no model involved).

    Args:
        phrases: from ``extract_phrases`` (``ancestor`` indexes this list).
        phrase_scores, noun_scores: ``a_ph[j]``, ``a_pn[j]`` in [0, 1], higher = better aligned.
        noun_maps: ``[J, H, W]`` in [0, 1], where phrase j's noun is (1 = there).
        prompt_score: ``s(image, prompt)`` in [0, 1].
        size: ``(H, W)`` of the maps.
    """
    if not (len(phrases) == len(phrase_scores) == len(noun_scores) == len(noun_maps)):
        raise ValueError("phrases, phrase_scores, noun_scores and noun_maps must have the same length")
    defects = classify_defects(phrase_scores, noun_scores, a_bound, adjective_margin)
    ancestors = [p.ancestor for p in phrases]
    a_def = defect_map(defects, ancestors, noun_maps, size, defect_rule, defect_cases)
    score = cask_score(prompt_score, phrase_scores, beta)
    reports = [
        PhraseReport(
            text=p.text,
            noun=p.noun_text,
            ancestor=phrases[p.ancestor].text,
            phrase_score=float(a_ph),
            noun_score=float(a_pn),
            defect=d,
        )
        for p, a_ph, a_pn, d in zip(phrases, phrase_scores, noun_scores, defects, strict=True)
    ]
    emphasis = tuple(
        dict.fromkeys((p.text, float(emphasis_weight)) for p, d in zip(phrases, defects, strict=True) if d)
    )
    regions: dict[str, np.ndarray] = {}
    for j, (p, d) in enumerate(zip(phrases, defects, strict=True)):
        if d:  # where this phrase's defect was drawn (the same rule as ``defect_map``)
            src = np.asarray(noun_maps[ancestors[j] if d == "noun" else j], np.float32)
            regions[p.text] = np.maximum(regions[p.text], src) if p.text in regions else src
    report = AlignmentReport(
        prompt=prompt,
        prompt_score=float(prompt_score),
        phrases=reports,
        emphasis=emphasis,
        note=note,
        defect_maps=regions,
    )
    return AlignmentDecision(
        map=1.0 - a_def, defect_map=a_def, score=score, defects=tuple(defects), report=report
    )


# --- the indicator --------------------------------------------------------------------------------
