"""PickScore (Kirstain et al. 2023): a CLIP-H fine-tuned on Pick-a-Pic human preferences.

``score = logit_scale.exp() · cos(E_img, E_txt)`` with the transformers ``CLIPModel``
``yuvalkirstain/PickScore_v1`` and the processor of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``.
Higher = better; the range is ``[-s, s]`` for the model's scale ``s`` (100 for PickScore_v1,
real images score around 18-23). transformers is imported only when the model loads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs
from PIL import Image

from grefine_kit.errors import UserError
from grefine_kit.indicators._clip_common import check_device
from grefine_kit.metrics._hub import is_local, with_offline_rules
from grefine_kit.metrics.base import MetricBase, check_prompts
from grefine_kit.parts.base import HubWeights, Missing

if TYPE_CHECKING:
    import torch

__all__ = ["PickScore", "clear_pickscore_cache"]

_T = TypeVar("_T")

_CACHE: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()
_DTYPES = ("float32", "float16", "bfloat16")


def clear_pickscore_cache() -> None:
    """Forget the loaded PickScore models (tests, memory)."""
    with _LOCK:
        _CACHE.clear()


def _from_pretrained(cls: type[_T], name: str, what: str, **kwargs: Any) -> _T:
    """``cls.from_pretrained(name)`` with the indicators' offline rules (a folder loads directly)."""
    loader: Any = cls  # transformers' model and processor classes, each with its from_pretrained
    if is_local(name):
        try:
            return loader.from_pretrained(name, local_files_only=True, **kwargs)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load the {what} from {name}: {str(exc)[:300]}") from exc
    hint = (
        "Run once where the Hugging Face hub is reachable (the files go to the hub cache; copy it over), "
        "or point the option at a local folder saved with save_pretrained."
    )
    return with_offline_rules(
        f"the {what} {name!r}",
        lambda cache_only: loader.from_pretrained(name, local_files_only=cache_only, **kwargs),
        hint,
    )


def _features(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output from ``get_*_features`` (projected ``pooler_output``)."""
    return output if hasattr(output, "norm") else output.pooler_output


@attrs.define(kw_only=True)
class PickScore(MetricBase):
    """PickScore (``pickscore``): ``logit_scale.exp() · cos``; higher = better; needs a prompt.

    Options: ``model`` (hub id or folder of a transformers ``CLIPModel``), ``processor`` (hub id or
    folder of its ``CLIPProcessor``), ``device``, ``dtype``, ``batch_size``. Weights load with
    transformers' rules: safetensors when the repo has them, else ``torch.load(weights_only=True)``.
    """

    model: str = attrs.field(
        default="yuvalkirstain/PickScore_v1", validator=attrs.validators.instance_of(str)
    )
    processor: str = attrs.field(
        default="laion/CLIP-ViT-H-14-laion2B-s32B-b79K", validator=attrs.validators.instance_of(str)
    )
    device: str = attrs.field(default="auto", validator=check_device)
    dtype: str = attrs.field(default="float32", validator=attrs.validators.in_(_DTYPES))
    batch_size: int = attrs.field(
        default=16, validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)]
    )

    name: ClassVar[str] = "pickscore"
    lower_better: ClassVar[bool] = False
    needs_prompt: ClassVar[bool] = True
    score_range: ClassVar[tuple[float, float]] = (-100.0, 100.0)

    def required_weights(self) -> list[HubWeights]:
        """The hub model and processor (none for local folders)."""
        named = (("PickScore model", self.model), ("PickScore processor", self.processor))
        return [
            HubWeights(repo, ("config.json", "preprocessor_config.json"), label=f"{what} {repo}")
            for what, repo in named
            if not is_local(repo)
        ]

    def preflight(self) -> list[Missing]:
        """A device this machine lacks."""
        from grefine_kit.parts.checks import check_device as device_findings

        return device_findings(self.device)

    def load(self) -> tuple[Any, Any]:
        """``(CLIPModel, processor)``, shared per (model, processor, device, dtype) in this process."""
        import torch

        from grefine_kit.devices import resolve_device, resolve_dtype

        device = resolve_device(self.device)
        key = (self.model, self.processor, device, self.dtype)
        with _LOCK:
            if key not in _CACHE:
                from transformers import AutoProcessor, CLIPModel

                processor = _from_pretrained(AutoProcessor, self.processor, "PickScore processor")
                # Any: mypy cannot call through transformers' decorated ``PreTrainedModel.to``
                model: Any = _from_pretrained(CLIPModel, self.model, "PickScore model")
                dtype = resolve_dtype(self.dtype, device)
                model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
                _CACHE[key] = (model, processor)
            model, processor = _CACHE[key]
        assert isinstance(model, torch.nn.Module)
        return model, processor

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None) -> list[float]:
        import torch
        import torch.nn.functional as F

        prompts = check_prompts(self.name, images, prompts)
        if not images:
            return []
        model, processor = self.load()
        device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
        scores: list[float] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = processor(images=chunk, return_tensors="pt")["pixel_values"].to(device, dtype)
            text = processor(
                text=list(prompts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=77,
                return_tensors="pt",
            )
            with torch.no_grad():
                img = F.normalize(_features(model.get_image_features(pixel_values=pixels)).float(), dim=-1)
                txt = F.normalize(
                    _features(
                        model.get_text_features(
                            input_ids=text["input_ids"].to(device),
                            attention_mask=text["attention_mask"].to(device),
                        )
                    ).float(),
                    dim=-1,
                )
                scale = model.logit_scale.detach().float().exp()
            scores.extend(float(v) for v in (scale * (img * txt).sum(dim=-1)).cpu())
        return scores
