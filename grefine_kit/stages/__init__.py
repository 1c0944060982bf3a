"""Refinement stages (diffusers inpaint / img2img) and their protocol.

Importing this package is cheap: diffusers loads only when a stage first runs.
"""

from __future__ import annotations

from typing import Any

from grefine_kit.stages.base import Stage, StageRequest, StageResult, derive_seed

__all__ = ["Stage", "StageRequest", "StageResult", "derive_seed", "required_weights"]


def required_weights(stage: Any) -> list[str]:
    """Hub ids a stage needs downloaded (``grefine fetch-weights``); [] for stages that say nothing."""
    method = getattr(stage, "required_weights", None)
    return list(method()) if callable(method) else []
