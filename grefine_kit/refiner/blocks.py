"""Blocks: each recipe part wrapped with the state entries it reads and writes.

The Refiner is a list of blocks run in order over a :class:`~grefine_kit.refiner.state.RefineState`.
Each block kind declares ``reads`` (entries it cannot run without) and ``writes`` by entry name
(:meth:`Block.declare`); :func:`check_blocks` refuses, when the Refiner is built, a list where
some block reads what no earlier block writes, naming the block and the missing entry (and the
recipe table that would write it).

=============  ==========================  ====================================================
block kind     reads                       writes
=============  ==========================  ====================================================
indicator      image, prompt               maps.<role> (+ alignment_report when the part
                                           declares ``writes_report``)
combiner       maps the part ``requires``  mask
regions        mask, maps it ``requires``  regions
stage, masked  image, mask                 image (per region with ``regions``)
stage, global  image                       image
=============  ==========================  ====================================================

Stage blocks hold their :class:`~grefine_kit.refiner.strength.StagePolicy` (strength rule,
steps, skip threshold) and put their report entry under their role's name.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Generic, Protocol, TypeVar, cast

import attrs
from PIL import Image

from grefine_kit.combiners.base import Combiner, empty_mask
from grefine_kit.errors import RecipeError
from grefine_kit.indicators.base import Indicator
from grefine_kit.parts.base import PartBase, as_part, capabilities
from grefine_kit.parts.roles import (
    ALIGNMENT,
    ANY_STAGE,
    COMBINER,
    GLOBAL,
    INDICATOR_KIND,
    INDICATORS,
    MASKED,
    REGIONS,
    STAGE_KIND,
    Role,
    in_run_order,
    role,
)
from grefine_kit.refiner.options import RefinerOptions
from grefine_kit.refiner.stage_runs import run_global, run_masked
from grefine_kit.refiner.state import (
    IMAGE,
    INPUTS,
    MAPS,
    MASK,
    PROMPT,
    REGIONS_ENTRY,
    REPORT,
    RefineState,
    map_entry,
)
from grefine_kit.refiner.strength import StagePolicy
from grefine_kit.regions.base import Region, RegionDetector
from grefine_kit.stages.base import Stage
from grefine_kit.types import Mask, QualityMap

__all__ = [
    "Block",
    "CombinerBlock",
    "IndicatorBlock",
    "RegionsBlock",
    "StageBlock",
    "block_for",
    "blocks_for",
    "check_blocks",
    "declared_io",
]

P = TypeVar("P")
IO = tuple[tuple[str, ...], tuple[str, ...]]


def _writer_hint(entry: str) -> str:
    """The recipe table that writes ``entry`` (for error messages); empty when unknown."""
    if entry.startswith(MAPS):
        return f"[{INDICATORS}.{entry[len(MAPS) :]}]"
    writers = {
        REPORT: f"[{role(ALIGNMENT).table}]",
        MASK: f"[{role(COMBINER).table}]",
        REGIONS_ENTRY: f"[{role(REGIONS).table}]",
    }
    return writers.get(entry, "")


def _declared(part: object) -> type[PartBase] | None:
    """The part's class when it derives from PartBase (its declarations are class-level)."""
    cls = part if isinstance(part, type) else type(part)
    return cls if issubclass(cls, PartBase) else None


def _requires(part: object) -> tuple[str, ...]:
    cls = _declared(part)
    return tuple(cls.requires) if cls is not None else ()


def check_blocks(io: Iterable[tuple[str, Sequence[str], Sequence[str]]]) -> None:
    """``io``: ``(label, reads, writes)`` per block in run order. ``RecipeError`` for the first
    read that neither the inputs nor an earlier block provides."""
    written = set(INPUTS)
    for label, reads, writes in io:
        for entry in reads:
            if entry not in written:
                hint = _writer_hint(entry)
                raise RecipeError(
                    f"block {label} reads {entry!r}, which no earlier block writes"
                    + (f"; add a {hint} table" if hint else "")
                    + _misspelt(entry, written)
                )
        written.update(writes)


def _misspelt(entry: str, written: Iterable[str]) -> str:
    """`` (did you mean 'perceptual', not 'perceptive'?)`` when an entry that was written is
    close to the missing one (an extra role that is a typo of a built-in one), else ``""``."""
    close = difflib.get_close_matches(entry, sorted(written), n=1, cutoff=0.8)
    if not close:
        return ""
    want, got = entry.removeprefix(MAPS), close[0].removeprefix(MAPS)
    return f" (did you mean {want!r}, not {got!r}?)"


