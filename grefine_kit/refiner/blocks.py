"""Blocks: each recipe part wrapped with the state entries it reads and writes.

The Refiner is a list of blocks run in order over a :class:`~grefine_kit.refiner.state.RefineState`.
A block declares ``reads`` (entries it cannot run without) and ``writes``; :func:`check_blocks`
refuses, when the Refiner is built, a list where some block reads what no earlier block writes,
naming the block and the missing entry (and the recipe table that would write it).

=============  ==========================  ====================================================
block          reads                       writes
=============  ==========================  ====================================================
indicator      image, prompt               maps.<role> (+ alignment_report for ``alignment``)
combiner       maps the part ``requires``  mask
regions        mask                        regions
stage1         mask                        image, stages.stage1 (per region with ``regions``)
stage2         image                       image, stages.stage2
=============  ==========================  ====================================================
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from grefine_kit.combiners.base import empty_mask
from grefine_kit.errors import RecipeError
from grefine_kit.parts.base import PartBase, as_part, capabilities
from grefine_kit.refiner.options import RefinerOptions
from grefine_kit.refiner.roles import INDICATOR_ROLES, ROLES, Role, role
from grefine_kit.refiner.stage_runs import run_global, run_masked
from grefine_kit.refiner.state import INPUTS, RefineState, map_entry
from grefine_kit.regions.base import Region
from grefine_kit.types import Mask

__all__ = ["Block", "block_for", "blocks_for", "check_blocks", "declared_io"]

#: which recipe table writes an entry (for error messages)
_WRITERS = {
    **{map_entry(r): f"[{role(r).table}]" for r in INDICATOR_ROLES},
    "alignment_report": f"[{role('alignment').table}]",
    "mask": f"[{role('combiner').table}]",
    "regions": f"[{role('regions').table}]",
}


def declared_io(slot: Role, part: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(reads, writes)`` of the block for ``part`` (an instance, or its class) in ``slot``."""
    requires = _requires(part)
    if slot.kind == "indicator":
        writes = (map_entry(slot.name),) + (("alignment_report",) if slot.name == "alignment" else ())
        return ("image", "prompt"), writes
    if slot.kind == "combiner":
        return tuple(map_entry(r) for r in requires), ("mask",)
    if slot.kind == "regions":
        return ("mask", *(map_entry(r) for r in requires)), ("regions",)
    if slot.stage_role == "masked":
        return ("image", "mask"), ("image",)
    return ("image",), ("image",)


def _requires(part: Any) -> tuple[str, ...]:
    if isinstance(part, type):
        return tuple(part.requires) if issubclass(part, PartBase) else ()
    return capabilities(part).requires


def check_blocks(io: Iterable[tuple[str, Sequence[str], Sequence[str]]]) -> None:
    """``io``: ``(label, reads, writes)`` per block in run order. ``RecipeError`` for the first
    read that neither the inputs nor an earlier block provides."""
    written = set(INPUTS)
    for label, reads, writes in io:
        for entry in reads:
            if entry not in written:
                hint = f"; add a {_WRITERS[entry]} table" if entry in _WRITERS else ""
                raise RecipeError(f"block {label} reads {entry!r}, which no earlier block writes{hint}")
        written.update(writes)


@attrs.define
class Block:
    """A part in a role, with its declared reads and writes.

    ``batched`` blocks run over a whole batch of states at once (the indicators); the others
    run image by image, so ``refine_many`` yields each image as soon as it is done.
    """

    slot: Role
    part: Any
    part_name: str = ""
    options: RefinerOptions = attrs.field(factory=RefinerOptions)
    batched: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.slot.name

    @property
    def label(self) -> str:
        return f"{self.slot.name} ({self.part_name or type(self.part).__name__})"

    @property
    def reads(self) -> tuple[str, ...]:
        return declared_io(self.slot, self.part)[0]

    @property
    def writes(self) -> tuple[str, ...]:
        return declared_io(self.slot, self.part)[1]

    def run(self, states: Sequence[RefineState]) -> None:
        """Run over ``states``, writing this block's entries into each."""
        for state in states:
            started = time.perf_counter()
            self.run_one(state)
            state.timings[self.name] = time.perf_counter() - started

    def run_one(self, state: RefineState) -> None:
        raise NotImplementedError


