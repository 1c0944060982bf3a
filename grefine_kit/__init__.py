"""grefine_kit: find the bad regions of AI-generated images and refine only there.

The public API is loaded lazily so that ``import grefine_kit`` (and ``grefine --help``)
imports no heavy library (torch, open_clip, diffusers, transformers, spaCy, Stanza).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grefine_kit.parts.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "Recipe": "grefine_kit.recipes.recipe",
    "QualityMap": "grefine_kit.types",
    "Mask": "grefine_kit.types",
    "PromptTree": "grefine_kit.types",
    "AlignmentReport": "grefine_kit.types",
    "Refiner": "grefine_kit.refiner.refiner",
    "RefineResult": "grefine_kit.refiner.refiner",
    "RefinerOptions": "grefine_kit.refiner.options",
    "RefineState": "grefine_kit.refiner.state",
    "Region": "grefine_kit.regions.base",
    "load_image": "grefine_kit.images.loading",
    "score": "grefine_kit.api",
    "refine": "grefine_kit.api",
    "create_part": "grefine_kit.parts.registry",
    "get_registry": "grefine_kit.parts.registry",
}

__all__ = [
    "AlignmentReport",
    "Mask",
    "PromptTree",
    "QualityMap",
    "Recipe",
    "RefineResult",
    "RefineState",
    "Refiner",
    "RefinerOptions",
    "Region",
    "__version__",
    "create_part",
    "get_registry",
    "hookimpl",
    "load_image",
    "refine",
    "score",
]

if TYPE_CHECKING:
    from grefine_kit.api import refine, score
    from grefine_kit.images.loading import load_image
    from grefine_kit.parts.registry import create_part, get_registry
    from grefine_kit.recipes.recipe import Recipe
    from grefine_kit.refiner.options import RefinerOptions
    from grefine_kit.refiner.refiner import Refiner, RefineResult
    from grefine_kit.refiner.state import RefineState
    from grefine_kit.regions.base import Region
    from grefine_kit.types import AlignmentReport, Mask, PromptTree, QualityMap


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'grefine_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
