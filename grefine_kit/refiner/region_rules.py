"""Region prompts and skip rules: which prompt each region is repainted with, which are left alone.

Detailer tools let a user write one prompt per detected region (ADetailer's ``[SEP]``,
Impact-Pack's ``[SEP]``/``[LAB]``). Here a region-prompt text is split at ``[SEP]`` into
*segments*:

- a plain segment is a prompt **by order**: the n-th plain segment goes to region n (0-based,
  the report's ``index``); an empty one keeps that region's fallback;
- a segment that starts with ``[label]`` is a prompt **by label**: it goes to every region whose
  ``label`` (or, for alignment regions, ``phrase``) is ``label`` (case-insensitive);
- ``[PROMPT]`` inside a segment is replaced by the image's whole prompt.

A region takes its order prompt if non-empty, else its label prompt, else the fallback:
``emphasis`` (the whole prompt plus the region's AQ-Map phrase emphasis: what the refiner does
without region prompts), ``phrase`` (the region's AQ-Map phrase as its prompt; the whole prompt
for regions without a phrase) or ``prompt`` (the whole prompt, no emphasis).

More order prompts than detected regions (one or more) is an error (:class:`RegionPromptError`): the prompts
were written for other regions than the ones found. Skip rules (by index, label, area, score)
leave a region's pixels exactly as they were and record why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from grefine_kit.errors import ItemError

__all__ = [
    "PROMPT_FALLBACKS",
    "PROMPT_TOKEN",
    "SEP",
    "RegionPlan",
    "RegionPromptError",
    "RegionPrompts",
    "SkipRules",
    "parse_skip",
    "plan_regions",
]

SEP = "[SEP]"
PROMPT_TOKEN = "[PROMPT]"
#: what a region without a prompt of its own is repainted with (see the module docstring)
PROMPT_FALLBACKS = ("emphasis", "phrase", "prompt")
_LABELLED = re.compile(r"\s*\[([^\[\]]+)\]\s*(.*)", re.S)


class RegionPromptError(ItemError):
    """An item's region prompts do not fit its regions (more prompts than regions)."""


def _segments(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts = value.split(SEP) if value.strip() else []
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = [p for v in value for p in v.split(SEP)]
    else:
        raise ValueError(f"region prompts must be a text or a list of texts, not {value!r}")
    return tuple(p.strip() for p in parts)


@attrs.frozen
class RegionPrompts:
    """Parsed region prompts: ``by_order[n]`` for region n (``""``: fall back), ``by_label``
    as ``(label, prompt)`` pairs (labels lower-cased)."""

    by_order: tuple[str, ...] = ()
    by_label: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str | Sequence[str] | None) -> RegionPrompts:
        """From a ``[SEP]``-separated text or a list of segments (each may hold ``[SEP]`` too)."""
        order: list[str] = []
        labels: dict[str, str] = {}
        for segment in _segments(value):
            found = _LABELLED.fullmatch(segment)
            name = found.group(1).strip() if found else ""
            if found and name.upper() not in ("PROMPT", "SEP"):
                key = name.lower()
                if key in labels:
                    raise ValueError(f"region prompts: label [{name}] is given twice")
                labels[key] = found.group(2).strip()
            else:
                order.append(segment)
        while order and not order[-1]:  # "a [SEP] " : a trailing empty segment asks for nothing
            order.pop()
        return cls(tuple(order), tuple(labels.items()))

    def __bool__(self) -> bool:
        return bool(self.by_order or self.by_label)

    def text(self) -> str:
        """The prompts as one ``[SEP]``-separated text (what :meth:`parse` reads back)."""
        return f" {SEP} ".join([*self.by_order, *(f"[{k}] {v}" for k, v in self.by_label)])

    def own(self, index: int, names: Sequence[str | None]) -> tuple[str, str] | None:
        """``(prompt, "order" | "label")`` for region ``index`` with labels ``names``, or None."""
        if index < len(self.by_order) and self.by_order[index]:
            return self.by_order[index], "order"
        keys = {n.strip().lower() for n in names if n}
        for label, text in self.by_label:
            if label in keys and text:
                return text, "label"
        return None


