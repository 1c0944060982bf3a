"""Refinement stages (diffusers inpaint / img2img) and their protocol.

Importing this package is cheap: diffusers loads only when a stage first runs.
"""

from __future__ import annotations

from typing import Any

from grefine_kit.stages.base import Stage, StageRequest, StageResult, derive_seed

__all__ = ["Stage", "StageRequest", "StageResult", "derive_seed", "required_weights"]


def required_weights(stage: Any) -> list[str]:
    """The hub repos ``stage`` declares it loads (``PartBase.required_weights``); [] for a
    stage that declares none."""
    from grefine_kit.parts.base import as_part

    return [w.repo for w in as_part(stage).required_weights()]
