"""``PyiqaMetric``: one pyiqa no-reference metric behind grefine_kit's ``Metric`` protocol.

Light to import (registration imports this module): numpy, torch and pyiqa load on use.

pyiqa is imported when the metric is first used (``score`` or ``load``), never at registration.
Inputs are converted as pyiqa's own loader does: RGB, ``[1, 3, H, W]`` float32 in [0, 1], one
image per call (images differ in size). Direction and range come from the installed pyiqa.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import MissingDependencyError, UserError
from grefine_kit.metrics.base import check_prompts
from grefine_pyiqa._table import NEEDS_PROMPT, NR_METRICS, parse_range

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["LICENCE", "PyiqaMetric", "to_pyiqa_tensor"]

LICENCE = (
    "pyiqa is licensed under the PolyForm Noncommercial License 1.0.0: non-commercial use only; "
    "each metric's weights carry their own terms"
)


def to_pyiqa_tensor(image: Image.Image) -> torch.Tensor:
    """``[1, 3, H, W]`` float32 RGB in [0, 1] (what ``pyiqa.utils.imread2tensor`` gives)."""
    import numpy as np
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _known(_inst: Any, _attribute: Any, value: str) -> None:
    if value not in NR_METRICS:
        import difflib

        close = difflib.get_close_matches(value, list(NR_METRICS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown pyiqa no-reference metric {value!r}{hint}")


@attrs.define(kw_only=True)
class PyiqaMetric:
    """A pyiqa no-reference metric (``pyiqa:<name>``).

    Options: ``metric`` (the pyiqa name, set by the registry entry), ``device`` (``auto``/``cpu``/
    ``cuda``...), ``options`` (extra keyword arguments for ``pyiqa.create_metric``, e.g.
    ``{pretrained_model_path = "niqe_params.mat"}`` to run NIQE from a local parameter file).
    """

    metric: str = attrs.field(validator=[attrs.validators.instance_of(str), _known])
    device: str = attrs.field(default="auto", validator=attrs.validators.instance_of(str))
    options: Mapping[str, Any] = attrs.field(factory=dict)
    _model: Any = attrs.field(default=None, init=False, repr=False, eq=False)
    _on: torch.device | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def name(self) -> str:
        return f"pyiqa:{self.metric}"

    @property
    def lower_better(self) -> bool:
        if self._model is not None:
            return bool(self._model.lower_better)
        return NR_METRICS[self.metric][0]

    @property
    def score_range(self) -> tuple[float, float]:
        return parse_range(NR_METRICS[self.metric][1])

    @property
    def needs_prompt(self) -> bool:
        return self.metric in NEEDS_PROMPT

    licence = LICENCE

    def load(self) -> torch.nn.Module:
        """The pyiqa metric module (created on first use, in eval mode, no gradients)."""
        if self._model is None:
            try:
                import pyiqa
                import torch
            except ImportError as exc:
                raise MissingDependencyError(
                    f"{self.name} needs pyiqa: pip install pyiqa (licence: {LICENCE})"
                ) from exc
            device = "cuda" if self.device == "auto" and torch.cuda.is_available() else self.device
            device = "cpu" if device == "auto" else device
            try:
                model = pyiqa.create_metric(self.metric, device=torch.device(device), **dict(self.options))
            except (OSError, ConnectionError) as exc:
                raise MissingDependencyError(
                    f"{self.name}: pyiqa could not get its weights ({type(exc).__name__}: {str(exc)[:200]}); "
                    f"run once with network access (they go to {torch.hub.get_dir()}/pyiqa)"
                ) from exc
            except Exception as exc:  # pyiqa raises many kinds for bad options
                if "urlopen" in str(exc) or "Name or service" in str(exc):
                    raise MissingDependencyError(
                        f"{self.name}: pyiqa could not download its weights: {exc}"
                    ) from exc
                raise UserError(
                    f"{self.name}: pyiqa.create_metric failed: {type(exc).__name__}: {exc}"
                ) from exc
            self._model = model.eval()
            self._on = torch.device(device)
        return self._model

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        import torch

        texts = check_prompts(self.name, images, prompts) if self.needs_prompt else None
        if not images:
            return []
        model = self.load()
        out = []
        for i, image in enumerate(images):
            x = to_pyiqa_tensor(image).to(self._on)
            with torch.no_grad():
                value = model(x, caption_list=[texts[i]]) if texts is not None else model(x)
            number = float(value.detach().float().reshape(-1)[0].cpu())
            if not math.isfinite(number):
                raise RuntimeError(f"{self.name} gave {number} for image {i}")
            out.append(number)
        return out
