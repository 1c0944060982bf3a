"""The one table of roles: which part kind fills which slot of a recipe and of the Refiner.

Every module that deals with a recipe's parts (``recipe``, ``fetch``, ``api``, ``pipeline``,
``blocks``, the runners) iterates over :data:`ROLES` instead of spelling the role names out, so a
new role is added here once. The order is the order the Refiner runs the blocks in.
"""

from __future__ import annotations

import attrs

__all__ = [
    "ALIGNMENT",
    "ANY_STAGE",
    "COMBINER",
    "GLOBAL",
    "INDICATOR_ROLES",
    "MASKED",
    "PERCEPTUAL",
    "REGIONS",
    "ROLES",
    "STAGE1",
    "STAGE2",
    "STAGE_ROLES",
    "Role",
    "role",
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


@attrs.frozen
class Role:
    """One slot.

    Attributes:
        name: the role's name (``perceptual``, ``combiner``, ``stage1``, ...): the Refiner's
            keyword and the key of its report entry.
        kind: the registry kind that fills it (``indicator``, ``combiner``, ``regions``, ``stage``).
        table: the recipe table that names the part (``indicators.perceptual``, ``stage1``, ...).
        tag: a short file tag for saved maps (``pq`` / ``aq``; empty for non-indicators).
        stage_role: for stages, the ``Stage.role`` the slot needs (``masked`` / ``global``).
    """

    name: str
    kind: str
    table: str
    tag: str = ""
    stage_role: str = ""

    @property
    def path(self) -> tuple[str, ...]:
        """The recipe table as a key path (``("indicators", "perceptual")``)."""
        return tuple(self.table.split("."))


ROLES: tuple[Role, ...] = (
    Role(PERCEPTUAL, "indicator", f"indicators.{PERCEPTUAL}", tag="pq"),
    Role(ALIGNMENT, "indicator", f"indicators.{ALIGNMENT}", tag="aq"),
    Role(COMBINER, "combiner", COMBINER),
    Role(REGIONS, "regions", REGIONS),
    Role(STAGE1, "stage", STAGE1, stage_role=MASKED),
    Role(STAGE2, "stage", STAGE2, stage_role=GLOBAL),
)

#: the indicator roles, in order (their maps live in ``RefineState.maps`` under these names)
INDICATOR_ROLES: tuple[str, ...] = tuple(r.name for r in ROLES if r.kind == "indicator")
#: the stage roles, in order
STAGE_ROLES: tuple[str, ...] = tuple(r.name for r in ROLES if r.kind == "stage")

_BY_NAME = {r.name: r for r in ROLES}


def role(name: str) -> Role:
    """The role called ``name``; ``KeyError`` naming the known roles otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown role {name!r}; roles: {', '.join(_BY_NAME)}") from None
