"""Loading CLIP backbones and the process-wide backbone cache.

A backbone is named by a ``BackboneSpec(model, weights, device, dtype)``:

- open_clip model name + pretrained tag: ``BackboneSpec("ViT-B-16-quickgelu", "openai")`` (the paper);
- a hub id or a local folder in ``model`` (``weights`` is then ignored):
  ``"hf-hub:org/name"``, ``"local-dir:/path"`` (``open_clip_config.json`` + ``open_clip_model.safetensors``);
- a checkpoint file in ``weights`` (or in ``model``): a state dict in OpenAI CLIP key layout
  (``visual.conv1.weight``, ``visual.transformer.resblocks.0.attn.in_proj_weight``, ...) or in open_clip
  layout for the named architecture; ``.safetensors`` or a torch file read with ``weights_only=True``;
- ``BackboneSpec("grefine-tiny", "random")`` / ``"random:SEED"``: tiny RANDOM weights built in process,
  for offline smoke runs only (meaningless maps). ``weights="random"`` works for any open_clip
  architecture too (e.g. real-size ViT-B-16 for benchmarks): random, never quality judgements.

``get_backbone(spec)`` returns one shared ``SurgeryCLIP`` per (model, weights, device, dtype).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from grefine_kit.devices import DTYPE_NAMES, check_device, resolve_device, resolve_dtype, resolve_dtype_name
from grefine_kit.errors import REFUSED_PICKLE, MissingDependencyError, SetupError, UserError, refused_pickle
from grefine_kit.hub import cache_then_hub, hub_reachable, quiet_hub_logs
from grefine_kit.models.backbone import SurgeryCLIP
from grefine_kit.models.tiny import TINY_MODEL_NAME, build_tiny_clip_model, set_openai_preprocess

if TYPE_CHECKING:
    from open_clip.tokenizer import SimpleTokenizer

__all__ = [
    "DTYPES",
    "BackboneSpec",
    "checkpoint_problem",
    "clear_backbone_cache",
    "fetch_weights",
    "get_backbone",
    "load_backbone",
    "load_state_dict_file",
    "resolve_device",
]

#: dtype names a backbone accepts (``auto``: the rule of ``grefine_kit.devices``)
DTYPES = DTYPE_NAMES
_SCHEMAS = ("hf-hub:", "local-dir:")
_CKPT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def _nonempty(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen
class BackboneSpec:
    """Which CLIP to load. ``device``/``dtype`` ``"auto"`` follow ``grefine_kit.devices``
    (the same rule as the stages: cuda, then mps, then cpu; float16 on a GPU, else float32)."""

    model: str = attrs.field(
        default="ViT-B-16-quickgelu", validator=[attrs.validators.instance_of(str), _nonempty]
    )
    weights: str = attrs.field(default="openai", validator=attrs.validators.instance_of(str))
    device: str = attrs.field(default="auto", validator=[attrs.validators.instance_of(str), check_device])
    dtype: str = attrs.field(default="float32", validator=attrs.validators.in_(tuple(DTYPES)))

    def resolved(self) -> BackboneSpec:
        """The same spec with ``device`` and ``dtype`` resolved (the cache key)."""
        device = resolve_device(self.device)
        return attrs.evolve(self, device=device, dtype=resolve_dtype_name(self.dtype, device))


_CACHE: dict[BackboneSpec, SurgeryCLIP] = {}
_CACHE_LOCK = threading.Lock()


def get_backbone(spec: BackboneSpec) -> SurgeryCLIP:
    """The shared ``SurgeryCLIP`` for ``spec``; loaded on first request, once per process."""
    key = spec.resolved()
    with _CACHE_LOCK:  # held while loading so that two threads never load the same weights twice
        backbone = _CACHE.get(key)
        if backbone is None:
            backbone = load_backbone(key)
            _CACHE[key] = backbone
        return backbone


def clear_backbone_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _looks_like_file(value: str) -> bool:
    return os.path.isfile(value) or value.lower().endswith(_CKPT_SUFFIXES) or os.sep in value


def _canonical_name(model_name: str) -> str:
    """OpenAI CLIP's spelling ``ViT-B/16`` -> open_clip's ``ViT-B-16`` (else it reads as a file path)."""
    if (
        "/" not in model_name
        or model_name.startswith(_SCHEMAS)
        or os.path.exists(model_name)
        or model_name.lower().endswith(_CKPT_SUFFIXES)
    ):
        return model_name
    import open_clip

    dashed = model_name.replace("/", "-")
    return dashed if dashed in open_clip.list_models() else model_name


def load_backbone(spec: BackboneSpec) -> SurgeryCLIP:
    """Load (uncached) and wrap the backbone named by ``spec``.

    Raises:
        MissingDependencyError: the weights are not available here (e.g. offline, not downloaded).
        UserError: an unknown model name or tag, a missing file, a layout we cannot read.
    """
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    model, tokenizer = _load_model(spec)
    model = model.to(device=device, dtype=dtype).eval()
    label = spec.model if spec.model.startswith(_SCHEMAS) else f"{spec.model}/{spec.weights}"
    return SurgeryCLIP(model, tokenizer, name=label)


def _load_model(spec: BackboneSpec) -> tuple[Any, Any]:
    model_name, weights = _canonical_name(spec.model), spec.weights
    if model_name == TINY_MODEL_NAME:
        return _tiny(weights)
    if weights == "random" or weights.startswith("random:"):
        return _random_open_clip(model_name, weights)
    if weights.startswith(_SCHEMAS):  # a hub id / folder given as the weights
        model_name, weights = weights, ""
    if model_name.startswith(_SCHEMAS):
        return _open_clip_create(model_name, None, spec)
    if _looks_like_file(model_name):
        return _from_checkpoint(Path(model_name), None)
    if weights and _looks_like_file(weights):
        return _from_checkpoint(Path(weights), model_name)
    return _open_clip_create(model_name, weights or None, spec)


def _simple_tokenizer(context_length: int = 77) -> SimpleTokenizer:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def _tiny_seed(weights: str) -> int:
    if weights.startswith("random:") and weights[7:].lstrip("-").isdigit():
        return int(weights[7:])
    raise UserError(f"random weights are named 'random' or 'random:SEED' (an integer); got {weights!r}")


def _tiny(weights: str) -> tuple[Any, Any]:
    if weights == "random":
        seed = 0
    elif weights.startswith("random:"):
        seed = _tiny_seed(weights)
    else:
        raise UserError(
            f"model {TINY_MODEL_NAME!r} only has random weights: use weights='random' or 'random:SEED'"
        )
    return build_tiny_clip_model(seed=seed), _simple_tokenizer()


def _random_open_clip(model_name: str, weights: str) -> tuple[Any, Any]:
    """A named open_clip architecture with random weights (benchmarks and smoke runs at real size)."""
    import open_clip

    _check_known(model_name, None)
    seed = _tiny_seed(weights) if weights != "random" else 0
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = _unpretrained(open_clip, model_name)
    finally:
        torch.random.set_rng_state(state)
    return model, open_clip.get_tokenizer(model_name)


class _DropRandomInit(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


def _unpretrained(open_clip: Any, model_name: str) -> torch.nn.Module:
    """``open_clip.create_model(model_name, pretrained=None)`` without open_clip's "No pretrained
    weights loaded ... initialized randomly" warning: here either the weights are loaded next,
    or random weights were asked for by name (``weights = "random"``)."""
    root, drop = logging.getLogger(), _DropRandomInit()
    root.addFilter(drop)
    try:
        return open_clip.create_model(model_name, pretrained=None)
    finally:
        root.removeFilter(drop)


def _missing(spec: BackboneSpec, cause: BaseException | str) -> MissingDependencyError:
    return MissingDependencyError(
        f"CLIP weights for model={spec.model!r}, weights={spec.weights!r} are not available on this machine "
        f"({cause}). Get them with `grefine fetch-weights --recipe RECIPE` (a recipe using this backbone) "
        "on a machine with network access (they go to the Hugging Face cache; copy that cache over), or "
        "run once with network access (set HF_HUB_OFFLINE=1 or GREFINE_OFFLINE=1 to skip the network try), "
        'or point model at a local folder (model = "local-dir:/path" with '
        "open_clip_config.json + open_clip_model.safetensors) or weights at an OpenAI-format checkpoint file."
    )


def _check_known(model_name: str, weights: str | None) -> None:
    import open_clip

    known = open_clip.list_models()
    if model_name.replace("/", "-") not in known:
        close = difflib.get_close_matches(model_name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown open_clip model {model_name!r}{hint}")
    if weights and not os.path.isfile(weights):
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if weights not in tags:
            raise UserError(
                f"unknown weights {weights!r} for {model_name}; known tags: {', '.join(tags) or 'none'}"
            )


def _open_clip_create(model_name: str, weights: str | None, spec: BackboneSpec) -> tuple[Any, Any]:
    import open_clip

    if model_name.startswith("local-dir:"):
        folder = Path(model_name[len("local-dir:") :]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise UserError(
                f"{model_name}: expected a folder with open_clip_config.json (+ open_clip_model.safetensors)"
            )
    else:
        if not model_name.startswith("hf-hub:"):
            _check_known(model_name, weights)
    require = bool(weights) or model_name.startswith(_SCHEMAS)
    extra: dict[str, Any] = {}
    if weights and not model_name.startswith(_SCHEMAS):
        from open_clip.pretrained import get_pretrained_cfg

        # OpenAI's tags were trained with QuickGELU; open_clip builds e.g. "ViT-B-16" + "openai" with
        # plain GELU and only warns, which silently shifts every feature. Follow the tag.
        if get_pretrained_cfg(model_name, weights).get("quick_gelu", False):
            extra["force_quick_gelu"] = True
    local = model_name.startswith("local-dir:")

    def load(cache_only: bool) -> tuple[Any, Any]:
        with _hf_cache_only(cache_only):
            model = open_clip.create_model(
                model_name, pretrained=weights, require_pretrained=require, **extra
            )
            return model, open_clip.get_tokenizer(model_name)

    def missing(error: BaseException) -> Exception:
        if local:
            return UserError(f"cannot load {model_name}: {error}")
        return _missing(spec, f"{type(error).__name__}: {str(error)[:200]}")

    # open_clip / huggingface_hub raise these when a download is impossible (offline, no cache)
    return cache_then_hub(load, missing, errors=(OSError, RuntimeError, ValueError), cache_only=local)


@contextlib.contextmanager
def _hf_cache_only(enabled: bool) -> Iterator[None]:
    """Make huggingface_hub read its cache only (it checks this flag on every request)."""
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def checkpoint_problem(exc: BaseException) -> str:
    """A short reason for a checkpoint that did not load (torch's refusal text is six lines
    and advises ``weights_only=False``, which would execute the file's code: we never do)."""
    text = str(exc)
    if refused_pickle(exc):
        return REFUSED_PICKLE
    first = " ".join(text.split())[:160]
    return f"not a readable checkpoint ({type(exc).__name__}: {first})"


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (safetensors, or torch with ``weights_only=True``: never plain pickle)."""
    if not path.is_file():
        raise UserError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, JIT archive, pickled objects refused by weights_only
        raise SetupError(f"cannot read checkpoint {path}: {checkpoint_problem(exc)}") from None
    for key in ("state_dict", "model"):  # common wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _from_checkpoint(path: Path, model_name: str | None) -> tuple[Any, Any]:
    state = load_state_dict_file(path)
    openai_layout = (
        "visual.proj" in state and "text_projection" in state and "token_embedding.weight" in state
    )
    if openai_layout and model_name is not None and _matches_architecture(state, model_name):
        # open_clip's CLIP keeps OpenAI's key layout: a named architecture that fits the tensors
        # (e.g. ViT-H-14 + the HPSv2 checkpoint) keeps its own activation, not OpenAI's QuickGELU
        import open_clip

        model = _unpretrained(open_clip, model_name)
        extra = {"input_resolution", "context_length", "vocab_size"}
        try:
            model.load_state_dict({k: v for k, v in state.items() if k not in extra}, strict=True)
        except RuntimeError as exc:
            raise UserError(f"{path} does not match the {model_name} architecture: {str(exc)[:300]}") from exc
        return model, open_clip.get_tokenizer(model_name)
    if openai_layout:
        import open_clip
        from open_clip.model import build_model_from_openai_state_dict

        # The builder casts to fp16 before loading; reload the original tensors at full precision after.
        model = build_model_from_openai_state_dict(dict(state), quick_gelu=True, cast_dtype=None).float()
        extra = {"input_resolution", "context_length", "vocab_size"}
        model.load_state_dict({k: v for k, v in state.items() if k not in extra}, strict=True)
        set_openai_preprocess(model, model.visual.image_size)
        return model, _simple_tokenizer(int(model.context_length))
    if model_name is None:
        raise UserError(f"{path}: not an OpenAI-layout CLIP state dict; name the architecture in `model`")
    import open_clip

    _check_known(model_name, None)
    model = _unpretrained(open_clip, model_name)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as exc:
        raise UserError(f"{path} does not match the {model_name} architecture: {str(exc)[:300]}") from exc
    return model, open_clip.get_tokenizer(model_name)


def _matches_architecture(state: dict[str, torch.Tensor], model_name: str) -> bool:
    """Whether an OpenAI-layout state dict has the shapes of open_clip architecture ``model_name``
    (patch embedding, image-tower depth, joint embedding size)."""
    import open_clip

    cfg = open_clip.get_model_config(model_name) if model_name in open_clip.list_models() else None
    vision = (cfg or {}).get("vision_cfg", {})
    width, patch, layers = vision.get("width"), vision.get("patch_size"), vision.get("layers")
    conv, proj = state.get("visual.conv1.weight"), state.get("text_projection")
    if conv is None or proj is None or not isinstance(layers, int) or cfg is None:
        return False
    depth = len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")})
    return (
        tuple(conv.shape) == (width, 3, patch, patch)
        and depth == layers
        and int(proj.shape[-1]) == int(cfg.get("embed_dim", -1))
    )


def fetch_weights(spec: BackboneSpec) -> str:
    """Download the weights named by ``spec`` into the local cache (needs network); returns where they are."""
    import open_clip

    spec = attrs.evolve(spec, model=_canonical_name(spec.model))
    if spec.model == TINY_MODEL_NAME or spec.weights == "random" or spec.weights.startswith("random:"):
        return "built in process (random weights): nothing to fetch"
    if spec.model.startswith("hf-hub:"):
        open_clip.create_model(spec.model, require_pretrained=True)
        return spec.model
    if spec.model.startswith("local-dir:") or _looks_like_file(spec.weights) or _looks_like_file(spec.model):
        return "local files: nothing to fetch"
    _check_known(spec.model, spec.weights)
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    if not hub_reachable():
        raise _missing(spec, "the Hugging Face hub is not reachable from here")
    try:
        with quiet_hub_logs():
            return str(download_pretrained(get_pretrained_cfg(spec.model, spec.weights)))
    except (OSError, RuntimeError, ValueError) as exc:
        raise _missing(spec, f"{type(exc).__name__}: {str(exc)[:200]}") from None