@attrs.define
class IndicatorBlock(Block):
    batched: ClassVar[bool] = True

    @property
    def needs_region(self) -> bool:
        """True when the part reads each item's own region mask (``region-map``)."""
        return as_part(self.part).needs_region

    def run(self, states: Sequence[RefineState]) -> None:
        if not states:
            return
        started = time.perf_counter()
        prompts = [s.prompt for s in states] if as_part(self.part).needs_prompt else None
        if self.needs_region:  # region-map: the items' own regions
            maps = self.part.score([s.original for s in states], prompts, regions=[s.region for s in states])
        else:
            maps = self.part.score([s.original for s in states], prompts)
        if len(maps) != len(states):
            raise RuntimeError(f"{self.label} returned {len(maps)} maps for {len(states)} images")
        share = (time.perf_counter() - started) / len(states)
        for state, qmap in zip(states, maps, strict=True):
            state.maps[self.name] = qmap
            if self.name == "alignment" and qmap.report is not None:
                state.alignment_report = qmap.report
            state.timings[self.name] = share


@attrs.define
class CombinerBlock(Block):
    def run_one(self, state: RefineState) -> None:
        maps = [state.maps.get(r) for r in INDICATOR_ROLES]
        mask = self.part.combine(*maps, state.size)
        w, h = state.size
        if not isinstance(mask, Mask) or mask.binary.shape != (h, w):
            got = mask.binary.shape if isinstance(mask, Mask) else type(mask).__name__
            raise RuntimeError(f"{self.label} returned {got}, not a Mask of the image's (H, W) {(h, w)}")
        state.mask = mask


@attrs.define
class RegionsBlock(Block):
    def run_one(self, state: RefineState) -> None:
        mask = state.mask if state.mask is not None else empty_mask(state.size)
        regions = tuple(self.part.detect(mask, dict(state.maps), state.alignment_report))
        w, h = state.size
        for region in regions:
            if not isinstance(region, Region):
                raise RuntimeError(f"{self.label} returned a {type(region).__name__}, not a Region")
            left, top, right, bottom = region.crop
            if not (0 <= left < right <= w and 0 <= top < bottom <= h):
                raise RuntimeError(
                    f"{self.label} returned a region crop {region.crop} outside the {w}x{h} image"
                )
        state.regions = regions


@attrs.define
class StageBlock(Block):
    def __attrs_post_init__(self) -> None:
        from grefine_kit.stages.base import Stage

        found = self.part.role if isinstance(self.part, Stage) else None
        if found not in (self.slot.stage_role, "any"):  # "any": a stage for either slot
            raise RecipeError(f"{self.label} must be a {self.slot.stage_role!r} stage; got role {found!r}")
        n1, n2 = self.options.steps
        if (n1 if self.slot.stage_role == "masked" else n2) == 0:
            raise RecipeError(
                f"{self.label}: split={self.options.split} of iterations={self.options.iterations} "
                f"leaves it no steps"
            )

    def run_one(self, state: RefineState) -> None:
        if self.slot.stage_role == "masked":
            state.stages[self.name] = run_masked(self.part, state, self.options)
        else:
            state.stages[self.name] = run_global(self.part, state, self.options)


_BLOCK_TYPES: dict[str, type[Block]] = {
    "indicator": IndicatorBlock,
    "combiner": CombinerBlock,
    "regions": RegionsBlock,
    "stage": StageBlock,
}


def block_for(slot: Role, part: Any, options: RefinerOptions, part_name: str = "") -> Block:
    """The block that runs ``part`` in ``slot``."""
    return _BLOCK_TYPES[slot.kind](slot, part, part_name, options)


def blocks_for(
    parts: Mapping[str, Any], options: RefinerOptions, names: Mapping[str, str] | None = None
) -> tuple[Block, ...]:
    """Blocks for ``parts`` (role name -> part; None or absent roles are left out), in the
    role table's order, checked with :func:`check_blocks`."""
    unknown = set(parts) - {r.name for r in ROLES}
    if unknown:
        raise TypeError(f"unknown roles {sorted(unknown)}; roles: {', '.join(r.name for r in ROLES)}")
    names = names or {}
    blocks = tuple(
        block_for(r, parts[r.name], options, names.get(r.name, ""))
        for r in ROLES
        if parts.get(r.name) is not None
    )
    check_blocks((b.label, b.reads, b.writes) for b in blocks)
    return blocks