@attrs.define
class Block(Generic[P]):
    """A part in a role, with its declared reads and writes.

    ``batched`` blocks run over a whole batch of states at once (the indicators); the others
    run image by image, so ``refine_many`` yields each image as soon as it is done.
    """

    slot: Role
    part: P
    part_name: str = ""
    batched: ClassVar[bool] = False

    @classmethod
    def declare(cls, slot: Role, part: object) -> IO:
        """``(reads, writes)`` of this kind of block for ``part`` (an instance or its class)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.slot.name

    @property
    def label(self) -> str:
        return f"{self.slot.name} ({self.part_name or type(self.part).__name__})"

    @property
    def reads(self) -> tuple[str, ...]:
        return self.declare(self.slot, self.part)[0]

    @property
    def writes(self) -> tuple[str, ...]:
        return self.declare(self.slot, self.part)[1]

    def run(self, states: Sequence[RefineState]) -> None:
        """Run over ``states``, writing this block's entries into each."""
        for state in states:
            started = time.perf_counter()
            self.run_one(state)
            state.timings[self.name] = time.perf_counter() - started

    def run_one(self, state: RefineState) -> None:
        raise NotImplementedError


class _RegionScorer(Protocol):
    def score(
        self, images: Sequence[Image.Image], prompts: Sequence[str] | None, *, regions: Sequence[object]
    ) -> list[QualityMap]: ...


@attrs.define
class IndicatorBlock(Block[Indicator]):
    """Scores a batch; writes ``maps.<role>`` and, when the part declares ``writes_report``,
    the report its maps carry (``alignment_report``)."""

    batched: ClassVar[bool] = True

    @classmethod
    def declare(cls, slot: Role, part: object) -> IO:
        if isinstance(part, type):  # a recipe checked before building: the class's declaration
            declared = _declared(part)
            reports = declared is not None and declared.writes_report
        else:
            reports = capabilities(part).writes_report
        return (IMAGE, PROMPT), (map_entry(slot.name),) + ((REPORT,) if reports else ())

    @property
    def needs_region(self) -> bool:
        """True when the part reads each item's own region mask (``region-map``)."""
        return as_part(self.part).needs_region

    def run(self, states: Sequence[RefineState]) -> None:
        if not states:
            return
        started = time.perf_counter()
        prompts = [s.prompt for s in states] if as_part(self.part).needs_prompt else None
        images = [s.original for s in states]
        if self.needs_region:  # region-map: the items' own regions
            scorer = cast(_RegionScorer, self.part)
            maps = scorer.score(images, prompts, regions=[s.region for s in states])
        else:
            maps = self.part.score(images, prompts)
        if len(maps) != len(states):
            raise RuntimeError(f"{self.label} returned {len(maps)} maps for {len(states)} images")
        share = (time.perf_counter() - started) / len(states)
        entry, reports = map_entry(self.name), REPORT in self.writes
        for state, qmap in zip(states, maps, strict=True):
            state.write(entry, qmap)
            if reports and qmap.report is not None:
                state.write(REPORT, qmap.report)
            state.timings[self.name] = share


@attrs.define
class CombinerBlock(Block[Combiner]):
    """Combines the maps written so far (by role) into the repaint ``mask``."""

    @classmethod
    def declare(cls, slot: Role, part: object) -> IO:
        return tuple(map_entry(r) for r in _requires(part)), (MASK,)

    def run_one(self, state: RefineState) -> None:
        mask = self.part.combine(state.maps, state.size)
        w, h = state.size
        if not isinstance(mask, Mask) or mask.binary.shape != (h, w):
            got = mask.binary.shape if isinstance(mask, Mask) else type(mask).__name__
            raise RuntimeError(f"{self.label} returned {got}, not a Mask of the image's (H, W) {(h, w)}")
        state.write(MASK, mask)


@attrs.define
class RegionsBlock(Block[RegionDetector]):
    """Splits the mask into ``regions`` (crops stage 1 refines one by one)."""

    @classmethod
    def declare(cls, slot: Role, part: object) -> IO:
        return (MASK, *(map_entry(r) for r in _requires(part))), (REGIONS_ENTRY,)

    def run_one(self, state: RefineState) -> None:
        mask = state.mask if state.mask is not None else empty_mask(state.size)
        regions = tuple(self.part.detect(mask, state.maps, state.alignment_report))
        w, h = state.size
        for region in regions:
            if not isinstance(region, Region):
                raise RuntimeError(f"{self.label} returned a {type(region).__name__}, not a Region")
            left, top, right, bottom = region.crop
            if not (0 <= left < right <= w and 0 <= top < bottom <= h):
                raise RuntimeError(
                    f"{self.label} returned a region crop {region.crop} outside the {w}x{h} image"
                )
        state.write(REGIONS_ENTRY, regions)


