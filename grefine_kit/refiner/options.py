"""The Refiner's options: the recipe's ``[refiner]`` table maps one-to-one onto :class:`RefinerOptions`.

Every key of ``[refiner]`` is a field here, and every field is a key; parts, the seed and the
recipe's provenance are not options (they come from the other tables). Keys that older
versions accepted are refused with the change to make (:data:`MIGRATIONS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from grefine_kit.checks import choice, integer, unit
from grefine_kit.errors import UserError
from grefine_kit.images.ops import COLOUR_MATCH_MODES
from grefine_kit.parts.registry import error_text, suggest
from grefine_kit.refiner.region_rules import PROMPT_FALLBACKS, RegionPrompts, SkipRules, parse_skip
from grefine_kit.refiner.strength import STRENGTH_RULES, StagePolicy, split_iterations

__all__ = ["MIGRATIONS", "RefinerOptions", "option_names"]

#: old ``[refiner]`` keys -> what to write instead
MIGRATIONS: dict[str, str] = {
    "only_masked": (
        'replaced by a [regions] table: write [regions] part = "components" with merge = "single" '
        'for one crop around the whole mask (the old only_masked = true) or merge = "each" for one '
        "crop per defect; leave [regions] out for the old only_masked = false"
    ),
    "padding": (
        "moved to the [regions] table and is now in pixels: padding = 32 (the old default, 0.0625 of "
        "the shorter side, is 32 px at 512 and 64 px at 1024)"
    ),
}


_REGION_KEYS = (
    "region_prompts",
    "region_prompt_fallback",
    "region_skip",
    "region_min_area",
    "region_max_area",
    "region_min_score",
)


def _segments(value: object) -> tuple[str, ...]:
    """A ``[SEP]`` text or a list of texts as a tuple of texts (kept as written, for the table)."""
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"'region_prompts' must be a text or a list of texts, not {value!r}")


@attrs.frozen(kw_only=True)
class RefinerOptions:
    """How the Refiner runs its stages (recipe ``[refiner]`` keys).

    Attributes:
        iterations: total diffusion schedule steps, split between the stages (paper: 20).
        split: fraction of ``iterations`` for stage 1 (paper: half each); a stage runs
            ``int(its steps × its strength)`` of them.
        strength_rule: ``falling`` (default: ``strength_min + (strength_max − strength_min) ·
            (1 − (p+a)/2)``, HQ images are barely touched), ``paper`` (the literal ``(p+a)/2``),
            ``fixed`` (``strength_max``).
        strength_min / strength_max: the stage-1 strength range.
        delta: stage-2 strength (the paper's "extremely small" δ).
        mask_min_area: skip stage 1 when the mask covers this fraction of the image or less
            (the combiner already empties masks below its own ``min_area``).
        batch_size: images per indicator batch in ``refine_many`` (1..1024).
        region_prompts: prompts per region (with a ``[regions]`` table): a ``[SEP]``-separated
            text or a list of segments, by order or ``[label] ...`` (:mod:`grefine_kit.refiner.region_rules`).
        region_prompt_fallback: a region without its own prompt gets ``emphasis`` (the whole
            prompt plus its AQ-Map phrase's emphasis), ``phrase`` or ``prompt``.
        region_skip: region indices (0 = the first) and labels to leave untouched.
        region_min_area / region_max_area: leave untouched the regions whose area (fraction of
            the image) is outside this range.
        region_min_score: leave untouched the regions whose detector score is below this.
        colour_match: shift stage 1's repaint to the colour of its surroundings before pasting
            it back: ``none``, ``mean`` or ``local`` (:func:`grefine_kit.images.ops.match_colour`).
        colour_match_width: the ring (px outside the mask) whose colour drift is measured.
    """

    iterations: int = attrs.field(default=20, validator=integer(0, 1000))
    split: float = attrs.field(default=0.5, validator=unit)
    strength_rule: str = attrs.field(default="falling", validator=choice(STRENGTH_RULES))
    strength_min: float = attrs.field(default=0.3, validator=unit)
    strength_max: float = attrs.field(default=0.95, validator=unit)
    delta: float = attrs.field(default=0.2, validator=unit)
    mask_min_area: float = attrs.field(default=0.0, validator=unit)
    batch_size: int = attrs.field(default=4, validator=integer(1, 1024))
    region_prompts: tuple[str, ...] = attrs.field(default=(), converter=_segments)
    region_prompt_fallback: str = attrs.field(default="emphasis", validator=choice(PROMPT_FALLBACKS))
    region_skip: tuple[int | str, ...] = attrs.field(default=(), converter=parse_skip)
    region_min_area: float = attrs.field(default=0.0, validator=unit)
    region_max_area: float = attrs.field(default=1.0, validator=unit)
    region_min_score: float = attrs.field(default=0.0, validator=unit)
    colour_match: str = attrs.field(default="none", validator=choice(COLOUR_MATCH_MODES))
    colour_match_width: int = attrs.field(default=8, validator=integer(1, 1024))

    def __attrs_post_init__(self) -> None:
        if self.strength_min > self.strength_max:
            raise ValueError(f"strength_min ({self.strength_min}) > strength_max ({self.strength_max})")
        if self.region_min_area > self.region_max_area:
            raise ValueError(
                f"region_min_area ({self.region_min_area}) > region_max_area ({self.region_max_area})"
            )
        RegionPrompts.parse(self.region_prompts)  # a label given twice is refused here

    @property
    def region_rules(self) -> SkipRules:
        """The ``region_skip`` / area / score options as :class:`SkipRules`."""
        return SkipRules(self.region_skip, self.region_min_area, self.region_max_area, self.region_min_score)

    @property
    def uses_regions(self) -> list[str]:
        """The region options set away from their defaults (they need a ``[regions]`` table)."""
        mine, defaults = attrs.asdict(self, recurse=False), attrs.asdict(RefinerOptions(), recurse=False)
        return [k for k in _REGION_KEYS if mine[k] != defaults[k]]

    @property
    def steps(self) -> tuple[int, int]:
        """``(stage-1 steps, stage-2 steps)``: ``iterations`` split by ``split``."""
        return split_iterations(self.iterations, self.split)

    def stage_policy(self, *, masked: bool) -> StagePolicy:
        """The policy of a masked stage (stage 1's share of ``iterations``, the strength rule
        and range, ``mask_min_area``) or of a global one (stage 2's share, strength ``delta``)."""
        first, second = self.steps
        if masked:
            return StagePolicy(
                steps=first,
                rule=self.strength_rule,
                strength_min=self.strength_min,
                strength_max=self.strength_max,
                delta=self.delta,
                mask_min_area=self.mask_min_area,
            )
        return StagePolicy(steps=second, rule="delta", delta=self.delta, mask_min_area=self.mask_min_area)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> RefinerOptions:
        """Options from a ``[refiner]`` table; ``UserError`` naming the key for an unknown or
        outdated key or a bad value."""
        accepted = option_names()
        for key in table:
            if key in MIGRATIONS:
                raise UserError(f"refiner.{key}: {MIGRATIONS[key]}")
            if key not in accepted:
                raise UserError(
                    f"refiner.{key}: unknown option{suggest(key, accepted)}; options: {', '.join(accepted)}"
                )
        try:
            return cls(**dict(table))
        except (TypeError, ValueError) as exc:
            raise UserError(f"refiner: {error_text(exc)}") from exc

    def to_table(self, *, only_changed: bool = True) -> dict[str, Any]:
        """The ``[refiner]`` table (only the keys that differ from the defaults, by default)."""
        out = _table(self)
        if only_changed:
            defaults = _table(RefinerOptions())
            out = {k: val for k, val in out.items() if defaults[k] != val}
        return out


def _table(options: RefinerOptions) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(options).items()}


def option_names() -> list[str]:
    """The keys a ``[refiner]`` table accepts."""
    return [f.name for f in attrs.fields(RefinerOptions)]


def check_role_names(names: Iterable[str]) -> None:
    """``ValueError`` when an extra role would be called like a ``[refiner]`` option (the
    Refiner takes both as keywords)."""
    clash = sorted(set(names) & set(option_names()))
    if clash:
        raise ValueError(f"role name {clash[0]!r} is taken (a refiner option)")
