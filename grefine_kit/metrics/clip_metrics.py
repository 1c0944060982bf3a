"""open_clip metrics on the shared backbone cache: CLIPScore and HPSv2.

- ``clipscore`` (Hessel et al. 2021): ``w · max(cos(E_img, E_txt), 0)``, ``w = 2.5``, with the
  text ``"A photo depicts " + prompt``; OpenAI CLIP ViT-B/32 by default. Range [0, 2.5].
- ``hpsv2`` (Wu et al. 2023, Human Preference Score v2): open_clip ViT-H-14 with the HPS v2 or
  v2.1 checkpoint; the score is the cosine of the image and prompt features. Range [-1, 1]
  (real images sit around 0.2-0.3).

Both load through ``grefine_kit.models.get_backbone``, so a metric and an indicator naming the
same CLIP share one loaded copy, with the same offline rules and file rules (safetensors, or
``torch.load(weights_only=True)``). Images are preprocessed as CLIP's evaluation transform:
bicubic resize of the shorter side to the model size, centre crop, CLIP mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np
from PIL import Image

from grefine_kit.indicators._clip_common import check_device, clip_file_findings, clip_hub_weights
from grefine_kit.metrics.base import MetricBase, check_prompts
from grefine_kit.parts.base import HubWeights, Missing

if TYPE_CHECKING:
    import torch

    from grefine_kit.models.backbone import SurgeryCLIP
    from grefine_kit.models.loading import BackboneSpec

__all__ = ["HPS_CHECKPOINTS", "CLIPScore", "HPSv2", "clip_eval_pixels"]

#: HPS versions -> the checkpoint file on the hub (xswu/HPSv2)
HPS_CHECKPOINTS = {
    "v2": "xswu/HPSv2/HPS_v2_compressed.pt",
    "v2.1": "xswu/HPSv2/HPS_v2.1_compressed.pt",
}

_DTYPES = ("float32", "float16", "bfloat16")
_pos_int = [attrs.validators.instance_of(int), attrs.validators.ge(1)]


def clip_eval_pixels(
    images: Sequence[Image.Image], size: tuple[int, int], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """CLIP's evaluation transform: ``[B, 3, H, W]`` float32 (shorter side resized bicubic to
    fit ``size``, centre crop, normalised with ``mean``/``std``)."""
    import torch

    h, w = size
    arrays = []
    for image in images:
        im = image.convert("RGB")
        scale = max(h / im.height, w / im.width)
        rw, rh = max(w, round(im.width * scale)), max(h, round(im.height * scale))
        im = im.resize((rw, rh), Image.Resampling.BICUBIC)
        left, top = (rw - w) // 2, (rh - h) // 2
        arrays.append(np.asarray(im.crop((left, top, left + w, top + h))))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _cosines(
    backbone: SurgeryCLIP, images: Sequence[Image.Image], texts: Sequence[str], batch: int
) -> np.ndarray:
    """``cos(image_i, text_i)`` per pair as a float64 numpy array (plain CLIP, no surgery)."""
    import torch
    import torch.nn.functional as F

    out = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        pixels = clip_eval_pixels(chunk, backbone.image_size, backbone.mean, backbone.std)
        with torch.no_grad():
            img = backbone.model.encode_image(pixels.to(backbone.device, backbone.dtype)).float()
        txt = backbone.encode_text(list(texts[start : start + batch]))  # normalised, cached
        out.append((F.normalize(img, dim=-1) * txt).sum(dim=-1).double().cpu().numpy())
    return np.concatenate(out)


@attrs.define(kw_only=True)
class _OpenClipMetric(MetricBase):
    device: str = attrs.field(default="auto", validator=check_device)
    dtype: str = attrs.field(default="float32", validator=attrs.validators.in_(_DTYPES))
    batch_size: int = attrs.field(default=16, validator=_pos_int)
    _backbone: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    needs_prompt: ClassVar[bool] = True
    lower_better: ClassVar[bool] = False

    def _spec(self) -> BackboneSpec:  # pragma: no cover - overridden
        raise NotImplementedError

    def preflight(self) -> list[Missing]:
        """A device this machine lacks."""
        from grefine_kit.parts.checks import check_device as device_findings

        return device_findings(self.device)

    def backbone(self) -> SurgeryCLIP:
        """The shared open_clip backbone (loaded on first use)."""
        if self._backbone is None:
            from grefine_kit.models.loading import get_backbone

            self._backbone = get_backbone(self._spec())
        return self._backbone


@attrs.define(kw_only=True)
class CLIPScore(_OpenClipMetric):
    """CLIPScore (``clipscore``): ``w · max(cos, 0)`` of image and ``prefix + prompt``; higher = better.

    Options: ``model``/``weights`` (open_clip name + tag, ``hf-hub:``/``local-dir:`` or a checkpoint
    file, as the indicators' backbone options; default OpenAI ViT-B/32, Hessel et al.'s), ``w``
    (2.5), ``prefix`` (``"A photo depicts "``), ``device``, ``dtype``, ``batch_size``.
    """

    model: str = attrs.field(default="ViT-B-32-quickgelu", validator=attrs.validators.instance_of(str))
    weights: str = attrs.field(default="openai", validator=attrs.validators.instance_of(str))
    w: float = attrs.field(default=2.5, converter=float, validator=attrs.validators.gt(0))
    prefix: str = attrs.field(default="A photo depicts ", validator=attrs.validators.instance_of(str))

    name: ClassVar[str] = "clipscore"

    @property
    def score_range(self) -> tuple[float, float]:
        return (0.0, self.w)

    def required_weights(self) -> list[HubWeights]:
        """The open_clip backbone's hub files (none for local or random weights)."""
        found = clip_hub_weights(self.model, self.weights)
        return [found] if found is not None else []

    def preflight(self) -> list[Missing]:
        """A device this machine lacks; a local CLIP file that is not there."""
        return super().preflight() + clip_file_findings(self.model, self.weights)

    def _spec(self) -> BackboneSpec:
        from grefine_kit.models.loading import BackboneSpec

        return BackboneSpec(model=self.model, weights=self.weights, device=self.device, dtype=self.dtype)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        prompts = check_prompts(self.name, images, prompts)
        if not images:
            return []
        cos = _cosines(self.backbone(), images, [self.prefix + p for p in prompts], self.batch_size)
        return [float(self.w * max(c, 0.0)) for c in cos]