def stage_kind_of(slot: Role, part: object) -> str:
    """``masked`` or ``global``: how the stage block for ``part`` in ``slot`` runs. A built-in
    slot says it; an extra stage runs as its part's declared ``role`` (``any``: global). A part
    given as a class (a recipe checked before building) counts as global until built."""
    if slot.stage_role != ANY_STAGE:
        return slot.stage_role
    found = part.role if isinstance(part, Stage) and not isinstance(part, type) else GLOBAL
    return MASKED if found == MASKED else GLOBAL


@attrs.define
class StageBlock(Block[Stage]):
    """Runs a stage masked or global with its :class:`StagePolicy`; replaces ``image`` and
    puts the stage's report entry under the role's name. ``options`` gives the region prompt
    rules and the paste-back's colour matching."""

    options: RefinerOptions = attrs.field(factory=RefinerOptions)
    policy: StagePolicy = attrs.field()

    @policy.default
    def _policy(self) -> StagePolicy:
        return self.options.stage_policy(masked=self.masked)

    @classmethod
    def declare(cls, slot: Role, part: object) -> IO:
        if stage_kind_of(slot, part) == MASKED:
            return (IMAGE, MASK), (IMAGE,)
        return (IMAGE,), (IMAGE,)

    @property
    def masked(self) -> bool:
        return stage_kind_of(self.slot, self.part) == MASKED

    def __attrs_post_init__(self) -> None:
        found = self.part.role if isinstance(self.part, Stage) else None
        allowed = (
            (MASKED, GLOBAL, ANY_STAGE)
            if self.slot.stage_role == ANY_STAGE
            else (self.slot.stage_role, ANY_STAGE)
        )
        if found not in allowed:  # "any": a stage for either slot
            wanted = "stage" if self.slot.stage_role == ANY_STAGE else f"{self.slot.stage_role!r} stage"
            raise RecipeError(f"{self.label} must be a {wanted}; got role {found!r}")
        if self.policy.steps == 0:
            raise RecipeError(
                f"{self.label}: split={self.options.split} of iterations={self.options.iterations} "
                f"leaves it no steps"
            )

    def run_one(self, state: RefineState) -> None:
        if self.masked:
            state.stages[self.name] = run_masked(self.part, state, self.policy, self.options, self.name)
        else:
            state.stages[self.name] = run_global(self.part, state, self.policy, self.name)


def declared_io(slot: Role, part: object) -> IO:
    """``(reads, writes)`` of the block for ``part`` (an instance, or its class) in ``slot``."""
    return _BLOCK_TYPES[slot.kind].declare(slot, part)


_BLOCK_TYPES: dict[str, type[Block[object]]] = {
    INDICATOR_KIND: IndicatorBlock,  # type: ignore[dict-item]
    COMBINER: CombinerBlock,  # type: ignore[dict-item]
    REGIONS: RegionsBlock,  # type: ignore[dict-item]
    STAGE_KIND: StageBlock,  # type: ignore[dict-item]
}


def block_for(slot: Role, part: object, options: RefinerOptions, part_name: str = "") -> Block[object]:
    """The block that runs ``part`` in ``slot`` (stage blocks get their policy from ``options``)."""
    if slot.kind == STAGE_KIND:
        return StageBlock(slot, cast(Stage, part), part_name, options)  # type: ignore[return-value]
    return _BLOCK_TYPES[slot.kind](slot, part, part_name)


def blocks_for(
    parts: Mapping[str, object],
    options: RefinerOptions,
    names: Mapping[str, str] | None = None,
    roles: Sequence[Role] = (),
) -> tuple[Block[object], ...]:
    """Blocks for ``parts`` (role name -> part; None or absent roles are left out), in run
    order (:func:`~grefine_kit.parts.roles.in_run_order`), checked with :func:`check_blocks`.
    ``roles``: the extra roles (or any roles) the names refer to, beyond the built-in table."""
    from grefine_kit.parts.roles import ROLES

    known = {r.name: r for r in ROLES} | {r.name: r for r in roles}
    unknown = set(parts) - set(known)
    if unknown:
        raise TypeError(f"unknown roles {sorted(unknown)}; roles: {', '.join(known)}")
    names = names or {}
    present = in_run_order(known[n] for n, p in parts.items() if p is not None)
    blocks = tuple(block_for(r, parts[r.name], options, names.get(r.name, "")) for r in present)
    check_blocks((b.label, b.reads, b.writes) for b in blocks)
    return blocks