def parse_skip(value: Any) -> tuple[int | str, ...]:
    """Region indices (ints) and labels (texts) to skip, from a list or a comma-separated text
    (``"0, 2, face"``: a token that is an integer is an index)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"region_skip must be a list of indices and labels, not {value!r}")
    out: list[int | str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"region_skip: {item!r} is neither a region index nor a label")
        if isinstance(item, str):
            token = item.strip()
            if not token:
                continue
            item = int(token) if re.fullmatch(r"[+-]?\d+", token) else token.lower()
        if isinstance(item, int) and item < 0:
            raise ValueError(f"region_skip: index {item} is negative (0 is the first region)")
        out.append(item)
    return tuple(out)


@attrs.frozen
class SkipRules:
    """Skip a region when its index or label is in ``skip``, its area (fraction of the image)
    is outside ``[min_area, max_area]`` or its score is below ``min_score`` (a region without
    a score is not skipped by score)."""

    skip: tuple[int | str, ...] = ()
    min_area: float = 0.0
    max_area: float = 1.0
    min_score: float = 0.0

    def reason(self, index: int, region: Any) -> str | None:
        if index in self.skip:
            return f"skipped by region_skip (index {index})"
        names = {n.strip().lower() for n in (region.label, region.phrase) if n}
        hit = sorted(names & {s for s in self.skip if isinstance(s, str)})
        if hit:
            return f"skipped by region_skip (label {hit[0]!r})"
        if region.area < self.min_area:
            return f"skipped: area {region.area:.4g} < region_min_area {self.min_area:.4g}"
        if region.area > self.max_area:
            return f"skipped: area {region.area:.4g} > region_max_area {self.max_area:.4g}"
        if region.score is not None and region.score < self.min_score:
            return f"skipped: score {region.score:.4g} < region_min_score {self.min_score:.4g}"
        return None


@attrs.frozen
class RegionPlan:
    """What stage 1 does with one region: its prompt and emphasis, where the prompt came from
    (``order``, ``label`` or the fallback's name), and a skip reason (None: it is repainted)."""

    index: int
    prompt: str
    emphasis: tuple[tuple[str, float], ...]
    prompt_source: str
    skip: str | None = None


def plan_regions(
    regions: Sequence[Any],
    *,
    prompt: str,
    prompts: RegionPrompts,
    fallback: str = "emphasis",
    rules: SkipRules | None = None,
) -> list[RegionPlan]:
    """One :class:`RegionPlan` per region, in order. Raises :class:`RegionPromptError` when
    ``prompts`` has more order prompts than there are regions (an image without any region is
    left alone whatever the prompts)."""
    if regions and len(prompts.by_order) > len(regions):  # no region at all: nothing to prompt
        raise RegionPromptError(
            f"{len(prompts.by_order)} region prompts by order ([SEP]-separated) but the image has "
            f"{len(regions)} region(s); give at most {len(regions)} (an empty part keeps a region's "
            "default prompt; [label] parts match by label)"
        )
    if fallback not in PROMPT_FALLBACKS:
        raise ValueError(f"region prompt fallback must be one of {PROMPT_FALLBACKS}, not {fallback!r}")
    rules = rules or SkipRules()
    plans = []
    for index, region in enumerate(regions):
        own = prompts.own(index, (region.label, region.phrase))
        if own is not None:
            text, source = own[0].replace(PROMPT_TOKEN, prompt), own[1]
            emphasis: tuple[tuple[str, float], ...] = ()
        elif fallback == "emphasis":
            text, source, emphasis = prompt, "emphasis", tuple(region.emphasis)
        elif fallback == "phrase" and region.phrase:
            text, source, emphasis = region.phrase, "phrase", ()
        else:
            text, source, emphasis = prompt, "prompt", ()
        plans.append(RegionPlan(index, text, emphasis, source, rules.reason(index, region)))
    return plans