@attrs.define(kw_only=True)
class HPSv2(_OpenClipMetric):
    """Human Preference Score v2 (``hpsv2``): cosine of image and prompt features; higher = better.

    Options: ``version`` (``"v2.1"``, default, or ``"v2"``: picks the hub checkpoint),
    ``checkpoint`` (a local ``.pt``/``.safetensors`` file or a hub file ``org/repo/file``;
    overrides ``version``), ``model`` (the open_clip architecture, ``ViT-H-14``), ``device``,
    ``dtype``, ``batch_size``.
    """

    version: str = attrs.field(default="v2.1", validator=attrs.validators.in_(tuple(HPS_CHECKPOINTS)))
    checkpoint: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    model: str = attrs.field(default="ViT-H-14", validator=attrs.validators.instance_of(str))

    name: ClassVar[str] = "hpsv2"
    score_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    def required_weights(self) -> list[HubWeights]:
        """The HPS checkpoint when it is a hub file (a local one is checked on load)."""
        from grefine_kit.metrics._hub import is_local, split_hub_file

        value = self.checkpoint or HPS_CHECKPOINTS[self.version]
        if is_local(value):
            return []
        repo, filename = split_hub_file(value)
        return [HubWeights(repo, (filename,), label=f"HPSv2 checkpoint {value}")]

    def checkpoint_file(self) -> str:
        """The local checkpoint path (fetched from the hub cache, or the network, on first use)."""
        from grefine_kit.metrics._hub import hub_file

        return hub_file(self.checkpoint or HPS_CHECKPOINTS[self.version], "the HPSv2 checkpoint")

    def _spec(self) -> BackboneSpec:
        from grefine_kit.models.loading import BackboneSpec

        return BackboneSpec(
            model=self.model, weights=self.checkpoint_file(), device=self.device, dtype=self.dtype
        )

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        prompts = check_prompts(self.name, images, prompts)
        if not images:
            return []
        return [float(c) for c in _cosines(self.backbone(), images, prompts, self.batch_size)]
