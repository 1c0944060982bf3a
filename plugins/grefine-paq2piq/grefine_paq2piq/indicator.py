"""The ``paq2piq`` indicator: PaQ-2-PiQ's picture score and its 20 × 20 local quality map.

Per image (at full resolution up to ``max_side``): RGB in [0, 1] with no mean/std normalisation
(as the model was trained), one body forward, then RoIPool + head on the whole-image box and the
grid's boxes. Raw outputs are MOS-like, about 0..100 (the training data's scale), higher = better.

Importing this module imports no torch (``grefine doctor`` and preflight build the part):
the model and weight modules load inside ``load`` and ``raw_scores``.

Mapping to the toolkit's [0, 1] convention: ``score = clip(raw_global / 100, 0, 1)`` and the map
is ``clip(raw_block / 100, 0, 1)`` per block, upsampled to the image's ``(H, W)``. The raw values
are in ``details`` (``raw_score``; ``raw_map`` as a ``grid × grid`` array, top row first).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np
from attrs import validators as v
from PIL import Image

from grefine_kit.parts.base import FILE, HubWeights, Missing, PartBase
from grefine_kit.parts.roles import PERCEPTUAL
from grefine_kit.types import QualityMap
from grefine_paq2piq.refs import DEFAULT_WEIGHTS, GRID, HUB_PREFIX, parse_hub_ref

if TYPE_CHECKING:
    import torch

    from grefine_paq2piq.model import PaQ2PiQNet

__all__ = ["RAW_SCALE", "PaQ2PiQ"]

#: raw PaQ-2-PiQ outputs are on a 0..100 MOS scale
RAW_SCALE = 100.0
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|meta|hpu|mtia|privateuseone)(:\d+)?")
#: below this the ResNet body has no 2 × 2 feature cell left to pool: smaller images are upscaled
MIN_SIDE = 64


def _not_bool(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be an integer, not a boolean ({value!r})")


def _max_side(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SIDE:
        raise ValueError(f"{attribute.name} must be None or an integer >= {MIN_SIDE}; got {value!r}")


def _device(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    """``auto`` or a torch device name; checked without importing torch (torch checks the
    rest, e.g. ``cuda:7`` on a one-GPU machine, when the model loads)."""
    if value == "auto":
        return
    if _DEVICE.fullmatch(value) is None:
        raise ValueError(f"device must be 'auto' or a torch device like 'cpu'; got {value!r}")


def _weights(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ValueError("weights must not be empty")
    if value.startswith(HUB_PREFIX):
        parse_hub_ref(value)  # a malformed reference fails at construction, not at first use


@attrs.define(kw_only=True)
class PaQ2PiQ(PartBase):
    """PaQ-2-PiQ as a quality-map indicator (see the module docstring).

    Options:
        weights: a checkpoint path, ``hf-hub:ORG/REPO/FILE`` (local cache only) or ``random[:SEED]``
            (tests). Default: the file pyiqa publishes (``DEFAULT_WEIGHTS``; CC BY-NC).
        device: ``auto`` (cuda when available) or a torch device.
        max_side: the longer side is downscaled (area filter) to this many pixels when larger
            (default 2048: every generator output runs at full resolution, while a 6000-px photo
            does not need ~10 GB for the body's activations); ``None`` never downscales.
        grid: blocks per side of the local map (20, as published).
        interpolation: ``bilinear`` (between block centres, default) or ``nearest`` (each block
            constant, the published view) for upsampling the map.
    """

    weights: str = attrs.field(default=DEFAULT_WEIGHTS, validator=[v.instance_of(str), _weights])
    device: str = attrs.field(default="auto", validator=[v.instance_of(str), _device])
    max_side: int | None = attrs.field(default=2048, validator=_max_side)
    grid: int = attrs.field(default=GRID, validator=[v.instance_of(int), _not_bool, v.ge(1), v.le(64)])
    interpolation: str = attrs.field(default="bilinear", validator=v.in_(("bilinear", "nearest")))

    needs_prompt: ClassVar[bool] = False
    quality_kind: ClassVar[str] = PERCEPTUAL
    name: ClassVar[str] = "paq2piq"

    def _resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def load(self) -> PaQ2PiQNet:
        """Load the weights now (else on first ``score``); returns the shared model."""
        from grefine_paq2piq.weights import get_model  # torch: only when a model is needed

        return get_model(self.weights, self._resolved_device())

    def required_weights(self) -> list[HubWeights]:
        """The checkpoint when ``weights`` is a hub reference (``grefine doctor`` looks for it
        in the local Hugging Face cache); none for ``random`` or a local file."""
        if not self.weights.startswith(HUB_PREFIX):
            return []
        ref = parse_hub_ref(self.weights)
        label = f"PaQ-2-PiQ weights {self.weights.removeprefix(HUB_PREFIX)}"
        return [HubWeights(ref.repo_id, (ref.filename,), revision=ref.revision or "", label=label)]

    def preflight(self) -> list[Missing]:
        """A local checkpoint file that is not there; a device this machine lacks."""
        from grefine_kit.parts.checks import check_device

        found = check_device(self.device)
        local = self.weights != "random" and not self.weights.startswith(("random:", HUB_PREFIX))
        if local and not Path(self.weights).expanduser().is_file():
            found.append(Missing(f"PaQ-2-PiQ weights file {self.weights}", kind=FILE, fix="fix weights"))
        return found

    def fetch_weights(self) -> list[str]:
        """``grefine fetch-weights``: download a hub reference into the Hugging Face cache."""
        if self.weights == "random" or self.weights.startswith("random:"):
            return ["random weights: nothing to fetch"]
        if not self.weights.startswith(HUB_PREFIX):
            return [f"local file {self.weights}: nothing to fetch"]
        from huggingface_hub import hf_hub_download

        ref = parse_hub_ref(self.weights)
        path = hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision)
        return [f"{self.weights} -> {path} (CC BY-NC: non-commercial use only)"]

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """The model input for ``image``: ``[1, 3, H', W']`` float32 in [0, 1] (capped/upscaled)."""
        import torch

        rgb = image.convert("RGB")
        w, h = rgb.size
        scale = 1.0
        if self.max_side is not None and max(w, h) > self.max_side:
            scale = self.max_side / max(w, h)
        if min(w, h) * scale < MIN_SIDE:
            scale = MIN_SIDE / min(w, h)
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb = rgb.resize(size, Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC)
        arr = np.asarray(rgb, np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()

    def raw_scores(self, image: Image.Image) -> tuple[float, np.ndarray]:
        """``(global raw score, grid × grid raw block scores)`` for one image."""
        import torch

        from grefine_paq2piq.model import boxes_for

        model = self.load()
        device = next(model.parameters()).device
        pixels = self.pixels(image).to(device)
        boxes = boxes_for(pixels.shape[2], pixels.shape[3], self.grid, device=device)
        with torch.inference_mode():
            raw = model(pixels, boxes).float().cpu().numpy()
        return float(raw[0]), raw[1:].reshape(self.grid, self.grid)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[QualityMap]:
        """One QualityMap per image: score and map in [0, 1] (raw / 100, clipped), 1 = good."""
        results = []
        for image in images:  # one at a time: each image keeps its own resolution and boxes
            raw_global, raw_map = self.raw_scores(image)
            blocks = np.clip(raw_map / RAW_SCALE, 0.0, 1.0).astype(np.float32)
            resample = _RESAMPLE[self.interpolation]
            qmap = np.asarray(Image.fromarray(blocks, "F").resize(image.size, resample), np.float32)
            results.append(
                QualityMap(
                    map=np.clip(qmap, 0.0, 1.0),
                    score=float(np.clip(raw_global / RAW_SCALE, 0.0, 1.0)),
                    indicator=self.name,
                    details={
                        "raw_score": raw_global,
                        "raw_map": raw_map,
                        "raw_map_min": float(raw_map.min()),
                        "raw_map_max": float(raw_map.max()),
                        "raw_scale": RAW_SCALE,
                    },
                )
            )
        return results
