"""The Refiner: a checked list of blocks run over a per-image state (docs/architecture.md).

Per image: the indicator blocks write their maps (in batches), the combiner block the repaint
mask, an optional regions block splits it into regions, stage 1 inpaints inside the mask (whole
image, or each region on its own crop) with a strength that falls as quality rises, pasting the
original pixels back outside it exactly; stage 2 runs a mild global pass of strength ``delta``.
The output has exactly the input's size. Every number that decided something goes into a
JSON-able report.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any

import attrs
from PIL import Image

from grefine_kit.combiners.base import empty_mask
from grefine_kit.errors import UserError
from grefine_kit.parts.base import as_part
from grefine_kit.parts.roles import (
    ALIGNMENT,
    INDICATOR_KIND,
    INDICATOR_ROLES,
    PERCEPTUAL,
    REGIONS,
    ROLES,
    Role,
)
from grefine_kit.refiner.blocks import Block, IndicatorBlock, blocks_for, check_blocks
from grefine_kit.refiner.options import MIGRATIONS, RefinerOptions, check_role_names
from grefine_kit.refiner.region_rules import RegionPromptError, RegionPrompts
from grefine_kit.refiner.stage_runs import paste_back
from grefine_kit.refiner.state import RefineState
from grefine_kit.regions.base import Region
from grefine_kit.stages.base import derive_seed
from grefine_kit.types import Mask, QualityMap

__all__ = ["RefineResult", "Refiner", "paste_back"]

#: one image as refine_many batches it: image, prompt, id, base seed, its own region prompts,
#: its own region mask (bool (H, W), for the region-map indicator)
_Item = tuple[Image.Image, str, str, int | None, RegionPrompts | None, Any]

_VERSIONED = ("grefine-kit", "torch", "diffusers", "transformers", "open_clip_torch")
_ROLE_NAMES = frozenset(r.name for r in ROLES)


@attrs.frozen
class RefineResult:
    """One refined image.

    Attributes:
        image: the refined RGB image, same size as the input.
        mask: the combiner's mask at the input size (1 = repaint); empty without a combiner.
        maps: the indicators' QualityMaps by role.
        regions: the regions block's regions (None without one).
        report: JSON-able dict: scores, mask area, ``ssim_unmasked`` (SSIM of the output vs
            the input over the pixels the mask left alone; None when none is left), per-stage
            strength / steps / steps run / skip reason / seconds (and per region), seed,
            timings, recipe name and hash, package versions.
    """

    image: Image.Image = attrs.field(eq=False)
    mask: Mask = attrs.field(eq=False)
    maps: Mapping[str, QualityMap] = attrs.field(factory=dict, eq=False)
    regions: tuple[Region, ...] | None = attrs.field(default=None, eq=False)
    report: dict[str, Any] = attrs.field(factory=dict)
    #: intermediate previews per stage (stage option ``previews``): role -> ``(step, image)``
    previews: Mapping[str, tuple[tuple[int, Image.Image], ...]] = attrs.field(factory=dict, eq=False)

    @property
    def perceptual(self) -> QualityMap | None:
        """Shorthand for ``maps.get(PERCEPTUAL)``."""
        return self.maps.get(PERCEPTUAL)

    @property
    def alignment(self) -> QualityMap | None:
        """Shorthand for ``maps.get(ALIGNMENT)``."""
        return self.maps.get(ALIGNMENT)


class Refiner:
    """Runs a list of blocks; construction checks the list and loads nothing.

    Build it from parts by role (``perceptual``, ``alignment``, ``combiner``, ``regions``,
    ``stage1``, ``stage2``; see :mod:`grefine_kit.parts.roles`) plus ``[refiner]`` options as keywords
    or an ``options`` object, or from ready ``blocks``. ``roles`` declares extra roles
    (:func:`~grefine_kit.parts.roles.indicator_role`,
    :func:`~grefine_kit.parts.roles.extra_stage_role`) whose parts are then given as keywords
    by their names too; a recipe's ``build()`` passes its own. Nothing is added that was not given:
    without a combiner there is no mask, so a stage 1 is refused (it reads ``mask``), and a
    recipe of only a stage 2 is a whole-image img2img pass.

    ``seed`` / ``recipe_name`` / ``recipe_hash`` / ``recipe_overrides`` (command-line ``--set``
    values, reported when given): provenance; per-image seeds derive from ``seed``.
    Raises ``RecipeError`` when a block reads what no earlier block writes or a part is in the
    wrong role, ``TypeError``/``ValueError`` for an unknown or bad option.
    """

    def __init__(
        self,
        *,
        blocks: Sequence[Block] | None = None,
        options: RefinerOptions | None = None,
        seed: int = 0,
        recipe_name: str = "",
        recipe_hash: str = "",
        recipe_overrides: Mapping[str, Any] | None = None,
        part_names: Mapping[str, str] | None = None,
        roles: Sequence[Role] = (),
        **parts_and_options: Any,
    ) -> None:
        check_role_names(r.name for r in roles if not r.builtin)
        role_names = _ROLE_NAMES | {r.name for r in roles}
        parts = {k: v for k, v in parts_and_options.items() if k in role_names}
        table = {k: v for k, v in parts_and_options.items() if k not in role_names}
        for key in table:
            if key in MIGRATIONS:
                raise TypeError(f"{key}: {MIGRATIONS[key]}")
        if options is not None and table:
            raise TypeError(
                f"give options either as an options object or as keywords, not both: {sorted(table)}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, not {seed!r}")
        self.options = options if options is not None else RefinerOptions(**table)
        if blocks is not None:
            if parts:
                raise TypeError("give either blocks or parts, not both")
            self.blocks = tuple(blocks)
            check_blocks((b.label, b.reads, b.writes) for b in self.blocks)
        else:
            self.blocks = blocks_for(parts, self.options, part_names, roles)
        if self.options.uses_regions and self.part(REGIONS) is None:
            raise ValueError(
                f"{', '.join(self.options.uses_regions)} act on regions: add a [regions] table "
                '(e.g. part = "components") or leave them out'
            )
        self.seed = seed
        self.recipe_name = recipe_name
        self.recipe_hash = recipe_hash
        self.recipe_overrides = dict(recipe_overrides or {})

    def part(self, name: str) -> Any:
        """The part in role ``name``, or None when the Refiner has none."""
        return next((b.part for b in self.blocks if b.name == name), None)

    @property
    def needs_region(self) -> bool:
        """True when a part reads each item's own region mask (a manifest's ``region``
        column): only then does the runner read those masks."""
        return any(isinstance(b, IndicatorBlock) and b.needs_region for b in self.blocks)

    @property
    def needs_prompt(self) -> bool:
        """True when a part reads the items' prompts (``PartBase.needs_prompt``: AQ-Map, the
        diffusion stages); otherwise an item may come without one (it is refined with "")."""
        return any(as_part(b.part).needs_prompt for b in self.blocks)

    @property
    def roles(self) -> tuple[Role, ...]:
        """The roles of the Refiner's blocks, in run order."""
        return tuple(b.slot for b in self.blocks)

    @property
    def score_roles(self) -> tuple[str, ...]:
        """The report's ``scores`` keys: the built-in indicator roles (None when absent), then
        the extra indicator roles the Refiner has."""
        extra = [
            b.name for b in self.blocks if b.slot.kind == INDICATOR_KIND and b.name not in INDICATOR_ROLES
        ]
        return (*INDICATOR_ROLES, *extra)

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    def __repr__(self) -> str:
        return f"Refiner(blocks=[{', '.join(b.label for b in self.blocks)}], options={self.options!r})"

    # -- public API ------------------------------------------------------------------------

    def refine(
        self,
        image: Image.Image,
        prompt: str | None = None,
        image_id: str = "image",
        *,
        seed: int | None = None,
        region_prompts: str | Sequence[str] | None = None,
        region: Any = None,
    ) -> RefineResult:
        """Refine one RGB image with its ``prompt`` (None: only where no part reads prompts,
        :attr:`needs_prompt`; ``UserError`` otherwise); ``image_id`` (with the recipe seed)
        fixes the random seed, unless ``seed`` gives the image's base seed explicitly.
        ``region_prompts``: this image's prompts per region (``"a [SEP] b"`` or a list;
        docs/refiner.md), replacing the ``region_prompts`` option; they need a regions block.
        ``region``: the item's own region mask (bool ``(H, W)``), for the ``region-map``
        indicator."""
        return next(self.refine_many([(image, prompt, image_id, seed, region_prompts, region)]))

    def refine_many(
        self, items: Iterable[tuple[Any, ...]], *, batch_size: int | None = None
    ) -> Iterator[RefineResult]:
        """Refine ``(image, prompt, image_id)``, ``(image, prompt, image_id, seed)`` or
        ``(image, prompt, image_id, seed, region_prompts)`` items (``prompt`` as in
        :meth:`refine`), or those plus ``region`` (the item's own region mask, bool ``(H, W)``
        or None, for ``region-map``), lazily, scoring
        ``batch_size`` (default: the ``batch_size`` option) at a time. Results do not depend on
        the batching (seeds come from the ids, or from the explicit seed:
        ``derive_seed(seed, image_id)``) beyond float32 rounding: CLIP indicators encode a batch's
        texts and images together, so a score can differ in its last bits (AQ-Map: 1.5e-8 alone
        against a batch of two)."""
        size = self.options.batch_size if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {size!r}")
        batch: list[_Item] = []
        for item in items:
            image, prompt, image_id, *rest = item
            if prompt is None:
                if self.needs_prompt:
                    reads = "the recipe reads prompts (AQ-Map, diffusion stages): give one"
                    raise UserError(f"{image_id}: {reads}")
                prompt = ""
            own = rest[1] if len(rest) > 1 else None
            if own is not None and self.part(REGIONS) is None:
                raise UserError(
                    f"{image_id}: region prompts need a regions block (a [regions] table in the recipe)"
                )
            region = rest[2] if len(rest) > 2 else None
            batch.append(
                (
                    image,
                    prompt,
                    image_id,
                    rest[0] if rest else None,
                    None if own is None else _parse(own),
                    region,
                )
            )
            if len(batch) == size:
                yield from self._refine_batch(batch)
                batch = []
        if batch:
            yield from self._refine_batch(batch)

    # -- internals -------------------------------------------------------------------------

    def _refine_batch(self, batch: Sequence[_Item]) -> Iterator[RefineResult]:
        started = time.perf_counter()
        states = [
            RefineState.start(
                im, prompt, image_id, derive_seed(self.seed if bs is None else bs, image_id), region
            )
            for im, prompt, image_id, bs, _, region in batch
        ]
        for state, item in zip(states, batch, strict=True):
            state.region_prompts = item[4]
        # the leading batched blocks (indicators) see the whole batch; the rest run image by
        # image, so a finished image is handed out before the next one starts
        n_batched = next((i for i, b in enumerate(self.blocks) if not b.batched), len(self.blocks))
        for block in self.blocks[:n_batched]:
            block.run(states)
        shared = (time.perf_counter() - started) / len(states)
        for state in states:
            own = time.perf_counter()
            for block in self.blocks[n_batched:]:
                block.run([state])
            state.timings["refine"] = shared + time.perf_counter() - own
            yield self._result(state)

    def _result(self, state: RefineState) -> RefineResult:
        mask = state.mask if state.mask is not None else empty_mask(state.size)
        report: dict[str, Any] = {
            "image_id": state.image_id,
            "prompt": state.prompt,
            "size": list(state.size),
            "seed": state.seed,
            "scores": {r: state.score(r) for r in self.score_roles},
            "mask_area": mask.area,
            "ssim_unmasked": _ssim_unmasked(state.image, state.original, mask),
            "emphasis": [list(e) for e in state.emphasis],
            "recipe": {
                "name": self.recipe_name,
                "hash": self.recipe_hash,
                "seed": self.seed,
                # --set values from the command line (grefine_kit.recipes.overrides), only when given
                **({"overrides": dict(self.recipe_overrides)} if self.recipe_overrides else {}),
            },
            "blocks": [b.label for b in self.blocks],
            **state.stages,
            "timings": dict(state.timings),
            "maps": {role: m.to_json() for role, m in state.maps.items()},
            "versions": package_versions(),
        }
        return RefineResult(
            image=state.image,
            mask=mask,
            maps=dict(state.maps),
            regions=state.regions,
            report=report,
            previews={role: tuple(p) for role, p in state.previews.items()},
        )


def _parse(value: Any) -> RegionPrompts:
    try:
        return value if isinstance(value, RegionPrompts) else RegionPrompts.parse(value)
    except ValueError as exc:
        raise RegionPromptError(str(exc)) from None


def _ssim_unmasked(image: Image.Image, original: Image.Image, mask: Mask) -> float | None:
    """SSIM of the refined image vs the input over the pixels the mask left alone (the whole
    image when it is empty): how much of what was to be kept changed. None when no SSIM-map
    pixel is left (a mask over nearly everything, an image under 11 pixels a side)."""
    from grefine_kit.errors import UserError
    from grefine_kit.metrics.fidelity import ssim_unmasked

    try:
        return ssim_unmasked(image, original, mask.binary)
    except UserError:
        return None


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str | None], ...]:
    found: list[tuple[str, str | None]] = []
    for dist in _VERSIONED:
        try:
            found.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            found.append((dist, None))
    return tuple(found)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the output (None when missing)."""
    return dict(_versions())
