"""Refinement stages (diffusers inpaint / img2img) and their protocol.

Importing this package is cheap: diffusers loads only when a stage first runs.
"""

from __future__ import annotations

from typing import Any

from grefine_kit.stages.base import Stage, StageRequest, StageResult, derive_seed

__all__ = ["Stage", "StageRequest", "StageResult", "derive_seed", "required_weights"]


def required_weights(stage: Any) -> list[str]:
    """Hub ids a diffusers stage needs downloaded (``grefine fetch-weights``); [] for other
    stages (they declare their downloads through ``PartBase.fetch_weights``)."""
    from grefine_kit.stages.diffusion import _DiffusersStage

    return list(stage.required_weights()) if isinstance(stage, _DiffusersStage) else []
