"""Tiny random-weight pipelines for the offline ``tiny`` recipe and for tests.

``model = "tiny"`` (alias ``"grefine-tiny"``) selects an SDXL-structured pipeline, ``"tiny-sd"``
(alias ``"grefine-tiny-sd"``) an SD 1.x-structured one, ``"tiny-sd3"`` an SD3-structured one and
``"tiny-flux-fill"`` a FLUX-Fill-structured one (inpainting only). The weights are RANDOM (fixed seed):
these pipelines exercise the whole refinement flow with no download, but what they draw is noise.
Both tasks of one arch share the VAE, the text encoders and the tokenizers, like real models
whose components are shared (only the UNets differ: 9 input channels for inpainting, 4 else).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

__all__ = ["TINY_MODELS", "TINY_SEED", "tiny_arch", "tiny_pipeline_for"]

#: model names -> architecture of the tiny pipeline
TINY_MODELS = {
    "tiny": "sdxl",
    "grefine-tiny": "sdxl",
    "tiny-sd": "sd",
    "grefine-tiny-sd": "sd",
    # transformer families (grefine_kit.stages.tiny_families): not shared between tasks
    "tiny-sd3": "sd3",
    "tiny-flux-fill": "flux-fill",
}
#: the seed of the tiny random weights (fixed: the tiny recipe is reproducible)
TINY_SEED = 0

_lock = threading.Lock()
_components: dict[tuple[str, str, str], dict[str, Any]] = {}


def tiny_arch(model: str) -> str | None:
    """``"sdxl"``/``"sd"`` if ``model`` names a tiny pipeline, else None."""
    return TINY_MODELS.get(model.strip().lower())


def tiny_pipeline_for(arch: str, task: str, device: str, dtype: torch.dtype) -> DiffusionPipeline:
    """A tiny ``task`` pipeline (``"inpaint"``/``"img2img"``) on ``device`` in ``dtype``; the
    components are built once per (arch, device, dtype) and shared between tasks."""
    import torch

    from grefine_kit.stages.tiny_models import tiny_components, tiny_pipeline

    if arch in ("sd3", "flux-fill"):
        from grefine_kit.errors import UserError
        from grefine_kit.stages.tiny_families import tiny_family_pipeline

        if arch == "flux-fill" and task != "inpaint":
            raise UserError("tiny-flux-fill is an inpainting model (FLUX Fill); use it for stage 1 only")
        pipe = tiny_family_pipeline(arch, task, seed=TINY_SEED)
        first = next(iter(pipe.transformer.parameters()))
        if first.dtype != dtype or str(first.device) != str(device):  # diffusers warns on any cast
            pipe.to(device=device, dtype=dtype)
        return pipe
    key = (arch, str(device), str(dtype))
    with _lock:
        comps = _components.get(key)
        if comps is None:
            comps = tiny_components(arch, seed=TINY_SEED)
            for value in comps.values():
                if isinstance(value, torch.nn.Module):
                    first = next(iter(value.parameters()), None)
                    # diffusers warns on every dtype cast, even a no-op one: cast only when needed
                    if first is not None and (first.dtype != dtype or str(first.device) != str(device)):
                        value.to(device=device, dtype=dtype)
            _components[key] = comps
    return tiny_pipeline(task, arch, seed=TINY_SEED, components=comps)


def clear() -> None:
    """Forget the built tiny components (tests)."""
    with _lock:
        _components.clear()
