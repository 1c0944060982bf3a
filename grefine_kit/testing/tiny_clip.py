"""A tiny random-weight open_clip CLIP for tests (no network), and helpers that save it in the
formats ``grefine_kit.models.loading`` reads, so tests exercise the real loading code.

Random weights: nothing these models output means anything about image quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import open_clip

from grefine_kit.models.tiny import build_tiny_clip_model, tiny_clip_config

__all__ = [
    "build_tiny_clip",
    "save_tiny_clip_local_dir",
    "save_tiny_clip_openai_checkpoint",
    "tiny_clip_config",
]


def build_tiny_clip(seed: int = 0, image_size: int = 224) -> open_clip.CLIP:
    """A real ``open_clip.CLIP`` (vocab 49408, context 77) with random weights from ``seed``, eval mode."""
    return build_tiny_clip_model(seed=seed, image_size=image_size)


def _state(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def save_tiny_clip_local_dir(
    path: str | Path, seed: int = 0, image_size: int = 224, model: Any = None
) -> Path:
    """Write an open_clip ``local-dir:`` folder (``open_clip_config.json`` + ``open_clip_model.safetensors``).

    Load it with ``BackboneSpec(model=f"local-dir:{path}")``. Returns the folder.
    """
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else build_tiny_clip(seed, image_size)
    cfg = tiny_clip_config(int(model.visual.image_size[0]))
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}, indent=2)
    )
    save_file(_state(model), str(folder / "open_clip_model.safetensors"))
    return folder


def save_tiny_clip_openai_checkpoint(
    path: str | Path, seed: int = 0, image_size: int = 224, model: Any = None
) -> Path:
    """Write the tiny model's state dict in OpenAI CLIP key layout (``visual.conv1.weight``, ...).

    ``.safetensors`` suffix: a safetensors file; otherwise ``torch.save`` of a plain tensor dict
    (readable with ``weights_only=True``). Load it with ``BackboneSpec(weights=str(path))``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else build_tiny_clip(seed, image_size)
    # open_clip's CLIP class keeps OpenAI's key layout, so its state dict *is* the OpenAI layout.
    state = _state(model)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return path
