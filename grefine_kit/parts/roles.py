"""The one table of roles: which part kind fills which slot of a recipe and of the Refiner.

Every module that deals with a recipe's parts (``recipe``, ``fetch``, ``api``, the refiner's
blocks, the runners) iterates over a recipe's roles instead of spelling the role names out.

:data:`ROLES` holds the built-in slots. A recipe may add more without any edit here:

- an extra indicator role, ``[indicators.<name>]``: :func:`indicator_role` (its map is the
  state entry ``maps.<name>``, its file tag the name);
- an extra stage, ``[stages.<name>]``: :func:`extra_stage_role` (run after ``stage2`` in
  written order; masked or global by its part's declared ``role``).

:func:`role_for` gives the role of a name and part kind, :func:`in_run_order` orders a set of
roles the way the Refiner runs them: indicators (built-in, then extra), combiner, regions,
stage 1, stage 2, extra stages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

__all__ = [
    "ALIGNMENT",
    "ANY_STAGE",
    "COMBINER",
    "GLOBAL",
    "INDICATORS",
    "INDICATOR_ROLES",
    "MASKED",
    "PERCEPTUAL",
    "REGIONS",
    "RESERVED_NAMES",
    "ROLES",
    "STAGE1",
    "STAGE2",
    "STAGES",
    "STAGE_ROLES",
    "Role",
    "check_extra_name",
    "extra_stage_role",
    "in_run_order",
    "indicator_role",
    "role",
    "role_for",
]

#: the built-in role names; code outside this module uses these constants, never the strings
PERCEPTUAL = "perceptual"
ALIGNMENT = "alignment"
COMBINER = "combiner"
REGIONS = "regions"
STAGE1 = "stage1"
STAGE2 = "stage2"
#: what a stage part can do (``Stage.role``): repaint inside a mask, pass over the whole image,
#: or either
MASKED = "masked"
GLOBAL = "global"
ANY_STAGE = "any"
#: the recipe tables that group indicator roles and extra stages
INDICATORS = "indicators"
STAGES = "stages"
#: part kinds of the registry that fill the slots
INDICATOR_KIND = "indicator"
STAGE_KIND = "stage"


@attrs.frozen
class Role:
    """One slot.

    Attributes:
        name: the role's name (``perceptual``, ``combiner``, ``stage1``, ...): the Refiner's
            keyword and the key of its report entry.
        kind: the registry kind that fills it (``indicator``, ``combiner``, ``regions``, ``stage``).
        table: the recipe table that names the part (``indicators.perceptual``, ``stage1``, ...).
        tag: a short file tag for saved maps (``pq`` / ``aq``; empty for non-indicators).
        stage_role: for stages, the ``Stage.role`` the slot needs (``masked`` / ``global``;
            ``any`` for an extra stage: its part's declared role decides).
        builtin: True for the slots of :data:`ROLES`, False for a recipe's extra roles.
    """

    name: str
    kind: str
    table: str
    tag: str = ""
    stage_role: str = ""
    builtin: bool = True

    @property
    def path(self) -> tuple[str, ...]:
        """The recipe table as a key path (``("indicators", "perceptual")``)."""
        return tuple(self.table.split("."))


ROLES: tuple[Role, ...] = (
    Role(PERCEPTUAL, INDICATOR_KIND, f"{INDICATORS}.{PERCEPTUAL}", tag="pq"),
    Role(ALIGNMENT, INDICATOR_KIND, f"{INDICATORS}.{ALIGNMENT}", tag="aq"),
    Role(COMBINER, "combiner", COMBINER),
    Role(REGIONS, "regions", REGIONS),
    Role(STAGE1, STAGE_KIND, STAGE1, stage_role=MASKED),
    Role(STAGE2, STAGE_KIND, STAGE2, stage_role=GLOBAL),
)

#: the indicator roles, in order (their maps live in ``RefineState.maps`` under these names)
INDICATOR_ROLES: tuple[str, ...] = tuple(r.name for r in ROLES if r.kind == INDICATOR_KIND)
#: the built-in stage roles, in order
STAGE_ROLES: tuple[str, ...] = tuple(r.name for r in ROLES if r.kind == STAGE_KIND)

_BY_NAME = {r.name: r for r in ROLES}


def role(name: str) -> Role:
    """The role called ``name``; ``KeyError`` naming the known roles otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown role {name!r}; roles: {', '.join(_BY_NAME)}") from None


#: names an extra role cannot take: the report's and the state's own keys, the Refiner's
#: keywords (an extra stage's report entry and timing sit beside them)
RESERVED_NAMES = frozenset(
    {
        "blocks", "emphasis", "image", "image_id", "mask", "mask_area", "maps", "options",
        "part_names", "prompt", "recipe", "recipe_hash", "recipe_name", "recipe_overrides",
        "refine", "roles", "scores", "seed", "size", "ssim_unmasked", "timings", "versions",
        "alignment_report", "heatmap", "map", "report", "pq", "aq",
    }
)  # fmt: skip
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def check_extra_name(name: str, kind: str) -> None:
    """``ValueError`` unless ``name`` can be an extra role of ``kind``: lowercase letters,
    digits, ``-``/``_`` (up to 40, a letter first), not a built-in role of another kind or slot,
    and not one of :data:`RESERVED_NAMES`. (That it is no ``[refiner]`` option either is checked
    where options and roles meet: the recipe and the Refiner.)"""
    if not _NAME.match(name):
        raise ValueError(f"role name {name!r}: use lowercase letters, digits, '-' or '_', a letter first")
    if name in _BY_NAME or name in RESERVED_NAMES:
        raise ValueError(f"role name {name!r} is taken (a built-in role or a report key)")
    if kind not in (INDICATOR_KIND, STAGE_KIND):
        raise ValueError(f"only indicators and stages take extra roles, not {kind}s")


def indicator_role(name: str) -> Role:
    """The indicator role called ``name``: a built-in one, or an extra ``[indicators.<name>]``
    role whose map is ``maps.<name>`` and whose file tag is ``name``."""
    found = _BY_NAME.get(name)
    if found is not None and found.kind == INDICATOR_KIND:
        return found
    check_extra_name(name, INDICATOR_KIND)
    return Role(name, INDICATOR_KIND, f"{INDICATORS}.{name}", tag=name, builtin=False)


def extra_stage_role(name: str) -> Role:
    """The extra stage ``[stages.<name>]``: run after stage 2; its part's ``role`` decides
    whether it runs masked or global (``any``: masked when the recipe has a mask)."""
    check_extra_name(name, STAGE_KIND)
    return Role(name, STAGE_KIND, f"{STAGES}.{name}", stage_role=ANY_STAGE, builtin=False)


def role_for(name: str, kind: str) -> Role:
    """The role a part of ``kind`` fills under ``name``: the built-in slot of that name, or an
    extra indicator / stage role. ``ValueError`` for a name that fits neither."""
    found = _BY_NAME.get(name)
    if found is not None:
        if found.kind != kind:
            raise ValueError(f"role {name!r} takes a {found.kind}, not a {kind}")
        return found
    if kind == INDICATOR_KIND:
        return indicator_role(name)
    if kind == STAGE_KIND:
        return extra_stage_role(name)
    raise ValueError(f"unknown role {name!r}; roles: {', '.join(_BY_NAME)}")


_PHASE = {INDICATOR_KIND: 0, "combiner": 1, "regions": 2, STAGE_KIND: 3}


def in_run_order(roles: Iterable[Role]) -> tuple[Role, ...]:
    """``roles`` in the order the Refiner runs them: indicators (built-in in table order, then
    extra ones as given), combiner, regions, stage 1, stage 2, then extra stages as given."""
    index = {r.name: i for i, r in enumerate(ROLES)}

    def key(r: Role) -> tuple[int, int, int]:
        extra_stage = int(r.kind == STAGE_KIND and not r.builtin)
        return (_PHASE[r.kind], extra_stage, index.get(r.name, len(ROLES)))

    return tuple(sorted(roles, key=key))  # stable: extra roles keep their given order
